package tests

// Power cuts on booted nodes: qemu is killed while deploy or create runs,
// and the node must come back up into a working system, with the next run
// cleaning up what the cut left.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// powerCut is one cut point of a deploy --method ostree of a native seed.
type powerCut struct {
	name string
	// hang, when > 0, holds the deploy before that step (a test-build
	// failpoint) so the cut falls on the step boundary.
	hang int
	// pattern and delay: the cut comes this long after the deploy's
	// output shows pattern.
	pattern string
	delay   string
	// whole says the new deployment was whole and the default before the
	// cut, so the node must boot it.
	whole bool
	// left is what the next deploy says it found and removed.
	left string
}

// The plan's steps (deployer/testdata/plans/native-ostree-unpacked.json):
// 2 lay the unpacked root out (its /var moved into the stateroot: renames,
// over before a cut could fall inside), 3 commit
// (taking the files over), 4 deploy beside the default, 6 /etc apply, 9
// deploy again as the default, 10 remove the spare. The seed is unpacked
// onto the sysroot before step 1.
var powerCuts = []powerCut{
	{name: "mid-unpack", pattern: "Unpacking layer 1 of", delay: "1", left: unpackLeft},
	{name: "mid-commit", pattern: "[3/", delay: "1"},
	{name: "mid-etc-apply", pattern: "[6/", delay: "0"},
	{name: "before-default", hang: 9, pattern: "[9/", delay: "0"},
	{name: "after-default", hang: 10, pattern: "[10/", delay: "0", whole: true},
}

// everyCutEnv, set to 1, cuts the power at every step boundary up to the
// default swap, not only at those of powerCuts: 8 more boots, about 15
// minutes under TCG, too long for every run of make test. docs/reliability.md
// has the results of the last such run.
const everyCutEnv = "SEEDBUILD_VM_EVERY_CUT"

// cutPoints are the cuts a run makes, in the order the deploy reaches
// them: the cut that leaves the new deployment whole comes last.
func cutPoints() []powerCut {
	if os.Getenv(everyCutEnv) != "1" {
		return powerCuts
	}
	var out []powerCut
	step := 0
	for _, c := range powerCuts {
		// The boundaries before this cut that no cut covers yet: up to
		// the one before its step, for a cut half-way through a step.
		last := c.hang - 1
		if c.hang == 0 {
			last = stepOf(c.pattern)
		}
		for step < last {
			step++
			out = append(out, powerCut{name: fmt.Sprintf("before-step-%d", step), hang: step, pattern: fmt.Sprintf("[%d/", step), delay: "0"})
		}
		if c.hang > 0 {
			step = c.hang
		}
		out = append(out, c)
	}
	return out
}

// stepOf reads N from a "[N/" pattern; 0 for any other.
func stepOf(pattern string) int {
	var n int
	if _, err := fmt.Sscanf(pattern, "[%d/", &n); err != nil {
		return 0
	}
	return n
}

// unpackLeft is what a deploy says of an unpacked root a dead run left.
const unpackLeft = "left by an interrupted seedbuild run"

const statusStage = `
. /etc/os-release; echo "$VARIANT_ID" >$O/variant
ostree admin status >$O/status
ls /ostree/.seedbuild-journal-* >$O/journals 2>/dev/null || true
`

