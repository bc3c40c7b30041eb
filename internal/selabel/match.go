package selabel

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// matcher looks labels up as libselinux 3.4's file backend does
// (libselinux/src/label_file.c and label_file.h: process_line,
// spec_hasMetaChars, sort_specs, get_stem_from_spec,
// get_stem_from_file_name, lookup_common, selabel_sub_key), but tries
// only the specs that can match the path: those whose regex's literal
// prefix the path starts with.
//
// Why not libselinux's own lookup, which Policy falls back to: it tries
// every spec of the path's first component, the last first, until one
// matches. With a distribution-sized policy (thousands of /usr specs)
// that is about 0.4 ms a path: 19 s of CPU for an RHCOS-size OS, 15 s of
// a 29 s deploy on 2 cores. libselinux 3.8 reworked its lookup for this,
// but the static link takes the build host's (Debian 12: 3.4).
//
// The specs' regexes run under Go's regexp (RE2), anchored and with '.'
// matching a newline as libselinux compiles them for PCRE2 ("^" + regex
// + "$", PCRE2_DOTALL). A policy whose regex RE2 does not take (a back
// reference, a look-around) is looked up by libselinux instead. Not
// modelled: PCRE2's '$' before a path's final newline, and a policy only
// in compiled form (file_contexts.bin without the text): libselinux then.
type matcher struct {
	specs []spec // libselinux's order: the last that matches wins
	// byPrefix lists, by each literal prefix, the specs that have it, in
	// order.
	byPrefix map[string][]int
	// subs and distSubs rewrite a path's prefix, the file's last line
	// first (selabel_subs_init prepends).
	subs, distSubs []sub
}

type spec struct {
	re *regexp.Regexp
	// prefix is what every path the regex matches starts with.
	prefix  string
	stem    string
	mode    uint32 // the file type it is for, or 0 for any
	context string // "<<none>>": no label
}

type sub struct{ src, dst string }

// errNotRE2 says a policy needs libselinux's own lookup.
var errNotRE2 = errors.New("a regex RE2 does not take")

// fileTypes are the type field's values (label_file.h, process_line).
var fileTypes = map[string]uint32{
	"-b": 0o060000, "-c": 0o020000, "-d": 0o040000, "-p": 0o010000,
	"-l": 0o120000, "-s": 0o140000, "--": 0o100000,
}

