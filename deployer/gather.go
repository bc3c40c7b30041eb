package deployer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/internal/command"
	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/seedbuild/seedbuild/internal/kargsd"
	"github.com/seedbuild/seedbuild/internal/machineconfig"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
	"golang.org/x/sys/unix"
)

// GatherHost reads the host and sysroot facts. It changes nothing.
// podmanPing, when not nil, says whether the podman service answers;
// ostreeExt, when not nil, whether `ostree container` runs (default
// OstreeContainerWorks).
func GatherHost(ctx context.Context, host hostroot.Host, sysroot string, podmanPing, ostreeExt func(context.Context) bool) HostFacts {
	h := sysrootFacts(host, sysroot)
	h.Stateroots = []string{}
	if entries, err := os.ReadDir(filepath.Join(sysroot, "ostree/deploy")); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				h.Stateroots = append(h.Stateroots, e.Name())
			}
		}
	}
	if host.IsRoot(sysroot) {
		h.InheritedKargs = inheritedKargs(host.KernelCmdline())
	}
	if ostreeExt == nil {
		ostreeExt = OstreeContainerWorks(host.Runner())
	}
	h.HasOstreeContainer = ostreeExt(ctx)
	// An ostree without a command or option answers with a usage that does
	// not name it.
	h.HasSetDefault = ostreeHelpNames(ctx, host.Runner(), "set-default", "admin", "set-default")
	if _, err := os.Stat(host.Path("/usr/bin/bwrap")); err == nil {
		h.HasBwrap = true
	}
	h.OstreeLabelsUsrEtc = ostreeHelpNames(ctx, host.Runner(), "--selinux-labeling-epoch", "commit")
	if podmanPing != nil {
		h.PodmanAnswers = podmanPing(ctx)
	}
	var errs []string
	var err error
	if h.FreeBytes, err = freeBytes(sysroot); err != nil {
		errs = append(errs, err.Error())
	}
	if h.BootFreeBytes, err = freeBytes(filepath.Join(sysroot, "boot")); err != nil {
		errs = append(errs, err.Error())
	}
	h.SpaceUnknown = strings.Join(errs, "; ")
	return h
}

// sysrootFacts is the little a host tells without running anything: its
// architecture, whether sysroot is an ostree sysroot, and, for the running
// system's, the booted stateroot.
func sysrootFacts(host hostroot.Host, sysroot string) HostFacts {
	fi, err := os.Stat(filepath.Join(sysroot, "ostree/repo/config"))
	h := HostFacts{Sysroot: sysroot, Architecture: runtime.GOARCH, IsOstreeSysroot: err == nil && !fi.IsDir(), LiveRoot: host.IsRoot(sysroot)}
	if h.LiveRoot {
		if _, err := os.Stat(host.Path("/run/ostree-booted")); err == nil {
			h.Booted = bootedStateroot(host.KernelCmdline())
		}
	}
	return h
}

// bootedStateroot reads the stateroot from ostree=/ostree/boot.N/NAME/...
func bootedStateroot(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "ostree="); ok {
			parts := strings.Split(strings.Trim(v, "/"), "/")
			if len(parts) >= 3 {
				return parts[2]
			}
		}
	}
	return ""
}

func inheritedKargs(cmdline string) []string {
	var out []string
	for _, f := range strings.Fields(cmdline) {
		if CarriedFromHost(f) {
			out = append(out, f)
		}
	}
	return out
}

// ostreeHelpNames says whether `ostree <command...> --help` names want.
func ostreeHelpNames(ctx context.Context, r command.Runner, want string, command ...string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	_ = r.Run(ctx, append(append([]string{"ostree"}, command...), "--help"), &out, &out)
	return strings.Contains(out.String(), want)
}

// OstreeContainerWorks checks for ostree-ext's `ostree container image
// deploy`. Plain ostree answers any unknown command with its usage and exit
// 0, so the help text itself is checked.
func OstreeContainerWorks(r command.Runner) func(context.Context) bool {
	return func(ctx context.Context) bool {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var out bytes.Buffer
		err := r.Run(ctx, []string{"ostree", "container", "image", "deploy", "--help"}, &out, &out)
		return err == nil && strings.Contains(out.String(), "--stateroot") && strings.Contains(out.String(), "--imgref")
	}
}

// freeBytes is the space free to unprivileged writers under dir.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("reading the free space of %q: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// seedTree is what a seed's facts are read from: its root file system,
// unpacked or mounted, or a scan of its layers for a dry run.
type seedTree interface {
	// entry says whether rel exists and is not a folder, and its size.
	entry(rel string) (size int64, ok bool)
	read(rel string) ([]byte, error)
	// glob lists the paths matching pattern, in name order.
	glob(pattern string) []string
}

// dirTree is a root file system in a folder.
type dirTree string

func (d dirTree) entry(rel string) (int64, bool) {
	fi, err := os.Lstat(filepath.Join(string(d), rel))
	if err != nil || fi.IsDir() {
		return 0, false
	}
	return fi.Size(), true
}

func (d dirTree) read(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(string(d), rel)) }