// TestBootedPowerCuts cuts the power of a booted target during deploy, at
// step boundaries and half-way through the commit, the /var fill and the
// /etc apply. After each cut the node boots the default entry: the
// original deployment, or, after the cut that came once the new one was
// whole and the default, the new one with all its state. Each next deploy
// says what the cut left and removes or finishes it.
func TestBootedPowerCuts(t *testing.T) {
	s := getSeeds(t)
	disk := makeNode(t, getNodeOS(t), func(etc, varDir string) { targetNodeState(t, etc, varDir) })
	n := newNode(t, "target", disk)
	n.put(s.path("native"), "seeds/native.tar")
	deploy := "$SB deploy oci-archive:$X/seeds/native.tar --stateroot seed --method ostree"
	n.put(getNodeOS(t).yArchive, "y.oci-archive")

	// First a cut while create --rootfs / writes a seed: nothing may be
	// left at the output's name. Enough data that the capture still runs.
	create := "$SB create --rootfs / --base oci-archive:$X/y.oci-archive -o oci-archive:$X/made/seed.tar"
	n.bootUntilCut("cut-create", "mkdir -p $X/made /var/lib/bulk\nhead -c 96M /dev/urandom >/var/lib/bulk/data.bin\ncut_after 'Capturing' 1 "+create+"\n")
	if _, err := os.Stat(filepath.Join(n.share, "made/seed.tar")); err == nil {
		t.Errorf("the power cut during create left made/seed.tar, which looks like a seed")
	}
	partials, _ := filepath.Glob(filepath.Join(n.share, "made/.seed.tar.partial-*"))
	t.Logf("power cut mid-create: nothing at made/seed.tar; the hidden partials %v are removed by the next copy to that name", partials)

	var results []string
	prev, prevLeft := "", ""
	for i, c := range cutPoints() {
		env := ""
		if c.hang > 0 {
			env = fmt.Sprintf("env SEEDBUILD_INJECT_HANG=%d ", c.hang)
		}
		b := n.bootUntilCut("cut-"+c.name, statusStage+"ls -d /ostree/seedbuild-deploy-* >$O/stages 2>/dev/null || true\n"+
			fmt.Sprintf("cut_after %q %s %s%s\n", c.pattern, c.delay, env, deploy))
		// What this boot found of the previous cut.
		if i > 0 {
			if !strings.Contains(b.entry.options, "/node/") || b.file(t, "variant") != "seedbuild-vm-x" {
				t.Errorf("after the cut %s the node booted %q (%s), want the original deployment", prev, b.entry.options, b.file(t, "variant"))
			}
			log := b.file(t, "cut.log")
			// A cut before the run's first fsync may leave nothing at all
			// (the unpacked root was never written back): then there is
			// nothing to say.
			leftSomething := prevLeft != unpackLeft || b.file(t, "stages") != ""
			if leftSomething && !strings.Contains(log, prevLeft) {
				t.Errorf("the deploy after the cut %s did not say %q:\n%s", prev, prevLeft, tail(log, 20))
			}
			if leftSomething {
				results = append(results, fmt.Sprintf("%s: booted the original; the next deploy said %q", prev, prevLeft))
			} else {
				results = append(results, fmt.Sprintf("%s: booted the original; the cut left nothing on disk to remove", prev))
			}
		}
		prev, prevLeft = c.name, c.left
		if prevLeft == "" {
			prevLeft = "Undid an interrupted deploy into stateroot seed"
		}
	}
	b := n.boot("after-cuts", seedStateStage+statusStage+`
rc=0; `+deploy+` >$O/next.log 2>&1 || rc=$?; echo $rc >$O/next.rc
ostree admin status >$O/status-after
ls /ostree/.seedbuild-journal-* >$O/journals-after 2>/dev/null || true
`)
	if !strings.Contains(b.entry.options, "/seed/") {
		t.Fatalf("after the cut %s (the new deployment whole and the default) the node booted %q, want the seed's stateroot", prev, b.entry.options)
	}
	checkSeedState(t, s, b, "seedbuild-vm-y")
	if got := b.file(t, "journals"); got == "" {
		t.Errorf("the cut %s left no journal to finish", prev)
	}
	next := b.file(t, "next.log")
	if b.file(t, "next.rc") != "1" || !strings.Contains(next, "Finished an interrupted deploy into stateroot seed") || !strings.Contains(next, "booted") {
		t.Errorf("the deploy after the cut %s, booted into the seed: exit %s\n%s\nwant it to finish the journal, then refuse the booted stateroot", prev, b.file(t, "next.rc"), next)
	}
	if st := b.file(t, "status-after"); strings.Count(st, " seed ") != 1 || b.file(t, "journals-after") != "" {
		t.Errorf("after finishing: status\n%s\njournals %q; want one deployment of seed and no journal", st, b.file(t, "journals-after"))
	}
	results = append(results, fmt.Sprintf("%s: booted the seed, whole; the next deploy finished the journal", prev))
	for _, r := range results {
		t.Log("power cut " + r)
	}
}
