package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBootedDeploymentCommit(t *testing.T) {
	root := t.TempDir()
	commit := strings.Repeat("ab", 32)
	dep := filepath.Join(root, "sysroot/ostree/deploy/node/deploy", commit+".0")
	if err := os.MkdirAll(dep, 0o755); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(root, "sysroot/ostree/boot.1/node/cafe")
	os.MkdirAll(boot, 0o755)
	if err := os.Symlink("../../../deploy/node/deploy/"+commit+".0", filepath.Join(boot, "0")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("sysroot/ostree", filepath.Join(root, "ostree"))
	for _, tc := range []struct{ cmdline, want string }{
		{"root=/dev/vda rw ostree=/ostree/boot.1/node/cafe/0 quiet", commit},
		{"root=/dev/vda rw", ""},
		{"ostree=/ostree/boot.1/node/cafe/1", ""},
	} {
		if got := bootedDeploymentCommit(root, tc.cmdline); got != tc.want {
			t.Errorf("bootedDeploymentCommit(%q) = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}
