package deployer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/kargsd"
	"github.com/seedbuild/seedbuild/machineconfig"
	"golang.org/x/sys/unix"
)

// GatherHost reads the host and sysroot facts. It changes nothing.
// podmanPing, when not nil, says whether the podman service answers.
func GatherHost(ctx context.Context, sysroot string, podmanPing func(context.Context) bool) HostFacts {
	h := sysrootFacts(sysroot)
	h.Stateroots = []string{}
	if entries, err := os.ReadDir(filepath.Join(sysroot, "ostree/deploy")); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				h.Stateroots = append(h.Stateroots, e.Name())
			}
		}
	}
	if filepath.Clean(sysroot) == "/" {
		cmdline, _ := os.ReadFile("/proc/cmdline")
		h.InheritedKargs = inheritedKargs(string(cmdline))
	}
	h.HasOstreeContainer = OstreeContainerWorks(ctx)
	if podmanPing != nil {
		h.PodmanAnswers = podmanPing(ctx)
	}
	h.FreeBytes = freeBytes(sysroot)
	h.BootFreeBytes = freeBytes(filepath.Join(sysroot, "boot"))
	return h
}

// sysrootFacts is the little a host tells without running anything: its
// architecture, whether sysroot is an ostree sysroot, and, for the running
// system's, the booted stateroot.
func sysrootFacts(sysroot string) HostFacts {
	fi, err := os.Stat(filepath.Join(sysroot, "ostree/repo/config"))
	h := HostFacts{Sysroot: sysroot, Architecture: runtime.GOARCH, IsOstreeSysroot: err == nil && !fi.IsDir()}
	if filepath.Clean(sysroot) == "/" {
		if _, err := os.Stat("/run/ostree-booted"); err == nil {
			cmdline, _ := os.ReadFile("/proc/cmdline")
			h.Booted = bootedStateroot(string(cmdline))
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

// OstreeContainerWorks checks for ostree-ext's `ostree container image
// deploy`. Plain ostree answers any unknown command with its usage and exit
// 0, so the help text itself is checked.
func OstreeContainerWorks(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ostree", "container", "image", "deploy", "--help").CombinedOutput()
	return err == nil && strings.Contains(string(out), "--stateroot") && strings.Contains(string(out), "--imgref")
}

func freeBytes(dir string) uint64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}

// readSeedFiles fills what the mounted seed image holds into s.
func readSeedFiles(mnt string, s *SeedFacts) {
	if fi, err := os.Lstat(filepath.Join(mnt, "usr/bin/bootc")); err == nil && !fi.IsDir() {
		s.HasBootc = true
	}
	s.KargsD = readKargsD(filepath.Join(mnt, "usr/lib/bootc/kargs.d"), runtime.GOARCH)
	for _, p := range []string{"usr/lib/openshift/seed/mco-currentconfig.json", "mco-currentconfig.json"} {
		if mc, err := machineconfig.ReadFile(filepath.Join(mnt, p)); err == nil {
			s.MachineConfigKargs = mc.KernelArguments
			break
		}
	}
	if mods, err := filepath.Glob(filepath.Join(mnt, "usr/lib/modules/*")); err == nil {
		for _, m := range mods {
			for _, f := range []string{"vmlinuz", "initramfs.img"} {
				if fi, err := os.Stat(filepath.Join(m, f)); err == nil {
					s.KernelSize += fi.Size()
				}
			}
		}
	}
}

// readKargsD reads the kargs of every *.toml in dir, in name order, that
// applies to arch.
func readKargsD(dir, arch string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		kargs, arches, err := kargsd.Parse(string(data))
		if err != nil {
			continue
		}
		if len(arches) > 0 && !contains(arches, bootcArch(arch)) {
			continue
		}
		out = append(out, kargs...)
	}
	return out
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
