package deployer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestReadKargsD: the kargs.d files that apply to the architecture, in
// name order, as bootc reads them: one without match-architectures
// applies, one whose list names another architecture or none does not.
func TestReadKargsD(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "usr/lib/bootc/kargs.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"10-all.toml":   `kargs = ["all=1"]`,
		"20-x86.toml":   "kargs = [\"x86=1\"]\nmatch-architectures = [\"x86_64\"]",
		"30-arm.toml":   "kargs = [\"arm=1\"]\nmatch-architectures = [\"aarch64\"]",
		"40-none.toml":  "kargs = [\"none=1\"]\nmatch-architectures = []",
		"50-bad.toml":   `kargs = "not a list"`,
		"60-other.conf": `kargs = ["ignored=1"]`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kargs, unreadable := readKargsD(dirTree(root), "amd64")
	if want := []string{"all=1", "x86=1"}; !slices.Equal(kargs, want) {
		t.Errorf("readKargsD(amd64) = %q, want %q", kargs, want)
	}
	if len(unreadable) != 1 {
		t.Errorf("readKargsD unreadable = %q, want 50-bad.toml alone", unreadable)
	}
}