func (d dirTree) glob(pattern string) []string {
	matches, _ := filepath.Glob(filepath.Join(string(d), pattern))
	var out []string
	for _, m := range matches {
		rel, _ := filepath.Rel(string(d), m)
		out = append(out, rel)
	}
	return out
}

// scannedTree is the wanted files of a layer scan (seedimage.Scan).
type scannedTree struct{ *seedimage.Scanned }

func (s scannedTree) entry(rel string) (int64, bool) {
	n, ok := s.Entries[rel]
	return n, ok
}

func (s scannedTree) read(rel string) ([]byte, error) {
	if data, ok := s.Files[rel]; ok {
		return data, nil
	}
	return nil, fmt.Errorf("%s: %w", rel, os.ErrNotExist)
}

func (s scannedTree) glob(pattern string) []string {
	var out []string
	for name := range s.Entries {
		if ok, _ := path.Match(pattern, name); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// selinuxConfigs name an image's SELinux policy, where ostree looks for
// it: /etc, or /usr/etc once laid out.
var selinuxConfigs = []string{"etc/selinux/config", "usr/etc/selinux/config"}

// semodulePaths are where an image has semodule.
var semodulePaths = []string{"usr/sbin/semodule", "usr/bin/semodule"}

// seedFactFile says whether a path of a seed image is one its facts are
// read from, for a scan of its layers.
func seedFactFile(name string) bool {
	switch name {
	case "usr/bin/bootc", semodulePaths[0], semodulePaths[1], labels.SeedDir[1:] + "/" + labels.MachineConfigFile, labels.MachineConfigFile:
		return true
	}
	if slices.Contains(selinuxConfigs, name) {
		return true
	}
	if strings.HasPrefix(name, labels.KargsDir[1:]+"/") && strings.HasSuffix(name, ".toml") {
		return true
	}
	if ok, _ := path.Match("usr/lib/modules/*/vmlinuz", name); ok {
		return true
	}
	ok, _ := path.Match("usr/lib/modules/*/initramfs.img", name)
	return ok
}

// readSeedFiles fills what the seed's root holds into s: whether it has
// bootc, its kargs.d and MachineConfig kernel arguments, and its kernel's
// size. A kargs.d file that cannot be read or parsed is listed in
// s.Unreadable (a preflight problem), never dropped.
func readSeedFiles(t seedTree, s *SeedFacts) {
	_, s.HasBootc = t.entry("usr/bin/bootc")
	for _, p := range semodulePaths {
		if _, ok := t.entry(p); ok {
			s.HasSemodule = true
		}
	}
	for _, p := range selinuxConfigs {
		if _, ok := t.entry(p); ok {
			s.SELinuxPolicy = true
		}
	}
	s.KargsD, s.Unreadable = readKargsD(t, runtime.GOARCH)
	for _, p := range []string{labels.SeedDir[1:] + "/" + labels.MachineConfigFile, labels.MachineConfigFile} {
		data, err := t.read(p)
		if err != nil {
			continue
		}
		if mc, err := machineconfig.Parse(data); err == nil {
			s.MachineConfigKargs = mc.KernelArguments
			break
		}
	}
	s.Origin, s.originFile = readOrigin(t)
	for _, pattern := range []string{"usr/lib/modules/*/vmlinuz", "usr/lib/modules/*/initramfs.img"} {
		for _, p := range t.glob(pattern) {
			if n, ok := t.entry(p); ok {
				s.KernelSize += n
			}
		}
	}
}

// readKargsD reads the kargs of every kargs.d/*.toml, in name order, that
// applies to arch; it lists the files it cannot read or parse.
func readKargsD(t seedTree, arch string) (kargs, unreadable []string) {
	for _, f := range t.glob(labels.KargsDir[1:] + "/*.toml") {
		data, err := t.read(f)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("/%s: %v", f, err))
			continue
		}
		k, arches, err := kargsd.Parse(string(data))
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("/%s: %v", f, err))
			continue
		}
		// bootc applies a file whose match-architectures is absent, and
		// skips one whose list is empty (crates/lib/src/bootc_kargs.rs).
		if arches != nil && !slices.Contains(arches, bootcArch(arch)) {
			continue
		}
		kargs = append(kargs, k...)
	}
	return kargs, unreadable
}

func bootcArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goarch
}

// readOrigin reads the seed node's origin from a seed: the native
// layout's labels.OriginFile, else the file the agent's prep reads, the
// AgentOriginFile of rpm-ostree.json's booted deployment, in the seed
// folder (bootc-tarball) or at the root (classic). It returns the origin
// and the file's path in the seed's root, or "" and "" when there is none.
func readOrigin(t seedTree) (origin, file string) {
	seed := labels.SeedDir[1:] + "/"
	if data, err := t.read(seed + labels.OriginFile); err == nil {
		return string(data), seed + labels.OriginFile
	}
	for _, dir := range []string{seed, ""} {
		status, err := t.read(dir + labels.RpmOstreeFile)
		if err != nil {
			continue
		}
		d, err := labels.BootedDeployment(status)
		if err != nil {
			continue
		}
		if data, err := t.read(dir + labels.AgentOriginFile(d)); err == nil {
			return string(data), dir + labels.AgentOriginFile(d)
		}
	}
	return "", ""
}
