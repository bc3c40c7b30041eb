// Package selabel labels a tree's paths as the SELinux policy the tree
// carries says, the way `ostree commit --selinux-policy` does: through
// libselinux's own selabel API (linked in statically), so the file
// contexts, their .homedirs and .local parts and the .subs substitutions
// mean here what they mean to ostree, rpm-ostree and setfiles.
//
// What ostree does, and this package with it (ostree's
// src/libostree/ostree-sepolicy.c, initable_init and
// ostree_sepolicy_get_label, v2025.2 as at v2022.7):
//   - the policy's config is etc/selinux/config, or usr/etc/selinux/config
//     when there is no etc/selinux;
//   - a tree whose config does not say SELINUX=enforcing or permissive is
//     not labelled at all;
//   - the policy is etc/selinux/<SELINUXTYPE>; its file contexts must give
//     "/" a label, and a binary policy (policy/policy.N) must be there;
//   - "/proc" is looked up as "/mnt";
//   - a path the policy gives no label (<<none>>) keeps the xattrs it has.
package selabel

/*
#cgo LDFLAGS: -lselinux -lpcre2-8
#include <errno.h>
#include <stdlib.h>
#include <selinux/selinux.h>
#include <selinux/label.h>

// sl_open opens the file contexts at path (with their .homedirs, .local,
// .subs and .subs_dist beside it, as libselinux reads them for a policy
// root), or returns NULL with errno set.
static struct selabel_handle *sl_open(const char *path) {
	struct selinux_opt opts[] = {{SELABEL_OPT_PATH, path}};
	return selabel_open(SELABEL_CTX_FILE, opts, 1);
}

// sl_lookup looks key up: 0 and *con set, or the errno (ENOENT: no label).
static int sl_lookup(struct selabel_handle *h, char **con, const char *key, unsigned mode) {
	errno = 0;
	if (selabel_lookup_raw(h, con, key, (mode_t)mode) == 0) {
		return 0;
	}
	return errno != 0 ? errno : EINVAL;
}

// sl_quiet keeps libselinux's messages (a bad line in a .local, say) off
// stderr: ostree silences them too (ostree_sepolicy_set_null_log).
static int sl_null_log(int type, const char *fmt, ...) { return 0; }
static void sl_quiet(void) {
	union selinux_callback cb;
	cb.func_log = sl_null_log;
	selinux_set_callback(SELINUX_CB_LOG, cb);
}
*/
import "C"

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// Policy is a tree's SELinux policy, ready to label its paths. It is safe
// for concurrent use: each concurrent lookup gets a libselinux handle of
// its own (up to one per CPU), as one handle serialises its matches.
type Policy struct {
	// Name is the policy's SELINUXTYPE, and Root the folder it is in.
	Name, Root string
	contexts   string
	// UsrEtcAsEtc labels /usr/etc and what is under it as /etc (ostree's
	// --selinux-labeling-epoch=1).
	UsrEtcAsEtc bool
	// Fallback, when set, says why libselinux's own lookup labels the
	// paths, not the matcher.
	Fallback string

	// matcher, when the policy's regexes all compile under RE2, does the
	// lookups (see matcher); else libselinux's handles do.
	matcher *matcher

	handles chan *C.struct_selabel_handle
	mu      sync.Mutex
	opened  int
	max     int
	closed  bool
}

var quietOnce sync.Once

// Load reads the SELinux policy the tree at root carries. It returns nil
// and no error when the tree carries none that labels (no config, or one
// that does not say enforcing or permissive), as ostree then labels
// nothing.
func Load(root string) (*Policy, error) { return load(root, true) }

// LoadUnchecked is Load without the check of its matcher against the
// compiled file contexts (checkCompiled: thousands of lookups, slow on a
// small node), for labels that are only a guess, checked later against a
// policy Load read: where the .bin disagrees with the text, such a guess
// is wrong, and the check finds it.
func LoadUnchecked(root string) (*Policy, error) { return load(root, false) }

func load(root string, check bool) (*Policy, error) {
	quietOnce.Do(func() { C.sl_quiet() })
	dir := filepath.Join(root, "etc/selinux")
	if _, err := os.Lstat(dir); err != nil {
		dir = filepath.Join(root, "usr/etc/selinux")
	}
	name, enabled, err := readConfig(filepath.Join(dir, "config"))
	if err != nil || !enabled {
		return nil, err
	}
	p := &Policy{Name: name, Root: filepath.Join(dir, name), max: max(runtime.NumCPU(), 1)}
	p.contexts = filepath.Join(p.Root, "contexts/files/file_contexts")
	p.handles = make(chan *C.struct_selabel_handle, p.max)
	if _, err := binaryPolicy(p.Root); err != nil {
		return nil, err
	}
	// libselinux reads the policy first: what it refuses is refused.
	if _, _, err := p.lookup("/", 0o755); err != nil {
		p.Close()
		return nil, fmt.Errorf("the SELinux policy %s: looking up the label of /: %w", p.Root, err)
	}
	m, err := loadMatcher(p.contexts)
	if err == nil && check {
		err = p.checkCompiled(m)
	}
	if err != nil {
		p.Fallback = err.Error()
	} else {
		p.matcher = m
	}
	return p, nil
}

