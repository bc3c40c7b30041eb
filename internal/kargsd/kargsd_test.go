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
		// Comments in a multi-line array, with brackets and quotes in them.
		{"kargs = [ # one ]\n  \"a\", # [\"x\"] '\n  # \"b\",\n  'c#d', \"e'f\" ,\n] # end ]", []string{"a", "c#d", "e'f"}, nil, false},
		// Present but empty: empty, not nil (bootc reads an empty
		// match-architectures as matching no architecture).
		{"kargs = []\nmatch-architectures = []", []string{}, []string{}, false},

		// What the TOML decoder reads and the regex parser before it did not.
		{`kargs = ["""a=1"""]`, []string{"a=1"}, nil, false},                     // a multi-line basic string
		{"kargs = [\"\"\"\nquiet\"\"\"]", []string{"quiet"}, nil, false},         // its first newline is dropped
		{`kargs = ['''it's''', '''a\b''']`, []string{"it's", `a\b`}, nil, false}, // multi-line literal strings
		{`kargs = ["\U0001F600"]`, []string{"\U0001F600"}, nil, false},           // an escape JSON has not
		{"kargs = [\"a\tb\"]", []string{"a\tb"}, nil, false},                     // a tab in a basic string
		// Quoted keys.
		{`"kargs" = ["a"]` + "\n" + `'match-architectures' = ['x86_64']`, []string{"a"}, []string{"x86_64"}, false},
		{"\ufeffkargs = [\"a\"]", []string{"a"}, nil, false}, // a byte order mark

		// What the decoder refuses and the regex parser took; bootc refuses
		// each of these too.
		{"kargs = [\"a\"]\nkargs = [\"b\"]", nil, nil, true}, // a key defined twice
		{"kargs = [\"a\"]\nmatch-architectures = []\nmatch-architectures = []", nil, nil, true},
		{`kargs = ["\/"]`, nil, nil, true},     // JSON's escape, not TOML's
		{`kargs = ["\ud800"]`, nil, nil, true}, // a lone surrogate
		{"kargs = ['\xff']", nil, nil, true},   // not UTF-8
		{"kargs = ['a\x01b']", nil, nil, true}, // a control character
		{`kargs = ["a" "b"]`, nil, nil, true},  // no comma
		{`kargs = [, "a"]`, nil, nil, true},
		{`kargs = ["a",, "b"]`, nil, nil, true},

		// Refused before and now, as bootc refuses them.
		{"kargs = [\"a\"]\n[t]\nx = 1", nil, nil, true},
		{"kargs = [\"a\"]\n[[t]]\n[[t]]", nil, nil, true},
		{"kargs = [\"a\"]\nmatch_architectures = [\"x86_64\"]", nil, nil, true}, // bootc's key is kebab-case
		{`match-architectures = ["x86_64"]`, nil, nil, true},
		{`kargs = ["a", ["b"]]`, nil, nil, true},
		{`kargs.x = "a"`, nil, nil, true},
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
	f.Add("kargs = [\"\"\"a\"\"\", '''b''']\nmatch-architectures = []")
	f.Add("kargs = [\"a\"]\nkargs = [\"b\"]")
	f.Add("kargs = [\"\\u007f\\u0000\\u2028<&>\"]")
	f.Fuzz(func(t *testing.T, s string) {
		kargs, _, err := Parse(s)
		if err != nil {
			return
		}
		// What Parse reads, Render writes back so that Parse reads it again.
		got, _, err := Parse(string(Render("c", kargs)))
		if err != nil || !cmp.Equal(got, kargs) {
			t.Errorf("Parse(Render(%q)) = %q, %v", kargs, got, err)
		}
	})
}

func TestRenderParses(t *testing.T) {
	in := []string{"a=1", `cgroup_no_v1="all"`, "quote'd", "del\x7f", "nul\x00", "tab\t"}
	got, _, err := Parse(string(Render("c", in)))
	if err != nil || !cmp.Equal(got, in) {
		t.Errorf("Parse(Render(%q)) = %q, %v", in, got, err)
	}
}
