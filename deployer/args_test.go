package deployer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestGoldenPlansMatchActions reads every golden plan and checks each step
// and undo against what the executor takes: a known action, only the keys
// its spec names and every one it needs, and placeholders that the
// executor fills in before the step (from the seed's unpack or mount, or a
// step before it). A golden plan the executor could not carry out fails
// here, not on a node.
func TestGoldenPlansMatchActions(t *testing.T) {
	files, err := filepath.Glob("testdata/plans/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden plans (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var p Plan
			if err := json.Unmarshal(data, &p); err != nil {
				t.Fatal(err)
			}
			for _, msg := range checkPlan(p) {
				t.Error(msg)
			}
		})
	}
}

// checkPlan lists what is wrong with a plan's steps for the executor.
func checkPlan(p Plan) []string {
	known := map[string]bool{}
	for _, ph := range []string{phMount, phSeedLabels, phVarLabels, phSeedRepo, phOriginFile} {
		known[varName(ph)] = true
	}
	var out []string
	check := func(n int, st Step) {
		if st.Action != "" {
			if err := checkArgs(st.Action, st.Args); err != nil {
				out = append(out, "step "+strconv.Itoa(n)+" ("+st.Desc+"): "+err.Error())
			}
		}
		var texts []string
		texts = append(texts, st.Argv...)
		for _, v := range st.Args {
			texts = append(texts, v)
		}
		for _, s := range texts {
			for _, m := range placeholder.FindAllString(s, -1) {
				if !known[varName(m)] {
					out = append(out, "step "+strconv.Itoa(n)+" ("+st.Desc+"): "+m+" is not filled in before it")
				}
			}
		}
	}
	for i, st := range p.Steps {
		check(i+1, st)
		if st.Capture != "" {
			known[st.Capture] = true
		}
		for _, m := range st.Makes {
			known[m] = true
		}
		// An undo runs after its step: it may use what the step made.
		if st.Undo != nil {
			check(i+1, *st.Undo)
		}
	}
	return out
}

// TestCheckPlanCanFail: the checks above find a key an action does not
// take, a missing one, and a placeholder no step made.
func TestCheckPlanCanFail(t *testing.T) {
	p := Plan{Steps: []Step{
		{Desc: "typo", Action: ActionFindDeployment, Args: map[string]string{argSysroot: "/", "statroot": "x"}},
		{Desc: "missing", Action: ActionApplyDeletions, Args: map[string]string{argList: "l"}},
		{Desc: "too early", Argv: []string{"ostree", "admin", "set-default", phDeploymentIndex}},
		{Desc: "unknown", Action: "no-such-action"},
	}}
	got := checkPlan(p)
	for _, want := range []string{"takes no argument statroot", `missing argument "etc"`, "{deployment-index} is not filled in", `unknown action "no-such-action"`} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("checkPlan() = %q, want a problem with %q", got, want)
		}
	}
}

// TestEveryActionHasSpecAndExecutor: the executor carries out exactly the
// actions the specs name.
func TestEveryActionHasSpecAndExecutor(t *testing.T) {
	e := &executor{}
	e.registerActions()
	var specs, impls []string
	for a := range actionSpecs {
		specs = append(specs, a)
	}
	for a := range e.actions {
		impls = append(impls, a)
	}
	sort.Strings(specs)
	sort.Strings(impls)
	if !slices.Equal(specs, impls) {
		t.Errorf("actions with a spec %q, with an executor %q: want the same", specs, impls)
	}
}

// TestRunStepChecksArgs: the executor refuses an action step whose
// arguments do not match its spec before the action runs (the actions do
// not check them again).
func TestRunStepChecksArgs(t *testing.T) {
	e := &executor{vars: map[string]string{}}
	e.registerActions()
	for _, st := range []Step{
		{Desc: "no var", Action: ActionMergeVar, Args: map[string]string{}},
		{Desc: "a stray key", Action: ActionMergeVar, Args: map[string]string{argVar: "/x", "vra": "/y"}},
	} {
		if _, _, err := e.runStep(context.Background(), st); err == nil || !strings.Contains(err.Error(), "argument") {
			t.Errorf("runStep(%s) = %v, want the arguments refused", st.Desc, err)
		}
	}
}
