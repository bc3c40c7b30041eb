// Package kargsd reads and writes bootc's kernel-argument files,
// /usr/lib/bootc/kargs.d/*.toml.
package kargsd

import (
	"bufio"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
)

var tomlKey = regexp.MustCompile(`^\s*([A-Za-z0-9_-]+)\s*=\s*(.*)$`)

// Parse reads a bootc kargs.d file: `kargs` and the optional
// `match-architectures`, each an array of strings.
func Parse(text string) (kargs, arches []string, err error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	var key, value string
	flush := func() error {
		if key == "" {
			return nil
		}
		list, err := tomlStringArray(value)
		if err != nil {
			return errors.New(key + ": " + err.Error())
		}
		switch key {
		case "kargs":
			kargs = list
		case "match-architectures":
			arches = list
		default:
			return errors.New("unknown key " + key)
		}
		key, value = "", ""
		return nil
	}
	for sc.Scan() {
		line := strings.TrimSpace(stripComment(sc.Text()))
		if line == "" {
			continue
		}
		if key != "" && !strings.HasSuffix(strings.TrimSpace(value), "]") {
			value += " " + line
			continue
		}
		if err := flush(); err != nil {
			return nil, nil, err
		}
		m := tomlKey.FindStringSubmatch(line)
		if m == nil {
			return nil, nil, errors.New("not a key = value line: " + line)
		}
		key, value = m[1], m[2]
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	if kargs == nil {
		return nil, nil, errors.New("no kargs key")
	}
	return kargs, arches, nil
}

func stripComment(s string) string {
	inStr := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr != 0 && c == '\\' && inStr == '"':
			i++
		case inStr != 0 && c == inStr:
			inStr = 0
		case inStr == 0 && (c == '"' || c == '\''):
			inStr = c
		case inStr == 0 && c == '#':
			return s[:i]
		}
	}
	return s
}

// tomlStringArray parses a TOML array of basic or literal strings.
func tomlStringArray(v string) ([]string, error) {
	v = strings.TrimSpace(stripComment(v))
	if !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
		return nil, errors.New("want an array of strings")
	}
	body := v[1 : len(v)-1]
	out := []string{}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case ' ', '\t', ',', '\n':
			continue
		case '\'':
			end := strings.IndexByte(body[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated string")
			}
			out = append(out, body[i+1:i+1+end])
			i += end + 1
		case '"':
			j := i + 1
			for ; j < len(body); j++ {
				if body[j] == '\\' {
					j++
					continue
				}
				if body[j] == '"' {
					break
				}
			}
			if j >= len(body) {
				return nil, errors.New("unterminated string")
			}
			var s string
			if err := json.Unmarshal([]byte(body[i:j+1]), &s); err != nil {
				return nil, errors.New("bad string " + body[i:j+1])
			}
			out = append(out, s)
			i = j
		default:
			return nil, errors.New("want strings in the array")
		}
	}
	return out, nil
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
		q, _ := json.Marshal(k) // a JSON string is a valid TOML basic string
		b.Write(q)
	}
	b.WriteString("]\n")
	return []byte(b.String())
}
