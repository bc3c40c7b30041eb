// Command bootcstandin is a STAND-IN for bootc, used only by seedbuild's
// tests, where bootc cannot be installed. It is not bootc: it knows only
// `bootc install to-existing-root`, as seedbuild runs it (in a privileged
// podman container from the seed image, in the host's pid namespace).
//
// It is an executable specification: each behaviour it models is a fact
// of bootc (bootc-dev/bootc at v1.16.9, commit 534c76ea), cited where it
// is coded (here, spec.go, and tests/internal/standin/spec.go for what it
// shares with ostree-ext) and asserted by a unit test (main_test.go):
//   - the command line of `install to-existing-root` (install.rs,
//     InstallToExistingRootOpts), anything else refused as clap does
//     (exit 2);
//   - where the image comes from: /run/.containerenv names it
//     (containerenv.rs), podman only, never rootless (install.rs,
//     SourceInfo::from_container, prepare_install); it is read from the
//     host's default store, /var/lib/containers/storage as PID 1 sees it
//     (podman.rs, imageid_to_digest, run in the host's mount namespace;
//     ensure_mirrored_host_mount): an image only in another store is not
//     found; its content is read there too (the container's root as the
//     host mounted it, with nothing podman binds over it);
//   - the target: /target must be a mount point; with /target/sysroot/ostree
//     the physical root is /target/sysroot, and must be one too; --replace
//     alongside (the default) empties /target/boot but its loader* entries
//     (install_to_filesystem, clean_boot_directories,
//     remove_all_except_loader_dirs); a booted stateroot is refused
//     (initialize_ostree_root);
//   - the image refused without containers.bootc or ostree.bootable, or for
//     another architecture (standin.CheckBootable);
//   - the kernel arguments, in order: root=, the first rootflags= and every
//     rd.* of the running kernel, rw, boot= for a /boot of its own, the
//     image's kargs.d, then --karg (entryKargs);
//   - the deployment written at once, never staged (standin.Stages), with
//     the image kept under ostree/container/image/ (standin.ImageRef), its
//     /var where the libostree puts it (standin.VarPlace), and the merged
//     tree relabelled by the image's policy (standin.Relabels).
//
// Not modelled, and why: the registry transports, signature policies and
// the fetch check (seedbuild installs the local image it pulled); bound
// images, bootupd, the ESP and composefs (not on an ostree node's
// to-existing-root as seedbuild drives it; the test node has no ESP);
// install configs under /usr/lib/bootc/install (seedbuild's images carry
// none); the final relabel of the physical root (the test node runs
// SELinux permissive, and its checks read the deployment's labels);
// bootc's own libostree: the deploy is the host's ostree, run in the
// host's root, which for the test node is the image's ostree too.
//
// It records what it was asked and saw in /target/bootc-standin.json.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/seedbuild/seedbuild/internal/kargsd"
	"github.com/seedbuild/seedbuild/internal/mounts"
	"github.com/seedbuild/seedbuild/tests/internal/standin"
)

