package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"golang.org/x/sys/unix"
)

// fakeRunner records every argv and fails the ones that start with fail.
type fakeRunner struct {
	calls  [][]string
	fail   string
	stdout map[string]string
}

func (f *fakeRunner) Run(_ context.Context, argv []string, stdout, stderr io.Writer) error {
	f.calls = append(f.calls, argv)
	if f.fail != "" && strings.Join(argv, " ") == f.fail {
		fmt.Fprintln(stderr, "error: disk on fire")
		return errors.New("exit status 1")
	}
	io.WriteString(stdout, f.stdout[argv[0]])
	return nil
}

func TestExecutorUndoesInReverse(t *testing.T) {
	plan := Plan{Steps: []Step{
		{Desc: "first", Argv: []string{"one"}, Capture: "commit", Undo: &Step{Desc: "undo first", Argv: []string{"undo-one"}}},
		{Desc: "second", Argv: []string{"two", "{commit}"}, Undo: &Step{Desc: "undo second", Argv: []string{"undo-two", "{commit}"}}},
		{Desc: "no undo", Argv: []string{"three"}},
		{Desc: "fourth", Argv: []string{"four"}},
		{Desc: "never", Argv: []string{"five"}},
	}}
	r := &fakeRunner{fail: "four", stdout: map[string]string{"one": "abc123\n"}}
	ex := &executor{runner: r, vars: map[string]string{}}
	err := ex.run(context.Background(), plan)
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("run() = %v, want a *StepError", err)
	}
	if se.Index != 3 || !strings.Contains(err.Error(), "fourth") || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "undone") {
		t.Errorf("run() error = %q, want step 4, its stderr and that it was undone", err)
	}
	want := [][]string{{"one"}, {"two", "abc123"}, {"three"}, {"four"}, {"undo-two", "abc123"}, {"undo-one"}}
	if diff := cmp.Diff(want, r.calls); diff != "" {
		t.Errorf("commands mismatch (-want +got):\n%s", diff)
	}
}

func TestExecutorUndoRunsAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	plan := Plan{Steps: []Step{
		{Desc: "first", Argv: []string{"one"}, Undo: &Step{Desc: "undo first", Argv: []string{"undo-one"}}},
		{Desc: "cancelled here", Action: "cancel"},
	}}
	r := &fakeRunner{}
	ex := &executor{runner: r, vars: map[string]string{}, actions: map[string]actionFunc{
		"cancel": func(context.Context, Step, map[string]string) (string, error) { cancel(); return "", nil },
	}}
	if err := ex.run(ctx, plan); !errors.Is(err, context.Canceled) {
		t.Fatalf("run() = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff([][]string{{"one"}, {"undo-one"}}, r.calls); diff != "" {
		t.Errorf("commands mismatch (-want +got):\n%s", diff)
	}
}

func TestExecutorUnknownPlaceholder(t *testing.T) {
	ex := &executor{runner: &fakeRunner{}, vars: map[string]string{}}
	err := ex.run(context.Background(), Plan{Steps: []Step{{Desc: "x", Argv: []string{"{deployment}"}}}})
	if err == nil || !strings.Contains(err.Error(), "{deployment}") {
		t.Errorf("run() = %v, want an error naming the placeholder", err)
	}
}

