package deployer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/internal/command"
	"github.com/seedbuild/seedbuild/internal/hostroot"
)

// Runner runs one command with stdin closed and stdout and stderr apart.
// It is the seam tests replace.
type Runner = command.Runner

// EventType names a kind of progress event.
type EventType string

// The progress events a deploy emits.
const (
	// EventInfo says what is about to happen.
	EventInfo EventType = "info"
	// EventStep starts a step.
	EventStep EventType = "step"
	// EventDone ends a step that succeeded.
	EventDone EventType = "done"
	// EventFailed ends a step that failed.
	EventFailed EventType = "failed"
	// EventUndo runs an undo step.
	EventUndo EventType = "undo"
	// EventRecovered says what an earlier, killed run left and was undone.
	EventRecovered EventType = "recovered"
)

// Event is one piece of progress, for text or JSON output.
type Event struct {
	Type    EventType `json:"event"`
	Index   int       `json:"index,omitempty"`
	Total   int       `json:"total,omitempty"`
	Desc    string    `json:"desc"`
	Argv    []string  `json:"argv,omitempty"`
	Seconds float64   `json:"seconds,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// StepError is a failed step, with the tail of what it wrote on stderr and
// whether what ran before it was undone.
type StepError struct {
	Index  int
	Step   Step
	Stderr string
	Err    error
	// UndoErrs are the undo steps that failed too.
	UndoErrs []error
	// Journal is where what is left is recorded when an undo failed: the
	// next deploy into the same sysroot finishes the undo from it.
	Journal string
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("step %d (%s) failed: %v", e.Index+1, e.Step.Desc, e.Err)
	if tail := strings.TrimSpace(e.Stderr); tail != "" {
		msg += ": " + oneLine(tail)
	}
	if len(e.UndoErrs) == 0 {
		return msg + "; what this run did was undone"
	}
	var undo []string
	for _, u := range e.UndoErrs {
		undo = append(undo, u.Error())
	}
	msg += "; undoing it failed too, so these are left: " + strings.Join(undo, "; ")
	if e.Journal != "" {
		msg += "; they are recorded in " + e.Journal + ", and the next seedbuild deploy into this sysroot removes them (or run the failed undo by hand)"
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

func oneLine(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " / ")
}

// actionFunc carries out a named action; it returns what Capture stores.
type actionFunc func(ctx context.Context, st Step, args map[string]string) (string, error)

// executor carries out a plan step by step, remembering how to undo what
// it did.
type executor struct {
	runner  Runner
	vars    map[string]string
	actions map[string]actionFunc
	events  func(Event)
	// before is the sysroot's deployments when the run started.
	before []deployment
	// beforeImageRefs are the repo's refs under ostree/container/ when the
	// run started: bootc and ostree-ext import an image under such refs,
	// which the stateroot's undo removes when the run made them.
	beforeImageRefs []string
	sysroot         string
	tempDir         string
	// kargs are the kernel arguments the new boot entry must carry.
	kargs []string
	// host is the node, whose paths the podman service sees.
	host hostroot.Host
	// podmanURL and graphRoot are for the bootc container.
	podmanURL string
	graphRoot string
	// log receives the output of long-running children.
	log io.Writer
	// known holds the checksums the unpack computed as it wrote the seed's
	// files, so the commit does not read them back (nil: it reads them).
	known *ostreerepo.Known
	// aside is the seed's /var layer, unpacked beside the root, for
	// ActionMergeVar; nil when there is none.
	aside *asideLayer
	// failAt, when > 0, fails that step (1-based) after it ran: the test
	// hook SEEDBUILD_INJECT_FAILURE (test builds only), to prove undo on a
	// real sysroot.
	failAt int
	// hangAt, when > 0, waits before that step until the run is cancelled
	// or killed: the test hook SEEDBUILD_INJECT_HANG, so a test can signal
	// a deploy at a known point however fast the machine is.
	hangAt int
	// pauseDir, when set, holds the run before each step N until the file
	// pauseDir/N exists (or the run is cancelled): the test hook
	// SEEDBUILD_INJECT_PAUSE, so a test can take the machine's state at
	// every step boundary of one run.
	pauseDir string
	// journal, when set, records intent and progress on disk.
	journal *journal
	// allowXattrLoss lets copies go on past xattrs they cannot keep.
	allowXattrLoss bool
}

var placeholder = regexp.MustCompile(`\{[a-z-]+\}`)

// makes stores values a step learned besides its Capture; each must be one
// the step declares in Makes.
func (e *executor) makes(st Step, values map[string]string) error {
	for name, v := range values {
		if !slices.Contains(st.Makes, name) {
			return fmt.Errorf("step %q made %s, which the plan does not declare it makes", st.Desc, name)
		}
		e.vars[name] = v
	}
	return nil
}

// Made is what a run's steps made that its result reports.
type Made struct {
	Deployment, Checksum, BootEntry string
	// Staged says the deployment is staged: ostree writes its boot entry
	// at the next shutdown.
	Staged bool
}

// made reads the result's values from what the steps stored.
func (e *executor) made() Made {
	return Made{Deployment: e.vars[varName(phDeployment)], Checksum: e.vars[varName(phChecksum)], BootEntry: e.vars[varName(phBootEntry)],
		Staged: e.vars[varName(phStaged)] == "true"}
}

func (e *executor) expand(s string) (string, error) {
	var missing string
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := e.vars[m[1:len(m)-1]]
		if !ok {
			missing = m
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("placeholder %s is not known yet", missing)
	}
	return out, nil
}

func (e *executor) expandStep(st Step) (argv []string, args map[string]string, err error) {
	for _, a := range st.Argv {
		x, err := e.expand(a)
		if err != nil {
			return nil, nil, err
		}
		argv = append(argv, x)
	}
	args = map[string]string{}
	for k, v := range st.Args {
		if args[k], err = e.expand(v); err != nil {
			return nil, nil, err
		}
	}
	return argv, args, nil
}

// pauseBefore waits, when the pause failpoint is set, until the file
// naming step n is in the pause folder, or ctx is done.
func (e *executor) pauseBefore(ctx context.Context, n int) error {
	if e.pauseDir == "" {
		return nil
	}
	ready := filepath.Join(e.pauseDir, strconv.Itoa(n))
	for {
		if _, err := os.Stat(ready); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run carries out every step. A step's undo is recorded before the step
// runs, in memory and in the journal when there is one: a step that fails
// half-way, or that completes after an interrupt, is undone too, so every
// undo must be safe to run when its step did not finish. Progress is
// recorded after each step. On a failure the recorded undos run newest
// first, even when ctx was cancelled.
func (e *executor) run(ctx context.Context, p Plan) error {
	var undo []Step
	for i, st := range p.Steps {
		before := undo // what ran so far, if recording this step's intent fails
		if st.Undo != nil {
			undo = append(undo, *st.Undo)
		}
		if err := e.record(i, undo); err != nil {
			return &StepError{Index: i, Step: st, Err: err, UndoErrs: e.undo(context.WithoutCancel(ctx), before)}
		}
		e.emit(Event{Type: EventStep, Index: i + 1, Total: len(p.Steps), Desc: st.Desc, Argv: st.Argv})
		start := time.Now()
		var out, stderr string
		var err error
		if i+1 == e.hangAt {
			<-ctx.Done()
			err = ctx.Err()
		} else if err = e.pauseBefore(ctx, i+1); err == nil {
			out, stderr, err = e.runStep(ctx, st)
		}
		// What a step made is known to its undo even when the run is
		// failed after it.
		if err == nil && st.Capture != "" {
			e.vars[st.Capture] = out
		}
		if err == nil && i+1 == e.failAt {
			err = errors.New("failure injected by the test build's failpoint")
		}
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			e.emit(Event{Type: EventFailed, Index: i + 1, Total: len(p.Steps), Desc: st.Desc, Error: err.Error()})
			se := &StepError{Index: i, Step: st, Stderr: stderr, Err: err}
			se.UndoErrs = e.undo(context.WithoutCancel(ctx), undo)
			if len(se.UndoErrs) > 0 && e.journal != nil {
				se.Journal = e.journal.path
			}
			return se
		}
		e.emit(Event{Type: EventDone, Index: i + 1, Total: len(p.Steps), Desc: st.Desc, Seconds: time.Since(start).Round(time.Millisecond).Seconds()})
	}
	return e.record(len(p.Steps), undo)
}

// record writes the run's progress and its undo list to the journal.
func (e *executor) record(done int, undo []Step) error {
	if e.journal == nil {
		return nil
	}
	e.journal.Done, e.journal.Undo, e.journal.Vars = done, undo, e.vars
	return e.journal.write()
}

// undo runs the undo steps newest first and returns those that failed. An
// undo that names a value its step never made (a {placeholder} not known)
// has nothing to remove: the step cleans up after itself when it fails.
func (e *executor) undo(ctx context.Context, steps []Step) []error {
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		st := steps[i]
		if _, _, err := e.expandStep(st); err != nil {
			e.emit(Event{Type: EventUndo, Desc: st.Desc + " (nothing to undo: its step made nothing)"})
			continue
		}
		e.emit(Event{Type: EventUndo, Desc: st.Desc})
		if _, stderr, err := e.runStep(ctx, st); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w %s", st.Desc, err, strings.TrimSpace(stderr)))
		}
	}
	return errs
}

func (e *executor) emit(ev Event) {
	if e.events != nil {
		e.events(ev)
	}
}

// runStep runs one step and returns its captured output and stderr tail.
func (e *executor) runStep(ctx context.Context, st Step) (string, string, error) {
	argv, args, err := e.expandStep(st)
	if err != nil {
		return "", "", err
	}
	if st.Action != "" {
		fn, ok := e.actions[st.Action]
		if !ok {
			return "", "", fmt.Errorf("unknown action %q", st.Action)
		}
		// Every action of registerActions has a spec (a test checks):
		// one without is a test's own.
		if _, spec := actionSpecs[st.Action]; spec {
			if err := checkArgs(st.Action, args); err != nil {
				return "", "", fmt.Errorf("step %q: %w", st.Desc, err)
			}
		}
		st.Argv = argv
		out, err := fn(context.WithoutCancel(ctx), st, args)
		return out, "", err
	}
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4096}
	// A step that started runs to its end: killing ostree half-way through
	// a deploy would leave what undo cannot cleanly take back. run checks
	// for cancellation between steps.
	err = e.runner.Run(context.WithoutCancel(ctx), argv, &stdout, stderr)
	return strings.TrimSpace(stdout.String()), stderr.String(), err
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// deployment is one line of `ostree admin status`.
type deployment struct {
	Index     int
	Stateroot string
	Checksum  string
	Serial    int
	// Booted marks the running system's deployment.
	Booted bool `json:",omitempty"`
	// Staged marks a deployment ostree writes at the next shutdown
	// (ostree-finalize-staged): it has no boot entry before. `ostree admin
	// status` says "(staged)", or "(finalization locked)" from 2023.8
	// (ot-admin-builtin-status.c).
	Staged bool `json:",omitempty"`
}

