// Package kargsd reads and writes bootc's kernel-argument files,
// /usr/lib/bootc/kargs.d/*.toml.
package kargsd

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/BurntSushi/toml"
)

// file is a kargs.d file as bootc reads it. bootc (bootc-dev/bootc,
// crates/lib/src/bootc_kargs.rs) decodes it with serde into
//
//	#[serde(rename_all = "kebab-case", deny_unknown_fields)]
//	struct Config { kargs: Vec<String>, match_architectures: Option<Vec<String>> }
//
// so `kargs` must be there and be an array of strings (it may be empty),
// `match-architectures` may be left out, and any other key (a table too)
// makes the file an error. Parse refuses what bootc refuses.
type file struct {
	Kargs  []string `toml:"kargs"`
	Arches []string `toml:"match-architectures"`
}

// Parse reads a bootc kargs.d file: `kargs` and the optional
// `match-architectures`, each an array of strings. arches is nil when
// match-architectures is absent, and empty (not nil) when it is `[]`, which
// bootc reads as matching no architecture; likewise kargs = [] gives an
// empty, non-nil kargs.
func Parse(text string) (kargs, arches []string, err error) {
	var f file
	md, err := toml.Decode(text, &f)
	if err != nil {
		return nil, nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, nil, errors.New("unknown key " + u[0].String())
	}
	// The TOML spec forbids defining a key twice, and bootc's parser (the
	// Rust toml crate, on toml_edit) refuses it. BurntSushi/toml before
	// v1.6.0 lets an array be defined again, the last one winning
	// (BurntSushi/toml#454), so Parse checks for itself. The keys left are
	// kargs and match-architectures; an array of tables, which Keys lists
	// once for each [[t]], is refused above as an unknown key.
	seen := map[string]bool{}
	for _, k := range md.Keys() {
		if seen[k.String()] {
			return nil, nil, errors.New(k.String() + " defined twice")
		}
		seen[k.String()] = true
	}
	if !md.IsDefined("kargs") {
		return nil, nil, errors.New("no kargs key")
	}
	return f.Kargs, f.Arches, nil
}

// Render writes a kargs.d file holding kargs, with a comment line.
func Render(comment string, kargs []string) []byte {
	var b strings.Builder
	if comment != "" {
		b.WriteString("# " + comment + "\n")
	}
	b.WriteString("kargs = [")
	for i, k := range kargs {
		if i > 0 {
			b.WriteString(", ")
		}
		// A JSON string is a TOML basic string but for DEL, which JSON
		// leaves as it is and TOML allows only escaped.
		q, _ := json.Marshal(k)
		b.WriteString(strings.ReplaceAll(string(q), "\x7f", `\u007f`))
	}
	b.WriteString("]\n")
	return []byte(b.String())
}
