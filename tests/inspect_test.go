package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/seedimage"
)

func inspect(t *testing.T, args ...string) seedimage.Description {
	t.Helper()
	r := mustSeedbuild(t, append([]string{"inspect", "--json"}, args...)...)
	var d seedimage.Description
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("inspect --json output: %v\n%s", err, r.stdout)
	}
	return d
}

func TestInspectUpstreamSeeds(t *testing.T) {
	f := getFixtures(t)
	reg := startRegistry(t, registryOptions{})
	tests := []struct {
		name, archive, kind string
		layers              int
	}{
		{"classic", f.classic, "classic", 1},
		{"bootc", f.bootc, "bootc-tarball", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/oci-archive", func(t *testing.T) {
			d := inspect(t, "oci-archive:"+tt.archive)
			checkUpstream(t, d, tt.kind, tt.layers)
		})
		t.Run(tt.name+"/docker", func(t *testing.T) {
			dest := reg.ref("seeds/" + tt.name + ":4.20.0")
			sh(t, nil, "skopeo", "copy", "-q", "--dest-tls-verify=false", "oci-archive:"+tt.archive, dest)
			d := inspect(t, "--tls-verify=false", dest)
			checkUpstream(t, d, tt.kind, tt.layers)
		})
	}
	t.Run("text", func(t *testing.T) {
		r := mustSeedbuild(t, "inspect", "oci-archive:"+f.bootc)
		for _, want := range []string{"Kind:", "bootc-tarball", "Format version:", "4.20.0", "Cluster name:", "sno", "Architecture:", "Layers:"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("format", func(t *testing.T) {
		d := inspect(t, "oci-archive:"+f.bootc)
		r := mustSeedbuild(t, "inspect", "--format", "{{.Kind}} {{.Digest}} {{.OCPVersion}} {{len .Layers}}", "oci-archive:"+f.bootc)
		if want := fmt.Sprintf("bootc-tarball %s 4.20.0 2\n", d.Digest); r.stdout != want {
			t.Errorf("inspect --format printed %q, want %q", r.stdout, want)
		}
	})
}

func checkUpstream(t *testing.T, d seedimage.Description, kind string, layers int) {
	t.Helper()
	if d.Kind != kind || d.FormatVersion != 4 || d.OCPVersion != "4.20.0" || d.ClusterName != "sno" || d.Architecture == "" || d.LayerCount != layers {
		t.Errorf("inspect = %+v, want kind %s, format 4, OCP 4.20.0, cluster sno, %d layers", d, kind, layers)
	}
	if !strings.HasPrefix(d.Digest, "sha256:") {
		t.Errorf("inspect digest = %q, want sha256:...", d.Digest)
	}
}

func TestInspectFailures(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	data, err := os.ReadFile(f.classic)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.tar")
	if err := os.WriteFile(truncated, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"not a seed", []string{"oci-archive:" + f.base}, 1, "is not a seed"},
		{"truncated archive", []string{"oci-archive:" + truncated}, 1, truncated},
		{"missing file", []string{"oci-archive:" + filepath.Join(dir, "nope.tar")}, 1, "nope.tar"},
		{"unknown transport", []string{"bogus://x"}, 2, "bogus"},
		{"no argument", nil, 2, "IMAGE"},
		{"two arguments", []string{"a", "b"}, 2, "IMAGE"},
		{"unknown flag", []string{"--bogus", "x"}, 2, "--bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seedbuild(t, nil, append([]string{"inspect"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("inspect %v: %s\nwant exit %d", tt.args, r, tt.code)
			}
			first := strings.SplitN(strings.TrimSpace(r.stderr), "\n", 2)[0]
			if !strings.Contains(first, tt.contains) || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("inspect %v first stderr line = %q, want one line naming %q", tt.args, first, tt.contains)
			}
		})
	}
}