func (d deployment) path(sysroot string) string {
	return filepath.Join(sysroot, "ostree/deploy", d.Stateroot, "deploy", d.Checksum+"."+strconv.Itoa(d.Serial))
}

var statusLine = regexp.MustCompile(`^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)`)

// deployments lists the sysroot's deployments in boot order.
func (e *executor) deployments(ctx context.Context) ([]deployment, error) {
	var out, errb bytes.Buffer
	if err := e.runner.Run(ctx, []string{"ostree", "admin", "status", "--sysroot=" + e.sysroot}, &out, &errb); err != nil {
		return nil, fmt.Errorf("reading deployments of %q: %w %s", e.sysroot, err, strings.TrimSpace(errb.String()))
	}
	return parseStatus(out.String()), nil
}

func parseStatus(text string) []deployment {
	var list []deployment
	for _, line := range strings.Split(text, "\n") {
		m := statusLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		serial, _ := strconv.Atoi(m[4])
		staged := strings.HasSuffix(line, " (staged)") || strings.HasSuffix(line, " (finalization locked)")
		list = append(list, deployment{Index: len(list), Stateroot: m[2], Checksum: m[3], Serial: serial, Booted: m[1] == "*", Staged: staged})
	}
	return list
}

// newDeployments are the deployments of stateroot that are not in before
// (what the sysroot held when the run started), highest index first.
func (e *executor) newDeployments(ctx context.Context, stateroot string, before []deployment) ([]deployment, error) {
	now, err := e.deployments(ctx)
	if err != nil {
		return nil, err
	}
	old := map[string]bool{}
	for _, d := range before {
		old[d.Stateroot+"/"+d.Checksum+"."+strconv.Itoa(d.Serial)] = true
	}
	var fresh []deployment
	for _, d := range now {
		if d.Stateroot == stateroot && !old[d.Stateroot+"/"+d.Checksum+"."+strconv.Itoa(d.Serial)] {
			fresh = append(fresh, d)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Index > fresh[j].Index })
	return fresh, nil
}

