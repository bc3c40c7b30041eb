package deployer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/seedbuild/seedbuild/internal/scratch"
)

// journal records, on the sysroot's disk, what a deploy run is about to do
// and how to take it back: each step's undo is added before the step runs,
// and progress after it. A run killed, or cut off by a power cut, leaves
// its journal; the next run into the same sysroot runs its undo list, so
// nothing half-made stays behind.
type journal struct {
	PID int `json:"pid"`
	// Boot is the boot the run was in (scratch.BootID): after a power cut
	// its pid may be another process's.
	Boot      string `json:"boot"`
	Stateroot string `json:"stateroot"`
	// Sysroot is where the run found the sysroot (--sysroot): the undo
	// list's paths are under it.
	Sysroot string       `json:"sysroot,omitempty"`
	Before  []deployment `json:"before"`
	// BeforeImageRefs are the repo's container image refs when the run
	// started (see executor.beforeImageRefs).
	BeforeImageRefs []string `json:"before_image_refs"`
	// Done is the number of steps that finished.
	Done int `json:"done"`
	// Undo is the undo list so far, oldest first; Vars are the values the
	// steps made, which the undo steps' placeholders name.
	Undo []Step            `json:"undo"`
	Vars map[string]string `json:"vars"`

	path string
}

const journalPrefix = ".seedbuild-journal-"

func journalPath(sysroot, stateroot string) string {
	return filepath.Join(sysroot, "ostree", journalPrefix+stateroot+".json")
}

// write replaces the journal on disk atomically and durably: a power cut
// leaves either the old journal or the new one.
func (j *journal) write() error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp := j.tmpPath()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the deploy journal %q: %w", j.path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(j.path))
	}
	if err != nil {
		return fmt.Errorf("writing the deploy journal %q: %w", j.path, err)
	}
	return nil
}

// removeFirstWrites removes, from the folder dir that holds the journals,
// each temporary journal with no journal beside it: the first write of a
// run that a kill or a power cut stopped before its rename was synced.
// write syncs the rename before the run's first step, so that run changed
// nothing a journal would undo. (A temporary file beside its journal is
// the journal's, removed with it.) One a live run may be writing is left:
// its run's pid is alive, or it names none and was changed in this boot.
func removeFirstWrites(dir string, w io.Writer) {
	if w == nil {
		w = io.Discard
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*.json.tmp"))
	for _, tmp := range tmps {
		if _, err := os.Lstat(strings.TrimSuffix(tmp, ".tmp")); err == nil {
			continue
		}
		var j journal
		pid := 0
		if data, err := os.ReadFile(tmp); err == nil && json.Unmarshal(data, &j) == nil && j.PID > 0 {
			var alive bool
			if pid, alive = j.runAlive(); alive {
				continue
			}
		} else if !scratch.FromEarlierBoot(tmp) {
			continue
		}
		if err := os.Remove(tmp); err == nil {
			syncDir(dir)
			fmt.Fprintf(w, "Removed %s, left by an interrupted seedbuild run (pid %d) before its first step\n", tmp, pid)
		}
	}
}

// runAlive says whether the run that wrote the journal is alive: its pid,
// in this boot (scratch.StampAlive).
func (j journal) runAlive() (pid int, alive bool) {
	return scratch.StampAlive(fmt.Sprintf("%d %s", j.PID, j.Boot))
}

// tmpPath is where write puts the journal before renaming it into place.
func (j *journal) tmpPath() string { return j.path + ".tmp" }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// remove deletes the journal once nothing is left to undo, and the
// temporary file of a write a power cut stopped before its rename (the
// booted flush-point replay found one left beside a finished journal).
func (j *journal) remove() error {
	for _, p := range []string{j.path, j.tmpPath()} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return syncDir(filepath.Dir(j.path))
}

// recoverJournals undoes what killed deploy runs left in the sysroot, by
// running the undo list each one recorded, newest first, and says so. A
// journal whose undo fails stays for the next run, and the error names it.
//
// With bootedOnly, it finishes only the journal of the booted stateroot (a
// run cut off once its deployment was whole and the default): that needs
// no seed, so it is done before a run is refused for deploying into the
// booted stateroot, which is what rerunning the cut-off command does.
func (e *executor) recoverJournals(ctx context.Context, bootedOnly bool) error {
	if !bootedOnly {
		removeFirstWrites(filepath.Join(e.sysroot, "ostree"), e.log)
	}
	files, _ := filepath.Glob(filepath.Join(e.sysroot, "ostree", journalPrefix+"*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading the deploy journal %q: %w", f, err)
		}
		j := journal{path: f}
		if err := json.Unmarshal(data, &j); err != nil || ValidateStateroot(j.Stateroot) != nil {
			return fmt.Errorf("reading the deploy journal %q: not a journal seedbuild wrote (%w); remove it by hand once the stateroot it names is checked", f, err)
		}
		if _, alive := j.runAlive(); alive {
			continue
		}
		if booted := sysrootFacts(e.host, e.sysroot).Booted; booted != "" && booted == j.Stateroot {
			if err := e.finishBooted(ctx, j); err != nil {
				return err
			}
			continue
		}
		if bootedOnly {
			continue
		}
		undo, vars, err := j.rebased(e.sysroot)
		if err != nil {
			return fmt.Errorf("undoing the interrupted deploy into %q that pid %d left (journal %s): %w", j.Stateroot, j.PID, f, err)
		}
		saved, savedBefore, savedRefs := e.vars, e.before, e.beforeImageRefs
		e.vars, e.before, e.beforeImageRefs = vars, j.Before, j.BeforeImageRefs
		if e.vars == nil {
			e.vars = map[string]string{}
		}
		errs := e.undo(ctx, undo)
		e.vars, e.before, e.beforeImageRefs = saved, savedBefore, savedRefs
		if len(errs) > 0 {
			var msgs []string
			for _, err := range errs {
				msgs = append(msgs, err.Error())
			}
			return fmt.Errorf("undoing the interrupted deploy into %q that pid %d left (journal %s): %s", j.Stateroot, j.PID, f, strings.Join(msgs, "; "))
		}
		if err := j.remove(); err != nil {
			return fmt.Errorf("removing the deploy journal %q: %w", f, err)
		}
		e.emit(Event{Type: EventRecovered, Desc: fmt.Sprintf("Undid an interrupted deploy into stateroot %s (pid %d, %d step(s) done): %d undo step(s) run",
			j.Stateroot, j.PID, j.Done, len(j.Undo))})
	}
	return nil
}

