package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/seedbuild/seedbuild/internal/hostroot"
)

// fakeProc makes a proc tree: each key is a path under it, each value the
// file's content; a key ending in / is a folder.
func fakeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRunningServices(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"kubelet running", map[string]string{"1/comm": "systemd\n", "812/comm": "kubelet\n", "900/comm": "bash\n"}, []string{"kubelet"}},
		{"crio running", map[string]string{"1/comm": "systemd\n", "77/comm": "crio\n"}, []string{"crio"}},
		{"both, several processes each", map[string]string{"5/comm": "kubelet\n", "6/comm": "crio\n", "7/comm": "crio\n", "8/comm": "kubelet"}, []string{"crio", "kubelet"}},
		{"neither", map[string]string{"1/comm": "systemd\n", "2/comm": "kubelet-helper\n", "3/comm": "crio-wipe\n", "4/comm": "conmon\n"}, []string{}},
		{"empty", map[string]string{}, []string{}},
		{"unreadable entries skipped", map[string]string{
			"10/":         "", // a process that went away: no comm
			"11/comm/":    "", // comm that cannot be read as a file
			"uptime":      "12.00 10.00\n",
			"self/status": "Name:\tkubelet\n",
			"12/comm":     "kubelet\n",
		}, []string{"kubelet"}},
		{"only unreadable entries", map[string]string{"10/": "", "11/comm/": "", "uptime": "1\n"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runningServices(fakeProc(t, tt.files))
			if err != nil {
				t.Fatalf("runningServices: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("runningServices mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("proc root missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "proc")
		if got, err := runningServices(missing); err == nil {
			t.Errorf("runningServices(%q) = %q, nil; want an error", missing, got)
		}
	})
}

// TestCheckRunningOnlyForLiveRoot: a root other than / is never checked, so
// a captured node root built in CI is not refused for what the CI host runs.
func TestCheckRunningOnlyForLiveRoot(t *testing.T) {
	for _, root := range []string{t.TempDir(), "/var/tmp/root", "relative/root"} {
		if err := checkRunning(hostroot.Host{}, root); err != nil {
			t.Errorf("checkRunning(%q) = %v, want nil", root, err)
		}
	}
}
