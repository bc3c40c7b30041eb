package kargsd

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in     string
		kargs  []string
		arches []string
		bad    bool
	}{
		{`kargs = ["a=1", "b"]`, []string{"a=1", "b"}, nil, false},
		{"# c\nkargs = [\n  \"a\", # x\n  'lit\\eral',\n]\nmatch-architectures = [\"x86_64\"]\n", []string{"a", `lit\eral`}, []string{"x86_64"}, false},
		{`kargs = ["cgroup_no_v1=\"all\""]`, []string{`cgroup_no_v1="all"`}, nil, false},
		{`kargs = "a"`, nil, nil, true},
		{`kargs = [1]`, nil, nil, true},
		{`other = ["a"]`, nil, nil, true},
		{`kargs = ["a"`, nil, nil, true},
	}
	for _, tt := range tests {
		k, a, err := Parse(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("Parse(%q) error = %v, want error %v", tt.in, err, tt.bad)
			continue
		}
		if !tt.bad && (!cmp.Equal(k, tt.kargs) || !cmp.Equal(a, tt.arches)) {
			t.Errorf("Parse(%q) = %q, %q, want %q, %q", tt.in, k, a, tt.kargs, tt.arches)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`kargs = ["a"]`)
	f.Add("kargs = [\n'x',\n]")
	f.Fuzz(func(t *testing.T, s string) {
		Parse(s)
	})
}

func TestRenderParses(t *testing.T) {
	in := []string{"a=1", `cgroup_no_v1="all"`, "quote'd"}
	got, _, err := Parse(string(Render("c", in)))
	if err != nil || !cmp.Equal(got, in) {
		t.Errorf("Parse(Render(%q)) = %q, %v", in, got, err)
	}
}