// rebased is the journal's undo list and values with their paths moved
// to the sysroot as this run finds it (sysroot): a run into a sysroot
// mounted elsewhere (another --sysroot, a rescue system's mount of the
// node's disk) wrote them under that place. A journal written on the live
// root (/) names paths that cannot be told from the running system's: it
// is undone only with --sysroot / again. (A journal from before the field
// is taken as written here.)
func (j journal) rebased(sysroot string) ([]Step, map[string]string, error) {
	from, to := filepath.Clean(j.Sysroot), filepath.Clean(sysroot)
	if j.Sysroot == "" || from == to {
		return j.Undo, j.Vars, nil
	}
	if from == "/" {
		return nil, nil, fmt.Errorf("its run had the sysroot at /, this one at %s: run seedbuild with --sysroot / to undo it", to)
	}
	move := func(s string) string { return rebasePath(s, from, to) }
	var step func(st Step) Step
	step = func(st Step) Step {
		out := st
		out.Argv = nil
		for _, a := range st.Argv {
			out.Argv = append(out.Argv, move(a))
		}
		if st.Args != nil {
			out.Args = map[string]string{}
			for k, v := range st.Args {
				out.Args[k] = move(v)
			}
		}
		if st.Undo != nil {
			u := step(*st.Undo)
			out.Undo = &u
		}
		return out
	}
	var undo []Step
	for _, st := range j.Undo {
		undo = append(undo, step(st))
	}
	var vars map[string]string
	if j.Vars != nil {
		vars = map[string]string{}
		for k, v := range j.Vars {
			vars[k] = move(v)
		}
	}
	return undo, vars, nil
}

// rebasePath moves s, a path under from, or a flag whose value is one
// (--sysroot=PATH), under to; anything else is kept.
func rebasePath(s, from, to string) string {
	prefix, p := "", s
	if strings.HasPrefix(s, "-") {
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			return s
		}
		prefix, p = name+"=", value
	}
	if !under(p, from) {
		return s
	}
	return prefix + filepath.Join(to, strings.TrimPrefix(p, from))
}

// finishBooted ends the journal of a run whose new deployment was whole
// and made the default before the run was cut off: the node has booted
// it. Undoing would mean removing the running system, so the run is
// finished instead: the spare deployments it made beside are removed.
func (e *executor) finishBooted(ctx context.Context, j journal) error {
	fresh, err := e.newDeployments(ctx, j.Stateroot, j.Before)
	if err != nil {
		return err
	}
	var spare []deployment
	for _, d := range fresh {
		if !d.Booted {
			spare = append(spare, d)
		}
	}
	if err := e.undeploy(ctx, spare); err != nil {
		return fmt.Errorf("finishing the interrupted deploy into %q (journal %s): %w", j.Stateroot, j.path, err)
	}
	if err := j.remove(); err != nil {
		return fmt.Errorf("removing the deploy journal %q: %w", j.path, err)
	}
	e.emit(Event{Type: EventRecovered, Desc: fmt.Sprintf("Finished an interrupted deploy into stateroot %s (pid %d): the node booted it whole; removed %d spare deployment(s)",
		j.Stateroot, j.PID, len(spare))})
	return nil
}
