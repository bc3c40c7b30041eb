package frontend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/labels"
)

func TestWriteContextRefusals(t *testing.T) {
	good := []byte(`{"clusterName": "sno"}`)
	tests := []struct {
		name    string
		prepare func(out string) // makes what is at out before the call
		config  []byte
		kind    labels.Kind
		want    string // "" means success
	}{
		{"new folder", nil, good, labels.Native, ""},
		{"empty folder", func(out string) { os.Mkdir(out, 0o755) }, good, labels.Native, ""},
		{"a file is there", func(out string) { os.WriteFile(out, []byte("keep me"), 0o644) }, good, labels.Native, "is not a folder"},
		{"a folder with files", func(out string) {
			os.Mkdir(out, 0o755)
			os.WriteFile(filepath.Join(out, "x"), []byte("keep me"), 0o644)
		}, good, labels.Native, "not empty"},
		{"JSON array", nil, []byte(`[1, 2]`), labels.Native, "JSON object"},
		{"bad JSON", nil, []byte(`{"clusterName": `), labels.Native, "byte 16"},
		{"not a seed", nil, good, labels.NotASeed, "not a seed"},
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "ctx")
		if tt.prepare != nil {
			tt.prepare(out)
		}
		before := snapshot(out)
		_, err := WriteContext(out, ConfiguredSeed{Seed: "localhost/seed:1", Kind: tt.kind, ClusterConfig: tt.config})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if _, err := os.Stat(filepath.Join(out, "Containerfile")); err != nil {
				t.Errorf("%s: no Containerfile written: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want one saying %q", tt.name, err, tt.want)
		}
		if after := snapshot(out); after != before {
			t.Errorf("%s: the refused call changed %s: %q, was %q", tt.name, out, after, before)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".seedbuild-context-*")); len(left) > 0 {
			t.Errorf("%s: left %v behind", tt.name, left)
		}
	}
}

// snapshot describes what is at path: nothing, a file's content, or a
// folder's names.
func snapshot(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return "nothing"
	}
	if !fi.IsDir() {
		data, _ := os.ReadFile(path)
		return "file " + string(data)
	}
	entries, _ := os.ReadDir(path)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return "folder " + strings.Join(names, ",")
}
