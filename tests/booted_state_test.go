package tests

// The full comparison after a booted deploy: every path of the seed node's
// /etc and /var, as the seed node had it when its seeds were made, against
// the booted seed stateroot.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/builder"
)

// statePrune leaves out of a state dump what neither the seed carries nor
// a node keeps as it was: the node's own container store, journal,
// temporary files and cache (the paths create excludes).
const statePrune = `\( -path /var/lib/containers -o -path /var/tmp -o -path /var/log/journal -o -path /var/cache \) -prune -o`

// stateDump is a stage fragment that writes, under name in $O, every path
// of /etc and /var with its type, mode, owner, size, link target and
// SELinux label, and (name.sums) the sha256 of each regular file.
func stateDump(name string) string {
	return fmt.Sprintf("find /etc /var -xdev %s -printf '%%p\\t%%y\\t%%m\\t%%U:%%G\\t%%s\\t%%l\\t%%Z\\n' >$O/%s\n", statePrune, name) +
		fmt.Sprintf("find /etc /var -xdev %s -type f -print0 | xargs -0 -r sha256sum >$O/%s.sums\n", statePrune, name)
}

// pathState is one path of a state dump.
type pathState struct {
	typ, mode, owner, size, link, label, sum string
}

// readStateDump reads what stateDump wrote under name.
func readStateDump(t *testing.T, b boot, name string) map[string]pathState {
	t.Helper()
	out := map[string]pathState{}
	for _, line := range strings.Split(b.file(t, name), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			continue
		}
		out[f[0]] = pathState{typ: f[1], mode: f[2], owner: f[3], size: f[4], link: f[5], label: f[6]}
	}
	for _, line := range strings.Split(b.file(t, name+".sums"), "\n") {
		sum, p, ok := strings.Cut(line, "  ")
		if st, found := out[p]; ok && found {
			st.sum = sum
			out[p] = st
		}
	}
	if len(out) == 0 {
		t.Fatalf("the state dump %s is empty", name)
	}
	return out
}

// stateExceptions are the seed node's paths a booted seed stateroot may
// hold otherwise, each with why. A path not here that is missing or
// different is seed state lost.
var stateExceptions = map[string]string{
	"/etc/.updated":                      "ostree unlinks it on every deploy, so that systemd's ConditionNeedsUpdate=/etc units run (ostree-sysroot-deploy.c, sysroot_finalize_deployment)",
	"/var/.updated":                      "ostree unlinks it on every deploy, as /etc/.updated",
	"/var/lib/kubelet-standin":           "the stand-in kubelet appends a line to its started file at each start",
	"/var/lib/systemd/random-seed":       "systemd-random-seed rewrites it at every boot",
	"/var/lib/systemd/timers":            "systemd updates its timers' stamps at boot",
	"/var/log":                           "written at every boot (wtmp, lastlog, the logs of services)",
	"/var/lib/systemd/catalog":           "journald's catalog database, rebuilt after an update",
	"/var/lib/systemd/coredump":          "written by the system as it runs",
	"/var/lib/systemd/linger":            "written by logind as it runs",
	"/var/lib/systemd/pstore":            "written by systemd-pstore at boot",
	"/var/lib/systemd/backlight":         "written at shutdown",
	"/var/lib/private":                   "systemd's DynamicUser state, written as services run",
	"/var/lib/systemd/credential.secret": "made at first boot by systemd on each node",
}

// createExcludes are create's default excludes (the upstream agent's
// list, builder.DefaultVarExcludes and DefaultEtcExcludes), as GNU tar
// reads them: unanchored, a folder's content with it, '*' across '/'.
var createExcludes = func() []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, p := range append(append([]string{}, builder.DefaultVarExcludes...), builder.DefaultEtcExcludes...) {
		re := strings.ReplaceAll(regexp.QuoteMeta(strings.Trim(p, "/")), `\*`, ".*")
		out = append(out, regexp.MustCompile(`(^|/)`+re+`(/.*)?$`))
	}
	return out
}()

// stateException says why p (of type typ, find's %y) may differ, or "".
func stateException(p, typ string) string {
	for q := p; q != "/" && q != "."; q = parentOf(q) {
		if why, ok := stateExceptions[q]; ok {
			return why
		}
	}
	for _, re := range createExcludes {
		if re.MatchString(strings.TrimPrefix(p, "/")) {
			return "create leaves it out of every seed, as the upstream agent does (builder.DefaultVarExcludes, DefaultEtcExcludes)"
		}
	}
	if typ == "p" || typ == "s" {
		return "a FIFO or socket: a native seed's layers cannot carry one into ostree (see create.md)"
	}
	return ""
}

func parentOf(p string) string {
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// checkFullState compares every path of the seed node's /etc and /var
// (node, as it was when its seeds were made) with the booted seed's
// (booted): type, mode, owner, link target and label, and for regular
// files size and sha256. It fails on each path missing or different but
// the stateExceptions, and returns how many paths it compared.
func checkFullState(t *testing.T, node, booted map[string]pathState) int {
	t.Helper()
	var problems []string
	compared := 0
	paths := make([]string, 0, len(node))
	for p := range node {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if stateException(p, node[p].typ) != "" {
			continue
		}
		want := node[p]
		got, ok := booted[p]
		compared++
		switch {
		case !ok:
			problems = append(problems, p+": missing")
		case got.typ != want.typ || got.mode != want.mode || got.owner != want.owner || got.link != want.link || got.label != want.label:
			problems = append(problems, fmt.Sprintf("%s: %s %s %s ->%q %s, the seed node's %s %s %s ->%q %s", p,
				got.typ, got.mode, got.owner, got.link, got.label, want.typ, want.mode, want.owner, want.link, want.label))
		case want.typ == "f" && (got.size != want.size || got.sum != want.sum):
			problems = append(problems, fmt.Sprintf("%s: content differs (%s bytes, the seed node's %s)", p, got.size, want.size))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d of %d paths of the seed node's /etc and /var are missing or different on the booted seed:\n%s",
			len(problems), compared, strings.Join(head(problems, 40), "\n"))
	}
	return compared
}

func TestStateException(t *testing.T) {
	for _, tt := range []struct {
		path, typ string
		excepted  bool
	}{
		{"/var/lib/cni/bin/s0/x.log", "f", true},
		{"/var/lib/kubelet/pods/s1", "d", true},
		{"/var/home/core/.bash_history", "f", true},
		{"/etc/hostname", "f", true},
		{"/etc/NetworkManager/system-connections/enp1s0.nmconnection", "f", true},
		{"/var/log/wtmp", "f", true},
		{"/var/lib/awkward/a-fifo", "p", true},
		{"/etc/kubernetes/kubelet.conf", "f", false},
		{"/var/lib/etcd/member/snap/db", "f", false},
		{"/var/lib/kubelet/config.json", "f", false},
		{"/etc/hosts", "f", false},
	} {
		if got := stateException(tt.path, tt.typ) != ""; got != tt.excepted {
			t.Errorf("stateException(%s) = %v, want %v", tt.path, got, tt.excepted)
		}
	}
}