// loadMatcher reads the file contexts at path with their .homedirs and
// .local (in that order, after the base) and the .subs and .subs_dist
// beside them, as libselinux's init does for SELABEL_OPT_PATH.
func loadMatcher(path string) (*matcher, error) {
	m := &matcher{byPrefix: map[string][]int{}}
	var exact []spec
	for i, suffix := range []string{"", ".homedirs", ".local"} {
		err := readSpecs(path+suffix, &m.specs, &exact)
		if errors.Is(err, os.ErrNotExist) && i > 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	// sort_specs: the specs without regex characters after all the others,
	// each group in its order.
	m.specs = append(m.specs, exact...)
	for i, s := range m.specs {
		m.byPrefix[s.prefix] = append(m.byPrefix[s.prefix], i)
	}
	var err error
	if m.subs, err = readSubs(path + ".subs"); err != nil {
		return nil, err
	}
	if m.distSubs, err = readSubs(path + ".subs_dist"); err != nil {
		return nil, err
	}
	return m, nil
}

// readSpecs appends the specs of one file: those with regex characters to
// meta, the others to exact.
func readSpecs(path string, meta, exact *[]spec) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var s spec
		switch {
		case len(fields) == 2:
			s.context = fields[1]
		case len(fields) >= 3: // read_spec_entries reads three, the rest is ignored
			mode, ok := fileTypes[fields[1]]
			if !ok {
				return fmt.Errorf("%s:%d: the file type %q", path, n, fields[1])
			}
			s.mode, s.context = mode, fields[2]
		default:
			return fmt.Errorf("%s:%d: one field", path, n)
		}
		if !plainPattern(fields[0]) {
			return fmt.Errorf("%s:%d: %w: %q", path, n, errNotRE2, fields[0])
		}
		if s.re, err = regexp.Compile("(?s)^" + fields[0] + "$"); err != nil {
			return fmt.Errorf("%s:%d: %w: %v", path, n, errNotRE2, err)
		}
		s.stem, s.prefix = specStem(fields[0]), literalPrefix(fields[0])
		if hasMetaChars(fields[0]) {
			*meta = append(*meta, s)
		} else {
			*exact = append(*exact, s)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// literalPrefix is the literal text every match of the regex expr, as
// libselinux anchors it ("^" + expr + "$", no group), starts with: the
// literals that follow the leading ^ in the parsed expression. In
// "^/a|/b$" only the first branch starts at ^, so the parse is an
// alternation and there is none. (Regexp.LiteralPrefix gives "" for most
// anchored file contexts: it skips the anchor only in one-pass programs,
// and a spec like /usr(/.*)? is not one.)
func literalPrefix(expr string) string {
	re, err := syntax.Parse("^"+expr+"$", syntax.Perl|syntax.DotNL)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) == 0 || re.Sub[0].Op != syntax.OpBeginText {
		return ""
	}
	var b strings.Builder
	for _, sub := range re.Sub[1:] {
		if sub.Op != syntax.OpLiteral || sub.Flags&syntax.FoldCase != 0 {
			break
		}
		b.WriteString(string(sub.Rune))
	}
	return b.String()
}

// plainPattern says whether RE2 reads the regex as PCRE2 does where
// libselinux compiles it (byte by byte, no UTF, no UCP): printable ASCII
// only, and none of the escapes and options whose meaning differs (\v, \h,
// \R, \x and \N code points, \p classes, \Q...\E, (?...) flags and
// groups).
func plainPattern(re string) bool {
	if !printableASCII(re) {
		return false
	}
	for _, bad := range []string{`\v`, `\h`, `\R`, `\x`, `\N`, `\p`, `\P`, `\Q`, `(?`} {
		if strings.Contains(re, bad) {
			return false
		}
	}
	return true
}

// printableASCII says whether s is all printable ASCII: a path so made is
// matched alike byte by byte (PCRE2 without UTF) and rune by rune (RE2),
// and alike by PCRE2's \s and RE2's. Policy.Label has libselinux look any
// other path up.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hasMetaChars is spec_hasMetaChars: a regex character not escaped.
func hasMetaChars(re string) bool {
	for i := 0; i < len(re); i++ {
		switch re[i] {
		case '.', '^', '$', '?', '*', '+', '|', '[', '(', '{':
			return true
		case '\\':
			i++
		}
	}
	return false
}

// specStem is get_stem_from_spec: the regex's first path component when a
// '/' follows it with no regex character before.
func specStem(re string) string {
	i := strings.IndexByte(re[min(1, len(re)):], '/')
	if i < 0 {
		return ""
	}
	stem := re[:i+1]
	if strings.ContainsAny(stem, ".^$?*+|[({") {
		return ""
	}
	return stem
}

// keyStem is get_stem_from_file_name: the path's first component when a
// '/' follows it.
func keyStem(key string) string {
	if i := strings.IndexByte(key[min(1, len(key)):], '/'); i >= 0 {
		return key[:i+1]
	}
	return ""
}

// readSubs reads a substitution file (src dst per line), the last line
// first. A missing file has none.
func readSubs(path string) ([]sub, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sub
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if len(sc.Text()) >= 1023 {
			return nil, fmt.Errorf("%s: a line libselinux reads in two (fgets, 1024 bytes)", path)
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		out = append(out, sub{fields[0], fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	slices.Reverse(out)
	return out, nil
}

// substitute is selabel_sub: the first sub whose src is key or a folder
// above it rewrites it.
func substitute(subs []sub, key string) (string, bool) {
	for _, s := range subs {
		if !strings.HasPrefix(key, s.src) || len(key) > len(s.src) && key[len(s.src)] != '/' {
			continue
		}
		rest := key[len(s.src):]
		if rest != "" && s.dst == "/" {
			return rest, true
		}
		return s.dst + rest, true
	}
	return key, false
}

// cleanKey is lookup_common's: no "//", and no trailing '/' but for "/".
func cleanKey(key string) string {
	for strings.Contains(key, "//") {
		key = strings.ReplaceAll(key, "//", "/")
	}
	if len(key) > 1 {
		key = strings.TrimSuffix(key, "/")
	}
	return key
}

// lookup returns the context of key for a file of mode, and false for
// none (no spec matches, or <<none>>).
func (m *matcher) lookup(key string, mode uint32) (string, bool) {
	key = cleanKey(key)
	if k, ok := substitute(m.subs, key); ok {
		key = k
		if k, ok := substitute(m.distSubs, key); ok {
			key = k
		}
	} else if k, ok := substitute(m.distSubs, key); ok {
		key = k
	}
	stem := keyStem(key)
	mode &= 0o170000
	var cands []int
	for i := 0; i <= len(key); i++ {
		cands = append(cands, m.byPrefix[key[:i]]...)
	}
	slices.Sort(cands)
	for j := len(cands) - 1; j >= 0; j-- {
		s := &m.specs[cands[j]]
		if s.stem != "" && s.stem != stem || mode != 0 && s.mode != 0 && mode != s.mode {
			continue
		}
		if s.re.MatchString(key) {
			if s.context == "<<none>>" {
				return "", false
			}
			return s.context, true
		}
	}
	return "", false
}