func (e *executor) undeploy(ctx context.Context, list []deployment) error {
	for _, d := range list {
		var errb bytes.Buffer
		if err := e.runner.Run(ctx, []string{"ostree", "admin", "undeploy", "--sysroot=" + e.sysroot, strconv.Itoa(d.Index)}, io.Discard, &errb); err != nil {
			return fmt.Errorf("undeploying %s.%d: %w %s", d.Checksum, d.Serial, err, strings.TrimSpace(errb.String()))
		}
	}
	return nil
}

var errNoDeployment = errors.New("no new deployment appeared in the stateroot")

// requireArgs fails when an action lacks one of its arguments. runStep
// checks every action's arguments against its spec (checkArgs) before
// the action runs, so the actions do not check them again.
func requireArgs(args map[string]string, names ...string) error {
	for _, n := range names {
		if args[n] == "" {
			return fmt.Errorf("missing argument %q", n)
		}
	}
	return nil
}

// safeJoin joins rel under root, refusing a path that is not clean (one
// with "..", say), so nothing outside root is touched.
func safeJoin(root, rel string) (string, error) {
	p := "/" + strings.TrimPrefix(rel, "/")
	clean := filepath.Clean(p)
	if p != clean && p != clean+"/" {
		return "", fmt.Errorf("refusing path %q", rel)
	}
	return filepath.Join(root, clean), nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