// TestExecutorHangsUntilCancelled: with hangAt, the run waits before that
// step until it is cancelled, never runs it, and undoes what ran before.
func TestExecutorHangsUntilCancelled(t *testing.T) {
	plan := Plan{Steps: []Step{
		{Desc: "first", Argv: []string{"one"}, Undo: &Step{Desc: "undo first", Argv: []string{"undo-one"}}},
		{Desc: "held", Argv: []string{"two"}},
	}}
	r := &fakeRunner{}
	ex := &executor{runner: r, vars: map[string]string{}, hangAt: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.run(ctx, plan) }()
	select {
	case err := <-done:
		t.Fatalf("run() returned %v before it was cancelled", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	err := <-done
	var se *StepError
	if !errors.As(err, &se) || se.Index != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("run() = %v, want step 2 cancelled", err)
	}
	if diff := cmp.Diff([][]string{{"one"}, {"undo-one"}}, r.calls); diff != "" {
		t.Errorf("commands mismatch (-want +got):\n%s", diff)
	}
}

// TestExecutorUndoIntentFirst: a step's undo is queued before it runs, so
// a step that completes after an interrupt, or fails half-way, is undone
// too; an undo naming a value its step never made is skipped, not failed.
func TestExecutorUndoIntentFirst(t *testing.T) {
	tests := []struct {
		name    string
		failOn  string
		cancel  bool
		want    [][]string
		wantErr string
	}{
		{"step finishes after the interrupt", "", true,
			[][]string{{"one"}, {"commit"}, {"undo-commit", "abc"}, {"undo-one"}}, "canceled"},
		{"step fails half-way", "commit", false,
			[][]string{{"one"}, {"commit"}, {"undo-one"}}, "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &fakeRunner{fail: tc.failOn, stdout: map[string]string{"commit": "abc\n"}}
			plan := Plan{Steps: []Step{
				{Desc: "first", Argv: []string{"one"}, Undo: &Step{Desc: "undo first", Argv: []string{"undo-one"}}},
				{Desc: "commit", Action: "commit", Capture: "commit", Undo: &Step{Desc: "undo commit", Argv: []string{"undo-commit", "{commit}"}}},
				{Desc: "never", Argv: []string{"never"}},
			}}
			ex := &executor{runner: r, vars: map[string]string{}, actions: map[string]actionFunc{
				"commit": func(ctx context.Context, st Step, _ map[string]string) (string, error) {
					var out, errb strings.Builder
					err := r.Run(ctx, []string{"commit"}, &out, &errb)
					if tc.cancel {
						cancel() // the interrupt arrives while the step runs
					}
					if err != nil {
						return "", fmt.Errorf("%v: %s", err, errb.String())
					}
					return strings.TrimSpace(out.String()), nil
				},
			}}
			err := ex.run(ctx, plan)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "undone") {
				t.Errorf("run() = %v, want %q and undone", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, r.calls); diff != "" {
				t.Errorf("commands mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExecutorJournal: intent is on disk before a step runs, progress
// after it; a failed undo keeps the journal and the error names it.
func TestExecutorJournal(t *testing.T) {
	dir := t.TempDir()
	j := &journal{Stateroot: "s", path: filepath.Join(dir, "j.json")}
	var seen []journal
	r := &fakeRunner{fail: "undo-one"}
	ex := &executor{runner: r, vars: map[string]string{}, journal: j, actions: map[string]actionFunc{
		"peek": func(context.Context, Step, map[string]string) (string, error) {
			data, err := os.ReadFile(j.path)
			if err != nil {
				return "", err
			}
			var got journal
			json.Unmarshal(data, &got)
			seen = append(seen, got)
			return "", errors.New("boom")
		},
	}}
	plan := Plan{Steps: []Step{
		{Desc: "first", Argv: []string{"one"}, Undo: &Step{Desc: "undo first", Argv: []string{"undo-one"}}},
		{Desc: "peek", Action: "peek", Undo: &Step{Desc: "undo peek", Argv: []string{"undo-peek"}}},
	}}
	err := ex.run(context.Background(), plan)
	if len(seen) != 1 || seen[0].Done != 1 || len(seen[0].Undo) != 2 || seen[0].Undo[1].Desc != "undo peek" {
		t.Fatalf("journal while step 2 ran = %+v, want 1 done and both undos recorded", seen)
	}
	var se *StepError
	if !errors.As(err, &se) || len(se.UndoErrs) != 1 || se.Journal != j.path || !strings.Contains(err.Error(), j.path) || strings.Contains(err.Error(), "was undone") {
		t.Errorf("run() = %v, want the failed undo and the journal named, not 'undone'", err)
	}
}

// TestJournalRemoveTakesTheTemporaryToo: a power cut between a journal
// write's sync of its temporary file and the rename leaves that file
// beside the journal; removing the journal removes it too, and a journal
// with no temporary file beside it is removed as before.
func TestJournalRemoveTakesTheTemporaryToo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"journal and a temporary file", []string{"j.json", "j.json.tmp"}},
		{"journal alone", []string{"j.json"}},
		{"nothing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			j := &journal{Stateroot: "s", path: filepath.Join(dir, "j.json")}
			if err := j.remove(); err != nil {
				t.Fatalf("remove: %v", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left %v, want nothing", left)
			}
		})
	}
}

// TestRemoveFirstWrites: a temporary journal with no journal beside it is
// a first write that never became durable, and is removed, unless a live
// run may be writing it; one beside its journal is left for the journal's
// undo.
func TestRemoveFirstWrites(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stamp := func(pid int, boot string) string {
		return fmt.Sprintf(`{"pid":%d,"boot":%q,"stateroot":"seed"}`, pid, boot)
	}
	long := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		tmp     string
		old     bool // changed before this boot
		journal bool // the journal beside it
		removed bool
	}{
		{"a dead run's", stamp(dead.Process.Pid, scratch.BootID()), false, false, true},
		{"a live run's", stamp(os.Getpid(), scratch.BootID()), false, false, false},
		{"an earlier boot's", stamp(os.Getpid(), "00000000"), false, false, true},
		{"beside its journal", stamp(dead.Process.Pid, scratch.BootID()), false, true, false},
		{"half written, before this boot", `{"pi`, true, false, true},
		{"half written, in this boot", ``, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp := filepath.Join(dir, journalPrefix+"seed.json.tmp")
			if err := os.WriteFile(tmp, []byte(tc.tmp), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.old {
				if err := os.Chtimes(tmp, long, long); err != nil {
					t.Fatal(err)
				}
			}
			if tc.journal {
				if err := os.WriteFile(strings.TrimSuffix(tmp, ".tmp"), []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out strings.Builder
			removeFirstWrites(dir, &out)
			_, err := os.Stat(tmp)
			if gone := os.IsNotExist(err); gone != tc.removed {
				t.Errorf("removed %v, want %v (said %q)", gone, tc.removed, out.String())
			}
			if said := strings.Contains(out.String(), "left by an interrupted seedbuild run"); said != tc.removed {
				t.Errorf("said %q", out.String())
			}
		})
	}
}

// TestMakesOnlyWhatIsDeclared: a step stores only the values its plan says
// it makes.
func TestMakesOnlyWhatIsDeclared(t *testing.T) {
	for _, tc := range []struct {
		name   string
		step   Step
		values map[string]string
		ok     bool
	}{
		{"declared", Step{Desc: "find", Makes: []string{"checksum", "deployment-index"}}, map[string]string{"checksum": "abc", "deployment-index": "0"}, true},
		{"not declared", Step{Desc: "find", Makes: []string{"checksum"}}, map[string]string{"boot-entry": "x"}, false},
		{"declares nothing", Step{Desc: "verify"}, map[string]string{"boot-entry": "x"}, false},
	} {
		e := &executor{vars: map[string]string{}}
		err := e.makes(tc.step, tc.values)
		if (err == nil) != tc.ok {
			t.Errorf("%s: makes(%v) = %v, want ok %v", tc.name, tc.values, err, tc.ok)
		}
		for k, v := range tc.values {
			if tc.ok && e.vars[k] != v || !tc.ok && e.vars[k] != "" && !slices.Contains(tc.step.Makes, k) {
				t.Errorf("%s: vars[%s] = %q", tc.name, k, e.vars[k])
			}
		}
	}
}

// TestRemoveNewImageRefs: the stateroot's undo deletes only the image refs
// the run added, and none for a journal that did not list them.
func TestRemoveNewImageRefs(t *testing.T) {
	const listed = "ostree/container/image/a\nostree/container/image/b\n"
	for _, c := range []struct {
		name   string
		before []string
		want   []string
	}{
		{"journal without the list", nil, nil},
		{"nothing new", []string{"ostree/container/image/a", "ostree/container/image/b"}, []string{"ostree refs --repo=/s/ostree/repo --list ostree/container"}},
		{"one new", []string{"ostree/container/image/a"}, []string{
			"ostree refs --repo=/s/ostree/repo --list ostree/container",
			"ostree refs --repo=/s/ostree/repo --delete ostree/container/image/b",
			"ostree prune --repo=/s/ostree/repo --refs-only",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &fakeRunner{stdout: map[string]string{"ostree": listed}}
			ex := &executor{runner: r, sysroot: "/s", beforeImageRefs: c.before}
			// The ostree and classic routes' undo deletes no image ref.
			if err := ex.removeNewImageRefs(context.Background(), map[string]string{}); err != nil || len(r.calls) != 0 {
				t.Fatalf("an undo without %s: %v, calls %q", imageRefsArg, err, r.calls)
			}
			if err := ex.removeNewImageRefs(context.Background(), map[string]string{imageRefsArg: imageRefsNew}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, argv := range r.calls {
				got = append(got, strings.Join(argv, " "))
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAsideTree: the deployment made aside keeps what ostree admin deploy
// and the /etc steps read, and none of the OS's bulk.
func TestAsideTree(t *testing.T) {
	for _, c := range []struct {
		rel  string
		dir  bool
		want ostreerepo.Keep
	}{
		{"usr", true, ostreerepo.Descend},
		{"usr/etc", true, ostreerepo.Whole},
		{"usr/lib", true, ostreerepo.Descend},
		{"usr/lib/os-release", false, ostreerepo.Whole},
		{"usr/lib/ostree-boot", true, ostreerepo.Whole},
		{"usr/lib/openshift", true, ostreerepo.Descend},
		{"usr/lib/openshift/seed", true, ostreerepo.Whole},
		{"usr/lib/openshift/other", true, ostreerepo.Drop},
		{"usr/lib/modules", true, ostreerepo.Descend},
		{"usr/lib/modules/5.14.0", true, ostreerepo.Descend},
		{"usr/lib/modules/5.14.0/vmlinuz", false, ostreerepo.Whole},
		{"usr/lib/modules/5.14.0/initramfs.img", false, ostreerepo.Whole},
		{"usr/lib/modules/5.14.0/dtb", true, ostreerepo.Whole},
		{"usr/lib/modules/5.14.0/kernel", true, ostreerepo.Drop},
		{"usr/lib/systemd", true, ostreerepo.Drop},
		{"usr/bin", true, ostreerepo.Drop},
		{"usr/share", true, ostreerepo.Drop},
		{"boot", true, ostreerepo.Whole},
		{"etc", true, ostreerepo.Whole},
		{"bin", false, ostreerepo.Whole},
		{"var", true, ostreerepo.Whole},
	} {
		if got := asideTree(c.rel, c.dir); got != c.want {
			t.Errorf("asideTree(%q, %v) = %v, want %v", c.rel, c.dir, got, c.want)
		}
	}
}

// TestExecutorPausesBeforeEachStep: with the pause failpoint set, a step
// runs only once its file is in the pause folder, and a cancelled run held
// there stops without running it.
func TestExecutorPausesBeforeEachStep(t *testing.T) {
	plan := Plan{Steps: []Step{
		{Desc: "first", Argv: []string{"one"}},
		{Desc: "second", Argv: []string{"two"}},
	}}
	for _, c := range []struct {
		name  string
		ready []string // files in the pause folder from the start
		want  [][]string
	}{
		{"every step let go", []string{"1", "2"}, [][]string{{"one"}, {"two"}}},
		{"held before step 2", []string{"1"}, [][]string{{"one"}}},
		{"held before step 1", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range c.ready {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := &fakeRunner{}
			ex := &executor{runner: r, vars: map[string]string{}, pauseDir: dir}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := ex.run(ctx, plan)
			if held := len(c.want) < len(plan.Steps); held != errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("run() = %v; held: %v", err, held)
			}
			if diff := cmp.Diff(c.want, r.calls); diff != "" {
				t.Errorf("commands mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJournalRebased checks the undo list a journal gives a run that finds
// the sysroot somewhere else than the run that wrote it: paths under the
// old place (and --flag=path values) move, nothing else does, and a
// journal written on the live root is refused elsewhere.
func TestJournalRebased(t *testing.T) {
	undo := []Step{{Desc: "remove the deployment", Argv: []string{"ostree", "admin", "undeploy", "--sysroot=/mnt/a", "1"},
		Undo: &Step{Desc: "nested", Args: map[string]string{argRepo: "/mnt/a/ostree/repo"}}},
		{Desc: "remove the branch", Action: ActionRemoveCommit, Args: map[string]string{argRepo: "/mnt/a/ostree/repo", argRef: "seedbuild/seed", argRoot: "/mnt/ab/x"}}}
	vars := map[string]string{varName(phDeployment): "/mnt/a/ostree/deploy/seed/deploy/abc.0", varName(phChecksum): "abc"}
	for _, tc := range []struct {
		name, wrote, now  string
		repo, sysrootFlag string
		deployment, other string
		err               string
	}{
		{"same place", "/mnt/a", "/mnt/a/", "/mnt/a/ostree/repo", "--sysroot=/mnt/a", "/mnt/a/ostree/deploy/seed/deploy/abc.0", "/mnt/ab/x", ""},
		{"mounted elsewhere", "/mnt/a", "/mnt/b", "/mnt/b/ostree/repo", "--sysroot=/mnt/b", "/mnt/b/ostree/deploy/seed/deploy/abc.0", "/mnt/ab/x", ""},
		{"now the live root", "/mnt/a", "/", "/ostree/repo", "--sysroot=/", "/ostree/deploy/seed/deploy/abc.0", "/mnt/ab/x", ""},
		{"a journal from before the field", "", "/mnt/b", "/mnt/a/ostree/repo", "--sysroot=/mnt/a", "/mnt/a/ostree/deploy/seed/deploy/abc.0", "/mnt/ab/x", ""},
		{"written on the live root", "/", "/mnt/b", "", "", "", "", "with --sysroot / to undo it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := journal{Sysroot: tc.wrote, Undo: undo, Vars: vars}
			got, gotVars, err := j.rebased(tc.now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("rebased: %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got[0].Argv[3] != tc.sysrootFlag || got[0].Argv[4] != "1" || got[0].Undo.Args[argRepo] != tc.repo {
				t.Errorf("the first undo step: %v, its undo %v", got[0].Argv, got[0].Undo.Args)
			}
			if got[1].Args[argRepo] != tc.repo || got[1].Args[argRef] != "seedbuild/seed" || got[1].Args[argRoot] != tc.other {
				t.Errorf("the second undo step's args: %v", got[1].Args)
			}
			if gotVars[varName(phDeployment)] != tc.deployment || gotVars[varName(phChecksum)] != "abc" {
				t.Errorf("the values: %v", gotVars)
			}
			if undo[0].Argv[3] != "--sysroot=/mnt/a" || undo[1].Args[argRepo] != "/mnt/a/ostree/repo" {
				t.Errorf("the journal's own undo list changed: %v", undo)
			}
		})
	}
}

// TestClearImmutable makes a deployment folder immutable, as ostree does,
// and checks that clearImmutable lets it be removed (and that nothing is
// wrong with a stateroot with no deploy/ yet).
func TestClearImmutable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to set the immutable flag (make test runs as root)")
	}
	deploy := filepath.Join(t.TempDir(), "deploy")
	d := filepath.Join(deploy, "abc.0")
	if err := os.MkdirAll(filepath.Join(d, "sysroot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deploy, "abc.0.origin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, fsImmutable)
	unix.Close(fd)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("skipped: the temporary folder's file system has no immutable flag: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(deploy); err == nil {
		t.Fatal("an immutable deployment folder was removed: the test cannot tell")
	}
	if err := clearImmutable(deploy); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(deploy); err != nil {
		t.Errorf("after clearImmutable: %v", err)
	}
	if err := clearImmutable(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("a stateroot without deploy/: %v", err)
	}
}