// checkCompiled checks the matcher, read from the text file contexts,
// against libselinux where libselinux reads their compiled form instead:
// for each part (the base, .homedirs, .local) it takes the .bin when it
// is not older than the text, or when there is no text (label_file.c,
// open_file), and an ostree checkout gives both the same time. semodule
// writes both from the same specs; the matcher does not read the .bin,
// so it is used only if every spec's literal prefix, looked up as a path
// of the spec's file type, gets the same label from both.
func (p *Policy) checkCompiled(m *matcher) error {
	compiled := false
	for _, part := range []string{p.contexts, p.contexts + ".homedirs", p.contexts + ".local"} {
		bin, berr := os.Stat(part + ".bin")
		text, terr := os.Stat(part)
		switch {
		case berr != nil:
		case terr != nil:
			return fmt.Errorf("%s.bin has no text beside it", part)
		case !bin.ModTime().Before(text.ModTime()):
			compiled = true
		}
	}
	if !compiled {
		return nil
	}
	type probe struct {
		key  string
		mode uint32
	}
	seen := map[probe]bool{}
	for _, s := range m.specs {
		key := s.prefix
		if key == "" || seen[probe{key, s.mode}] || !printableASCII(key) {
			continue
		}
		seen[probe{key, s.mode}] = true
		got, gotOK := m.lookup(key, s.mode)
		want, wantOK, err := p.lookup(key, s.mode)
		if err != nil {
			return fmt.Errorf("checking the text file contexts against the compiled ones, at %s: %w", key, err)
		}
		if got != want || gotOK != wantOK {
			return fmt.Errorf("the text file contexts give %s %q, the compiled ones %q", key, got, want)
		}
	}
	return nil
}

// readConfig reads SELINUXTYPE and whether SELINUX says enforcing or
// permissive, line by line as ostree does: a line counts only when it
// starts with the key, and a later line wins. No config is no policy.
func readConfig(path string) (name string, enabled bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the SELinux config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "SELINUXTYPE="); ok {
			name = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "SELINUX="); ok {
			v = strings.ToLower(v)
			enabled = strings.HasPrefix(v, "enforcing") || strings.HasPrefix(v, "permissive")
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	if enabled && (name == "" || strings.Contains(name, "/")) {
		return "", false, fmt.Errorf("%s: SELINUXTYPE %q does not name a policy", path, name)
	}
	return name, enabled, nil
}

// binaryPolicyName is policy.N, as libselinux names binary policies.
var binaryPolicyName = regexp.MustCompile(`^policy\.[0-9]+$`)

// binaryPolicy returns the path of the newest binary policy under the
// policy's policy/ folder: ostree checksums it, and fails without one
// (get_policy_checksum).
func binaryPolicy(root string) (string, error) {
	dir := filepath.Join(root, "policy")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("the SELinux policy %s: %w", root, err)
	}
	best, bestVersion := "", 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !binaryPolicyName.MatchString(e.Name()) {
			continue
		}
		if v, _ := strconv.Atoi(strings.TrimPrefix(e.Name(), "policy.")); v > bestVersion {
			best, bestVersion = e.Name(), v
		}
	}
	if best == "" {
		return "", fmt.Errorf("the SELinux policy %s: no binary policy (policy/policy.N) in it", root)
	}
	return filepath.Join(dir, best), nil
}

// Label returns the label the policy gives the tree's path rel (rooted:
// "/", "/usr/bin/sh") of a file of the given mode (type and permission
// bits, as stat gives them), and false when it gives none.
func (p *Policy) Label(rel string, mode uint32) (string, bool, error) {
	key := rel
	if p.UsrEtcAsEtc && (key == "/usr/etc" || strings.HasPrefix(key, "/usr/etc/")) {
		key = strings.TrimPrefix(key, "/usr")
	}
	if key == "/proc" {
		key = "/mnt"
	}
	if p.matcher != nil && key != "" && printableASCII(key) {
		label, ok := p.matcher.lookup(key, mode)
		return label, ok, nil
	}
	label, ok, err := p.lookup(key, mode)
	if err != nil {
		return "", false, fmt.Errorf("looking up the SELinux label of %s: %w", rel, err)
	}
	return label, ok, nil
}

func (p *Policy) lookup(key string, mode uint32) (string, bool, error) {
	h, err := p.handle()
	if err != nil {
		return "", false, err
	}
	defer func() { p.handles <- h }()
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	var con *C.char
	switch rc := C.sl_lookup(h, &con, ckey, C.uint(mode)); rc {
	case 0:
		defer C.freecon(con)
		return C.GoString(con), true, nil
	case C.ENOENT:
		return "", false, nil
	default:
		return "", false, syscall.Errno(rc)
	}
}

// handle takes a free handle, opening one more while fewer than p.max are
// open.
func (p *Policy) handle() (*C.struct_selabel_handle, error) {
	select {
	case h := <-p.handles:
		return h, nil
	default:
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("the SELinux policy was closed")
	}
	if p.opened < p.max {
		p.opened++
		p.mu.Unlock()
		cpath := C.CString(p.contexts)
		defer C.free(unsafe.Pointer(cpath))
		h, err := C.sl_open(cpath)
		if h == nil {
			p.mu.Lock()
			p.opened--
			p.mu.Unlock()
			return nil, fmt.Errorf("opening the file contexts %s: %w", p.contexts, err)
		}
		return h, nil
	}
	p.mu.Unlock()
	return <-p.handles, nil
}

// Close frees the policy's handles. It must not be called while a Label
// call runs.
func (p *Policy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for ; p.opened > 0; p.opened-- {
		C.selabel_close(<-p.handles)
	}
}
