package frontend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goodRoot makes a minimal root that passes every image rule.
func goodRoot(t *testing.T) string {
	root := t.TempDir()
	for _, d := range append(apiDirs, "usr/lib/modules/5.14/", "usr/lib/bootc/kargs.d", "etc") {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "usr/lib/modules/5.14/vmlinuz"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/lib/bootc/kargs.d/10.toml"), []byte(`kargs = ["a"]`), 0o644)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("x"), 0o644)
	os.Symlink("../run", filepath.Join(root, "var/run"))
	return root
}

func TestLintImage(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(root string)
		want   []string
	}{
		{"good", func(string) {}, nil},
		{"var/run folder", func(r string) { os.Remove(filepath.Join(r, "var/run")); os.Mkdir(filepath.Join(r, "var/run"), 0o755) }, []string{RuleVarRunLink}},
		{"two kernels", func(r string) {
			os.MkdirAll(filepath.Join(r, "usr/lib/modules/6.0"), 0o755)
			os.WriteFile(filepath.Join(r, "usr/lib/modules/6.0/vmlinuz"), nil, 0o644)
		}, []string{RuleKernels}},
		{"no api dirs", func(r string) { os.Remove(filepath.Join(r, "proc")); os.Remove(filepath.Join(r, "sysroot")) }, []string{RuleAPIDirs}},
		{"bad kargs", func(r string) {
			os.WriteFile(filepath.Join(r, "usr/lib/bootc/kargs.d/20.toml"), []byte("kargs = 1"), 0o644)
		}, []string{RuleImageKargs}},
		{"etc and usr/etc", func(r string) {
			os.MkdirAll(filepath.Join(r, "usr/etc"), 0o755)
			os.WriteFile(filepath.Join(r, "usr/etc/x"), nil, 0o644)
		}, []string{RuleEtcAndUsrEtc}},
		{"non-UTF-8", func(r string) { os.WriteFile(filepath.Join(r, "usr/bad-\xff"), nil, 0o644) }, []string{RuleNonUTF8}},
		{"precache list by digest", func(r string) {
			os.MkdirAll(filepath.Join(r, "usr/lib/openshift/seed"), 0o755)
			os.WriteFile(filepath.Join(r, "usr/lib/openshift/seed/containers.list"), []byte("quay.io/a/b@sha256:"+strings.Repeat("0", 64)+"\n"), 0o644)
		}, nil},
		{"precache list by tag", func(r string) {
			os.MkdirAll(filepath.Join(r, "usr/lib/openshift/seed"), 0o755)
			os.WriteFile(filepath.Join(r, "usr/lib/openshift/seed/containers.list"), []byte("quay.io/a/b@sha256:"+strings.Repeat("0", 64)+"\nquay.io/a/c:v1\n"), 0o644)
		}, []string{RuleDigestless}},
		{"classic seed's list by tag", func(r string) { os.WriteFile(filepath.Join(r, "containers.list"), []byte("quay.io/a/c:v1\n"), 0o644) }, []string{RuleDigestless}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := goodRoot(t)
			tt.break_(root)
			var got []string
			for _, f := range LintImage(root, "img") {
				got = append(got, f.Rule)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LintImage() rules mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
