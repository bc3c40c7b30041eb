package frontend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testLabels stands for the registry and local storage: the labels of the
// images the corpus builds FROM.
func testLabels(_ context.Context, image string) (map[string]string, error) {
	known := map[string]map[string]string{
		"localhost/rhcos:4.20":        {"containers.bootc": "1", "ostree.bootable": "1"},
		"localhost/seed:native":       {"containers.bootc": "1", "com.openshift.lifecycle-agent.seed_format_version": "5"},
		"docker.io/library/debian:12": {},
	}
	if l, ok := known[image]; ok {
		return l, nil
	}
	return nil, errors.New("not found")
}

func TestLintCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/lint/*.Containerfile")
	if err != nil || len(files) < 8 {
		t.Fatalf("corpus: %v, %d files", err, len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".Containerfile")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wantData, err := os.ReadFile(strings.TrimSuffix(f, ".Containerfile") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			findings := LintContainerfile(context.Background(), filepath.Base(f), data, LintOptions{ContextDir: "testdata/lint/ctx", Labels: testLabels})
			var got []string
			for _, fd := range findings {
				got = append(got, fmt.Sprintf("%s %d", fd.Rule, fd.Line))
				if fd.Message == "" || fd.Hint == "" || fd.File == "" {
					t.Errorf("finding %+v lacks a message, hint or file", fd)
				}
			}
			var wantPairs []string
			for _, l := range strings.Split(strings.TrimSpace(string(wantData)), "\n") {
				if l != "" {
					wantPairs = append(wantPairs, l)
				}
			}
			if diff := cmp.Diff(wantPairs, got); diff != "" {
				t.Errorf("findings (rule line) mismatch (-want +got):\n%s\n%v", diff, findings)
			}
			bad := strings.HasPrefix(name, "bad-")
			if HasErrors(findings, true) != bad {
				t.Errorf("HasErrors(strict) = %v for %s", !bad, name)
			}
		})
	}
}

func TestLintSeverities(t *testing.T) {
	data := []byte("FROM localhost/rhcos:4.20\nCOPY x /var/lib/x\n")
	f := LintContainerfile(context.Background(), "Containerfile", data, LintOptions{Labels: testLabels})
	if len(f) != 1 || f[0].Severity != Warning {
		t.Fatalf("findings = %v, want one warning", f)
	}
	if HasErrors(f, false) || !HasErrors(f, true) {
		t.Errorf("HasErrors(warning) = %v/%v, want false, then true when strict", HasErrors(f, false), HasErrors(f, true))
	}
}

func FuzzLintContainerfile(f *testing.F) {
	files, _ := filepath.Glob("testdata/lint/*.Containerfile")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("FROM a\nRUN <<EOF\nx\nEOF\n"))
	f.Add([]byte("\\\n\\\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fd := range LintContainerfile(context.Background(), "Containerfile", data, LintOptions{ContextDir: "testdata/lint/ctx", Labels: testLabels}) {
			if fd.Rule == "" || fd.Severity == "" {
				t.Fatalf("finding without rule or severity: %+v", fd)
			}
		}
	})
}
