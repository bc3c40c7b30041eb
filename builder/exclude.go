package builder

import "strings"

// DefaultVarExcludes are the /var paths a seed never carries: the upstream
// agent's list, as tar --exclude patterns relative to the root.
var DefaultVarExcludes = []string{
	"*/.bash_history", "var/tmp/*", "var/log/*", "var/lib/lca", "var/lib/log/*",
	"var/lib/cni/bin/*", "var/lib/containers/*", "var/lib/kubelet/pods/*", "var/lib/ovn-ic/etc/*",
}

// DefaultEtcExcludes are the /etc paths a seed never carries.
var DefaultEtcExcludes = []string{
	"etc/hostname", "etc/NetworkManager/system-connections", "etc/openvswitch/conf.db",
	"etc/openvswitch/.conf.db.~lock~", "etc/machine-config-daemon/orig/var/lib/kubelet",
	"*cni/multus*",
}

// excluder matches root-relative paths against tar --exclude patterns with
// GNU tar's defaults: not anchored (a pattern may match from any path
// component on), leading-directory matching (excluding a folder excludes
// what is under it), and '*' matching '/'.
type excluder struct {
	patterns []string
	exact    map[string]bool // absolute root-relative paths, such as the store
	// kept are paths captured whatever the patterns say, with the folders
	// above them: the files the MachineConfig daemon manages.
	kept map[string]bool
}

func newExcluder(patterns []string) *excluder {
	return &excluder{patterns: patterns, exact: map[string]bool{}, kept: map[string]bool{}}
}

// keep captures one root-relative path, and the folders above it, even
// when a pattern excludes them.
func (e *excluder) keep(rel string) {
	rel = strings.Trim(rel, "/")
	for rel != "" && rel != "." {
		e.kept[rel] = true
		i := strings.LastIndexByte(rel, '/')
		if i < 0 {
			break
		}
		rel = rel[:i]
	}
}

// excludePath excludes one root-relative path and all under it.
func (e *excluder) excludePath(rel string) { e.exact[strings.Trim(rel, "/")] = true }

// match reports whether rel (root-relative, no leading or trailing slash)
// is excluded.
func (e *excluder) match(rel string) bool {
	if e.kept[rel] {
		return false
	}
	if e.exact[rel] {
		return true
	}
	for _, p := range e.patterns {
		if matchTarPattern(p, rel) {
			return true
		}
	}
	return false
}

func matchTarPattern(pattern, name string) bool {
	if !strings.ContainsAny(pattern, "*?[") && !strings.Contains(name, strings.Trim(pattern, "/")) {
		return false
	}
	pattern = strings.Trim(pattern, "/")
	for start := 0; start <= len(name); {
		rest := name[start:]
		// Whole rest, then each leading directory of it.
		if glob(pattern, rest) {
			return true
		}
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' && glob(pattern, rest[:i]) {
				return true
			}
		}
		next := strings.IndexByte(rest, '/')
		if next < 0 {
			break
		}
		start += next + 1
	}
	return false
}

// glob matches name against a shell pattern in which '*' and '?' also
// match '/'. Bracket expressions are taken literally.
func glob(pattern, name string) bool {
	px, nx := 0, 0
	starP, starN := -1, 0
	for nx < len(name) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			starP, starN = px, nx
			px++
		case px < len(pattern) && (pattern[px] == '?' || pattern[px] == name[nx]):
			px++
			nx++
		case starP >= 0:
			starN++
			px, nx = starP+1, starN
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
