package imageref

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParse(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "registries.conf")
	os.WriteFile(conf, []byte("unqualified-search-registries = [\"registry.example.com\"]\n[aliases]\n\"rhcos\" = \"quay.example.com/openshift/rhcos\"\n"), 0o644)
	t.Setenv("CONTAINERS_REGISTRIES_CONF", conf)
	tests := []struct {
		name, want string
		bad        bool
	}{
		{"oci-archive:/var/tmp/seed.tar", "oci-archive:/var/tmp/seed.tar:", false},
		{"docker://registry.example.com/seeds/sno:4.20", "docker://registry.example.com/seeds/sno:4.20", false},
		{"registry.example.com/seeds/sno:4.20", "docker://registry.example.com/seeds/sno:4.20", false},
		{"localhost/seed:1", "docker://localhost/seed:1", false},
		{"seeds/sno:4.20", "docker://registry.example.com/seeds/sno:4.20", false},
		{"rhcos:4.20", "docker://quay.example.com/openshift/rhcos:4.20", false},
		{"bogus://x", "", true},
		{"", "", true},
		{"UPPER/case", "", true},
	}
	for _, tt := range tests {
		ref, err := Parse(tt.name, nil)
		if (err != nil) != tt.bad {
			t.Errorf("Parse(%q) error = %v, want error %v", tt.name, err, tt.bad)
			continue
		}
		if err == nil {
			if got := ref.Transport().Name() + ":" + ref.StringWithinTransport(); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.name, got, tt.want)
			}
		}
	}
}
