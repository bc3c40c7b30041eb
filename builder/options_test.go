package builder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

func TestReadContainersList(t *testing.T) {
	p := filepath.Join(t.TempDir(), "containers.list")
	os.WriteFile(p, []byte("# images to pre-pull\nquay.io/a/b@sha256:1\n\n  quay.io/c/d:4.20  \n#x\n"), 0o644)
	got, err := ReadContainersList(p)
	if want := []string{"quay.io/a/b@sha256:1", "quay.io/c/d:4.20"}; err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadContainersList() = %q, %v; want %q", got, err, want)
	}
	if _, err := ReadContainersList(p + ".missing"); err == nil || !strings.Contains(err.Error(), "containers list") {
		t.Errorf("ReadContainersList(missing) = %v, want an error naming the list", err)
	}
}

// TestBaseFromMachineConfig: with no base given, the base is the root's
// MachineConfig osImageURL, named through the caller's resolver.
func TestBaseFromMachineConfig(t *testing.T) {
	parse := func(name string) (types.ImageReference, error) {
		return alltransports.ParseImageName("docker://" + name)
	}
	tests := []struct {
		name, mc string
		parse    func(string) (types.ImageReference, error)
		want     string
	}{
		{"from the MachineConfig", `{"spec":{"osImageURL":"quay.io/os/rhcos:4.20"}}`, parse, "//quay.io/os/rhcos:4.20"},
		{"no osImageURL", `{"spec":{}}`, parse, "error: give --base"},
		{"no MachineConfig", "", parse, "error: give --base"},
		{"a name the resolver refuses", `{"spec":{"osImageURL":"quay.io/os/rhcos:4.20"}}`,
			func(string) (types.ImageReference, error) { return nil, errors.New("no such registry") }, "error: no such registry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.mc != "" {
				p := filepath.Join(root, "etc/machine-config-daemon/currentconfig")
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(tc.mc), 0o644)
			}
			o := Options{Rootfs: root, ParseImage: tc.parse}
			err := o.baseFromMachineConfig()
			got := ""
			if err != nil {
				got = "error: " + err.Error()
			} else {
				got = o.Base.StringWithinTransport()
			}
			if !strings.HasPrefix(got, tc.want) && !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("baseFromMachineConfig() = %q, want %q", got, tc.want)
			}
		})
	}
}
