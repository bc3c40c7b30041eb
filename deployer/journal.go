package deployer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/seedbuild/seedbuild/scratch"
)

// journal records what a deploy run is about to change, so that the next
// run can undo it when this one is killed before it could undo itself.
type journal struct {
	PID          int          `json:"pid"`
	Stateroot    string       `json:"stateroot"`
	NewStateroot bool         `json:"new_stateroot"`
	Before       []deployment `json:"before"`
}

const journalPrefix = ".seedbuild-journal-"

func journalPath(sysroot, stateroot string) string {
	return filepath.Join(sysroot, "ostree", journalPrefix+stateroot+".json")
}

func (j journal) write(sysroot string) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	p := journalPath(sysroot, j.Stateroot)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing the deploy journal %q: %w", p, err)
	}
	return os.Rename(tmp, p)
}

// recoverJournals undoes what killed deploy runs left in the sysroot: the
// deployments they made and the stateroots they created. It says so on w.
func (e *executor) recoverJournals(ctx context.Context, w io.Writer) error {
	files, _ := filepath.Glob(filepath.Join(e.sysroot, "ostree", journalPrefix+"*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var j journal
		if err := json.Unmarshal(data, &j); err != nil || ValidateStateroot(j.Stateroot) != nil {
			continue
		}
		if j.PID > 0 && scratch.Alive(j.PID) {
			continue
		}
		fresh, err := e.newDeployments(ctx, j.Stateroot, j.Before)
		if err == nil {
			err = e.undeploy(ctx, fresh)
		}
		if err != nil {
			return fmt.Errorf("undoing the deploy into %q that pid %d left: %w", j.Stateroot, j.PID, err)
		}
		if j.NewStateroot {
			if err := os.RemoveAll(filepath.Join(e.sysroot, "ostree/deploy", j.Stateroot)); err != nil {
				return fmt.Errorf("removing the partial stateroot %q: %w", j.Stateroot, err)
			}
		}
		var errb strings.Builder
		e.runner.Run(ctx, []string{"ostree", "refs", "--repo=" + filepath.Join(e.sysroot, "ostree/repo"), "--delete", "seedbuild/" + j.Stateroot}, io.Discard, &errb)
		os.Remove(f)
		fmt.Fprintf(w, "Undid an interrupted deploy into stateroot %s (pid %d): removed %d deployment(s)%s\n",
			j.Stateroot, j.PID, len(fresh), map[bool]string{true: " and the stateroot", false: ""}[j.NewStateroot])
	}
	return nil
}
