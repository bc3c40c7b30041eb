package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestRunExitCodes runs the command tree as main does, for bad usage that
// must be refused before anything is read or written: exit 2 and a line
// naming the bad input.
func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		contains string
	}{
		{"version", nil, []string{"version"}, exitOK, ""},
		{"unknown command", nil, []string{"nosuch"}, exitUsage, "nosuch"},
		{"unknown flag", nil, []string{"version", "--nosuch"}, exitUsage, "--nosuch"},
		{"deploy without --stateroot", nil, []string{"deploy", "oci-archive:" + dir + "/x.tar"}, exitUsage, "stateroot"},
		{"deploy with a bad stateroot", nil, []string{"deploy", "oci-archive:" + dir + "/x.tar", "--stateroot", "../up"}, exitUsage, "../up"},
		{"deploy with a bad method", nil, []string{"deploy", "oci-archive:" + dir + "/x.tar", "--stateroot", "s", "--method", "magic"}, exitUsage, "magic"},
		{"create with a bad layout", nil, []string{"create", "--rootfs", dir, "--layout", "zip", "-o", "oci-archive:" + dir + "/s.tar"}, exitUsage, "zip"},
		{"create without a destination", nil, []string{"create", "--rootfs", dir}, exitUsage, "--output"},
		{"build with SOURCE_DATE_EPOCH not a number", map[string]string{"SOURCE_DATE_EPOCH": "123abc"}, []string{"build", dir}, exitUsage, "123abc"},
		{"build with a negative SOURCE_DATE_EPOCH", map[string]string{"SOURCE_DATE_EPOCH": "-1"}, []string{"build", dir}, exitUsage, "SOURCE_DATE_EPOCH"},
		{"build with a negative --timestamp", nil, []string{"build", "--timestamp", "-5", dir}, exitUsage, "--timestamp"},
		{"negative --retry", nil, []string{"inspect", "--retry", "-1", "oci-archive:" + dir + "/x.tar"}, exitUsage, "retry"},
		{"inspect without an image", nil, []string{"inspect"}, exitUsage, "IMAGE"},
		{"--host-root that is not PID 1's root: a failure, before anything is read", nil, []string{"--host-root", dir, "facts"}, exitFailure, "PID 1"},
		{"build with an annotation that is not KEY=VALUE", nil, []string{"build", "--annotation", "novalue", dir}, exitUsage, "novalue"},
		{"build with a label without a key", nil, []string{"build", "--label", "=v", dir}, exitUsage, "--label"},
		{"--format that does not parse", nil, []string{"version", "--format", "{{.Version"}, exitUsage, "{{.Version"},
		{"--format naming no field", nil, []string{"version", "--format", "{{.Digest}}"}, exitUsage, "Digest"},
		{"--format with --json", nil, []string{"facts", "--rootfs", dir, "--json", "--format", "{{.FIPS}}"}, exitUsage, "--json"},
		{"create with a bad --format, before any work", nil, []string{"create", "--rootfs", dir + "/nosuch", "-o", "oci-archive:" + dir + "/s.tar", "--format", "{{"}, exitUsage, "--format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			args := append([]string{"--root", dir + "/root", "--runroot", dir + "/run"}, tc.args...)
			code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(errb.String()+out.String(), tc.contains) {
				t.Errorf("run(%q) = %d, stderr %q; want %d naming %q", tc.args, code, errb.String(), tc.code, tc.contains)
			}
			if strings.Contains(errb.String(), "goroutine ") {
				t.Errorf("run(%q) printed a stack trace:\n%s", tc.args, errb.String())
			}
		})
	}
}

func TestParseEpoch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1700000000", 1700000000, true}, {"123abc", 0, false}, {"-1", 0, false}, {" 5", 0, false}, {"", 0, false},
	} {
		got, err := parseEpoch(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got.Unix() != tc.want) {
			t.Errorf("parseEpoch(%q) = %v, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestFormatOutput prints one result each way --format and --json allow.
func TestFormatOutput(t *testing.T) {
	type result struct {
		Digest string   `json:"digest"`
		Layers []string `json:"layers"`
	}
	v := result{Digest: "sha256:abc", Layers: []string{"a", "b"}}
	tests := []struct {
		name       string
		flags      formatFlags
		want       string
		structured bool
	}{
		{"text", formatFlags{}, "", false},
		{"--json", formatFlags{asJSON: true}, "{\n  \"digest\": \"sha256:abc\",\n  \"layers\": [\n    \"a\",\n    \"b\"\n  ]\n}\n", true},
		{"--format json", formatFlags{format: "JSON"}, "{\n  \"digest\": \"sha256:abc\",\n  \"layers\": [\n    \"a\",\n    \"b\"\n  ]\n}\n", true},
		{"a field", formatFlags{format: "{{.Digest}}"}, "sha256:abc\n", true},
		{"a newline kept single", formatFlags{format: "{{.Digest}}\n"}, "sha256:abc\n", true},
		{"funcs", formatFlags{format: "{{join .Layers \",\"}} {{upper .Digest}} {{json .Layers}}"}, "a,b SHA256:ABC [\"a\",\"b\"]\n", true},
		{"range", formatFlags{format: "{{range .Layers}}{{.}};{{end}}"}, "a;b;\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.flags
			if err := f.parse(); err != nil {
				t.Fatal(err)
			}
			if f.structured() != tc.structured {
				t.Fatalf("structured() = %v, want %v", f.structured(), tc.structured)
			}
			if !tc.structured {
				return
			}
			var b bytes.Buffer
			if err := f.write(&b, v); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("wrote %q, want %q", b.String(), tc.want)
			}
		})
	}
}

// TestFormatThroughCommands runs --format on the commands that have it.
func TestFormatThroughCommands(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"version", "--format", "{{.Platform}}"}, "linux/"},
		{[]string{"version", "--format", "json"}, `"go_version"`},
		{[]string{"facts", "--rootfs", dir, "--format", "{{.OCPVersion}}|"}, "|"},
		{[]string{"info", "--format", "{{.GraphRoot}}"}, dir + "/root"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"--root", dir + "/root", "--runroot", dir + "/run"}, tc.args...)
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != exitOK || !strings.Contains(out.String(), tc.want) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %q in stdout", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}

func TestIsCobraUsage(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{`unknown command "nosuch" for "seedbuild"`, true},
		{`accepts 1 arg(s), received 2`, true},
		{`invalid argument "x" for "--retry" flag: strconv.ParseInt: parsing "x": invalid syntax`, true},
		{`writing seed to "containers-storage:x": unpacking failed (remount /, flags: 0x44000: invalid argument)`, false},
		{`mounting "/x": unknown flag 0x1`, false},
	} {
		if got := isCobraUsage(errors.New(tc.msg)); got != tc.want {
			t.Errorf("isCobraUsage(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}
