package ostreerepo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCommitUsesKnownChecksums records a wrong checksum for a file: the
// commit must take it while the file is unchanged (so the record is used
// at all), and read the file again once it changed.
func TestCommitUsesKnownChecksums(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, as the commit tests do")
	}
	for _, tc := range []struct {
		name      string
		change    func(p string) error
		wantKnown bool
	}{
		{"unchanged", func(string) error { return nil }, true},
		{"mode changed and back", func(p string) error {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
			return os.Chmod(p, 0o644)
		}, false},
		{"rewritten", func(p string) error { return os.WriteFile(p, []byte("real"), 0o644) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sums := map[string]string{}
			for _, name := range []string{"ostree", "go"} {
				repo := filepath.Join(dir, name+"-repo")
				ostree(t, "init", "--mode=bare", "--repo="+repo)
				tree := filepath.Join(dir, name+"-tree")
				p := filepath.Join(tree, "f")
				must(t, os.MkdirAll(tree, 0o755))
				must(t, os.WriteFile(p, []byte("real"), 0o644))
				if name == "ostree" {
					sums[name] = strings.TrimSpace(ostree(t, "commit", "--repo="+repo, "--consume", "--branch=t", "--tree=dir="+tree, "--timestamp=0"))
					continue
				}
				known := NewKnown()
				var st unix.Stat_t
				must(t, unix.Lstat(p, &st))
				f := NewFileHash(st.Uid, st.Gid, st.Mode, "", nil)
				f.Write([]byte("wrong"))
				known.Add(&st, f)
				must(t, tc.change(p))
				got, err := Commit(context.Background(), repo, tree, "t", "", known)
				must(t, err)
				sums[name] = strings.TrimSpace(ostree(t, "ls", "-C", "--repo="+repo, got, "/f"))
				sums["ostree-ls"] = strings.TrimSpace(ostree(t, "ls", "-C", "--repo="+filepath.Join(dir, "ostree-repo"), sums["ostree"], "/f"))
			}
			if same := sums["go"] == sums["ostree-ls"]; same == tc.wantKnown {
				t.Errorf("the commit's /f is %q, ostree's %q: the recorded checksum was used %v, want %v", sums["go"], sums["ostree-ls"], !same, tc.wantKnown)
			}
		})
	}
}
