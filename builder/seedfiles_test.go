package builder

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/labels"
)

func TestReadMachineConfig(t *testing.T) {
	tests := []struct {
		name, doc   string // doc "" means no file
		wantImage   string
		wantVersion string
		wantFiles   []string
		wantErr     string
	}{
		{"rendered config", `{"metadata":{"name":"rendered-master-1","annotations":{"` + labels.ReleaseVersionAnnotation + `":"4.20.3"}},
			"spec":{"osImageURL":"example.com/rhcos@sha256:00","config":{"storage":{"files":[{"path":"/var/lib/kubelet/config.json"}]}}}}`,
			"example.com/rhcos@sha256:00", "4.20.3", []string{"/var/lib/kubelet/config.json"}, ""},
		{"older config without the annotation", `{"metadata":{"name":"rendered-master-1"},"spec":{"osImageURL":"example.com/rhcos:1"}}`,
			"example.com/rhcos:1", "", nil, ""},
		{"no file", "", "", "", nil, ""},
		{"not JSON", `{"spec":`, "", "", nil, "parsing"},
	}
	for _, tt := range tests {
		root := t.TempDir()
		if tt.doc != "" {
			p := filepath.Join(root, currentConfig)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mc, err := ReadMachineConfig(root)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), currentConfig) {
				t.Errorf("%s: error = %v, want one saying %q and naming the file", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || mc.OSImageURL != tt.wantImage || mc.ReleaseVersion != tt.wantVersion || !slices.Equal(mc.Files, tt.wantFiles) {
			t.Errorf("%s: got image %q, version %q, files %v (%v); want %q, %q, %v", tt.name,
				mc.OSImageURL, mc.ReleaseVersion, mc.Files, err, tt.wantImage, tt.wantVersion, tt.wantFiles)
		}
	}
}
