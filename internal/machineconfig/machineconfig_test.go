package machineconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name, doc   string // doc "" means no file
		wantImage   string
		wantVersion string
		wantFiles   []string
		wantFIPS    bool
		wantErr     string
	}{
		{"rendered config", `{"metadata":{"name":"rendered-master-1","annotations":{"` + ReleaseVersionAnnotation + `":"4.20.3"}},
			"spec":{"osImageURL":"example.com/rhcos@sha256:00","config":{"storage":{"files":[{"path":"/var/lib/kubelet/config.json"}]}}}}`,
			"example.com/rhcos@sha256:00", "4.20.3", []string{"/var/lib/kubelet/config.json"}, false, ""},
		{"older config without the annotation", `{"metadata":{"name":"rendered-master-1"},"spec":{"osImageURL":"example.com/rhcos:1","fips":true}}`,
			"example.com/rhcos:1", "", nil, true, ""},
		{"no file", "", "", "", nil, false, ""},
		{"not JSON", `{"spec":`, "", "", nil, false, "parsing"},
	}
	for _, tt := range tests {
		root := t.TempDir()
		if tt.doc != "" {
			p := filepath.Join(root, Path)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mc, err := Read(root)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), Path) {
				t.Errorf("%s: error = %v, want one saying %q and naming the file", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || mc.OSImageURL != tt.wantImage || mc.ReleaseVersion != tt.wantVersion || !slices.Equal(mc.Files, tt.wantFiles) || mc.FIPS != tt.wantFIPS {
			t.Errorf("%s: got image %q, version %q, files %v, fips %v (%v); want %q, %q, %v, %v", tt.name,
				mc.OSImageURL, mc.ReleaseVersion, mc.Files, mc.FIPS, err, tt.wantImage, tt.wantVersion, tt.wantFiles, tt.wantFIPS)
		}
	}
}
