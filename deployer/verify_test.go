package deployer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCompareEtcTellsOstreesOwnWrites: the files ostree itself rewrites
// when it deploys are told from the seed's /etc state that was lost.
func TestCompareEtcTellsOstreesOwnWrites(t *testing.T) {
	const policy = "selinux/default/policy/policy.33"
	tests := []struct {
		name      string
		path      string // differs between the seed and the deployment
		missing   bool   // absent from the deployment rather than different
		refreshed bool
		problem   bool
	}{
		{"a node file lost", "kubernetes/kubelet.conf", false, true, true},
		{"a node file missing", "kubernetes/kubelet.conf", true, true, true},
		{".updated unlinked by every deploy", ".updated", true, false, false},
		{"policy rebuilt by a merge deploy", policy, false, true, false},
		{"compiled policy store rebuilt", "selinux/default/active/policy.kern", false, true, false},
		{"policy changed without a merge deploy", policy, false, false, true},
		{"the module store is the seed's input", "selinux/default/active/modules/400/local/cil", false, true, true},
		{"selinux/config is the seed's", "selinux/config", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed, etc := t.TempDir(), t.TempDir()
			for _, rel := range []string{"hostname", tt.path} {
				for _, root := range []string{seed, etc} {
					if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(seed, rel), []byte("seed\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(etc, "hostname"), []byte("seed\n"), 0o644)
			if !tt.missing {
				os.WriteFile(filepath.Join(etc, tt.path), []byte("rewritten\n"), 0o644)
			}
			problems, rewritten := compareEtc(seed, etc, tt.refreshed)
			if got := len(problems) > 0; got != tt.problem {
				t.Errorf("compareEtc(%s, refreshed %v) = %q, %d rewritten; want a problem: %v", tt.path, tt.refreshed, problems, rewritten, tt.problem)
			}
			if !tt.problem && rewritten != 1 {
				t.Errorf("compareEtc(%s) counted %d files rewritten by ostree, want 1", tt.path, rewritten)
			}
			if slices.ContainsFunc(problems, func(p string) bool { return p == "/etc/hostname does not hold the seed's content" }) {
				t.Errorf("an unchanged file was reported: %q", problems)
			}
		})
	}
}