type record struct {
	Argv      []string `json:"argv"`
	Stateroot string   `json:"stateroot"`
	Kargs     []string `json:"kargs"`
	// EntryKargs is the kernel command line bootc gives the entry.
	EntryKargs []string `json:"entry_kargs"`
	Image      string   `json:"image"`
	Mounts     []string `json:"mounts"`
	CapEff     string   `json:"cap_eff"`
	PID1       string   `json:"pid1_comm"`
	// Removed are the /boot entries clean_boot_directories removed.
	Removed []string `json:"boot_removed"`
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fail(2, "error: %v", err)
	}
	rec := record{Argv: os.Args, Stateroot: opts.stateroot, Kargs: opts.kargs}
	if err := install(opts, &rec); err != nil {
		fmt.Fprintf(os.Stderr, "error: Installing to filesystem (stand-in): %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("bootc stand-in: installed %s as stateroot %s\n", rec.Image, rec.Stateroot)
}

// install does what bootc install to-existing-root does on an ostree node,
// in its order: the source, the target, /boot, the import, the deploy.
func install(opts options, rec *record) error {
	data, err := os.ReadFile("/run/.containerenv")
	if err != nil {
		return fmt.Errorf("reading /run/.containerenv: %w", err)
	}
	env := parseContainerEnv(string(data))
	if err := env.check(); err != nil {
		return err
	}
	rec.Image = env.image
	mounted, err := mounts.Under("/")
	if err != nil {
		return err
	}
	mountPoints := map[string]bool{}
	for _, m := range mounted {
		mountPoints[m] = true
		if m == "/target" || m == "/dev" || strings.HasPrefix(m, "/var/lib/containers") {
			rec.Mounts = append(rec.Mounts, m)
		}
	}
	readStatus(rec)
	phys, isOstree, err := physicalRoot(opts.root, func(p string) bool { return mountPoints[p] }, exists)
	if err != nil {
		return err
	}
	defer writeRecord(opts.root, rec)
	if opts.replace == "alongside" {
		if rec.Removed, err = cleanBoot(filepath.Join(opts.root, "boot"), isOstree); err != nil {
			//lint:ignore ST1005 the upstream tool's own message, word for word
			return fmt.Errorf("Emptying /boot: %w", err)
		}
	}
	if booted := bootedStateroot(); isOstree && booted == opts.stateroot {
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return fmt.Errorf("Cannot redeploy over booted stateroot %s", opts.stateroot)
	}

	// The image, from the host's default store: the container's
	// /var/lib/containers/storage must be the host's (bootc binds the
	// host's there itself, ensure_mirrored_host_mount; seedbuild does it
	// for the stand-in, which does not model the mirroring).
	if err := sameFile(storeDir, "/proc/1/root"+storeDir); err != nil {
		return err
	}
	img, err := findImage(storeDir, env.imageID)
	if err != nil {
		return fmt.Errorf("image %s (%s) is not in the host's container storage: %w", env.image, env.imageID, err)
	}
	if err := standin.CheckBootable(img.labels, img.arch, runtime.GOARCH); err != nil {
		return err
	}
	// The image's content: the container's root as the host mounted it.
	root, err := containerRoot(storeDir, env.id)
	if err != nil {
		return err
	}

	// The kernel arguments.
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	fstab, _ := os.ReadFile(filepath.Join(opts.root, "etc/fstab"))
	kargsD, err := imageKargsD(root)
	if err != nil {
		return err
	}
	rec.EntryKargs = entryKargs(string(cmdline), fsUUID(opts.root, false), bootArg(string(fstab), fsUUID(opts.root, true)), kargsD, opts.kargDeletes, opts.kargs)

	// The import and the deploy, with the host's ostree.
	tree, err := os.MkdirTemp(filepath.Join(phys, "ostree"), "bootc-standin-tree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	if err := os.Chmod(tree, 0o755); err != nil {
		return err
	}
	if err := standin.CopyImage(root, tree, nil, ""); err != nil {
		return fmt.Errorf("copying the image: %w", err)
	}
	if err := standin.CopyImageVar(root, tree, nil, standin.OstreeVersion(hostOstree)); err != nil {
		return fmt.Errorf("copying the image's /var: %w", err)
	}
	// The paths as the host's ostree, in the host's root, sees them.
	self := fmt.Sprintf("/proc/%d/root", os.Getpid())
	imgref := "containers-storage:" + env.image
	return standin.Install(hostOstree, self+phys, phys, self+tree, standin.ImageRef(imgref), opts.stateroot,
		standin.OriginFor("ostree-unverified-image:"+imgref, opts.targetImgref), rec.EntryKargs,
		standin.Stages(false), standin.Relabels(img.layers > 1, standin.PolicyName(tree)))
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// bootedStateroot is the stateroot the host booted, from ostree= on the
// kernel command line, "" when none.
func bootedStateroot() string {
	data, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(data)) {
		if v, ok := strings.CutPrefix(f, "ostree="); ok {
			if parts := strings.Split(strings.Trim(v, "/"), "/"); len(parts) >= 3 {
				return parts[2]
			}
		}
	}
	return ""
}

// rustArch is the architecture as bootc names it (Rust's
// std::env::consts::ARCH), by GOARCH.
var rustArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "powerpc64", "s390x": "s390x"}

// imageKargsD reads the image's kargs.d for this architecture
// (install.rs, get_kargs_from_ostree_root).
func imageKargsD(root string) ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(root, "usr/lib/bootc/kargs.d/*.toml"))
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		kargs, arches, err := kargsd.Parse(string(data))
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f, err)
		}
		if arches == nil || slices.Contains(arches, rustArch[runtime.GOARCH]) {
			out = append(out, kargs...)
		}
	}
	return out, nil
}

// fsUUID is the UUID of target's file system, or with boot of
// target/boot's when it is not target's ("" when it is), read from
// /dev/disk/by-uuid.
func fsUUID(target string, boot bool) string {
	var root, dir syscall.Stat_t
	if syscall.Stat(target, &root) != nil {
		return ""
	}
	dir = root
	if boot && (syscall.Stat(filepath.Join(target, "boot"), &dir) != nil || dir.Dev == root.Dev) {
		return ""
	}
	links, _ := filepath.Glob("/dev/disk/by-uuid/*")
	for _, l := range links {
		var dev syscall.Stat_t
		if syscall.Stat(l, &dev) == nil && dev.Rdev == dir.Dev {
			return filepath.Base(l)
		}
	}
	return ""
}

func readStatus(rec *record) {
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				rec.CapEff = strings.TrimSpace(v)
			}
		}
	}
	if c, err := os.ReadFile("/proc/1/comm"); err == nil {
		rec.PID1 = strings.TrimSpace(string(c))
	}
}

func writeRecord(target string, rec *record) {
	data, _ := json.MarshalIndent(rec, "", "  ")
	os.WriteFile(filepath.Join(target, "var/tmp/bootc-standin.json"), data, 0o644)
}

// hostRoot is the root of PID 1, which bootc reaches through the host's
// pid namespace (utils.rs, run_in_host_mountns: /proc/1/ns/mnt).
func hostRoot() (string, error) {
	if _, err := os.Stat("/proc/1/root/usr/bin/ostree"); err != nil {
		return "", fmt.Errorf("the host's root is not at /proc/1/root (is the pid namespace the host's?): %w", err)
	}
	return "/proc/1/root", nil
}

// hostOstree runs the host's ostree, chrooted into the host's root.
func hostOstree(args ...string) (string, error) {
	root, err := hostRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("/usr/bin/ostree", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("the host's ostree %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}
