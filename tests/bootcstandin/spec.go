package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/seedbuild/seedbuild/tests/internal/standin"
)

// options is the command line of `bootc install to-existing-root`.
type options struct {
	root, stateroot, replace, targetImgref string
	kargs, kargDeletes                     []string
}

// flags are those `bootc install to-existing-root` accepts, true when they
// take a value (install.rs at v1.16.9: InstallToExistingRootOpts with
// InstallSourceOpts, InstallTargetOpts, InstallConfigOpts and
// InstallComposefsOpts flattened in, hidden ones included).
var flags = map[string]bool{
	"--replace": true, "--acknowledge-destructive": false, "--cleanup": false,
	"--source-imgref":    true,
	"--target-transport": true, "--target-imgref": true, "--enforce-container-sigpolicy": false,
	"--run-fetch-check": false, "--skip-fetch-check": false,
	"--target-no-signature-verification": false, "--experimental-unified-storage": false,
	"--disable-selinux": false, "--karg": true, "--karg-delete": true,
	"--root-ssh-authorized-keys": true, "--generic-image": false, "--bound-images": true,
	"--stateroot": true, "--bootupd-skip-boot-uuid": false, "--bootloader": true,
	"--composefs-backend": false, "--allow-missing-verity": false, "--uki-addon": true,
}

// parseArgs reads `install to-existing-root [FLAGS] [ROOT_PATH]` as clap
// would: an unknown flag, a missing or unexpected value, or a second
// positional argument is an error. ROOT_PATH defaults to /target and
// --replace to alongside; --stateroot to "default" (install.rs,
// InstallConfigOpts::stateroot, ostree_ext's default osname).
func parseArgs(args []string) (options, error) {
	o := options{root: "/target", replace: "alongside", stateroot: "default"}
	if len(args) < 2 || args[0] != "install" || args[1] != "to-existing-root" {
		return o, fmt.Errorf("this stand-in only knows `install to-existing-root`, got %q", args)
	}
	positional := 0
	err := standin.ParseFlags(args[2:], flags, func(name, value string) error {
		switch name {
		case "--stateroot":
			o.stateroot = value
		case "--karg":
			o.kargs = append(o.kargs, value)
		case "--karg-delete":
			o.kargDeletes = append(o.kargDeletes, value)
		case "--target-imgref":
			o.targetImgref = value
		case "--replace":
			if value != "wipe" && value != "alongside" {
				return fmt.Errorf("invalid value '%s' for '--replace <REPLACE>'", value)
			}
			o.replace = value
		case "--cleanup":
			return errors.New("refusing --cleanup on an ostree node (stand-in: the destructive cleanup is not modelled)")
		}
		return nil
	}, func(arg string) error {
		if positional++; positional > 1 {
			return fmt.Errorf("unexpected argument '%s' found", arg)
		}
		o.root = arg
		return nil
	})
	if err != nil {
		return o, err
	}
	return o, nil
}

// containerEnv is what podman writes in /run/.containerenv
// (containerenv.rs, get_container_execution_info).
type containerEnv struct {
	engine, name, id, image, imageID string
	rootless                         bool
}

// parseContainerEnv reads key="value" lines; rootless=1 is rootless.
func parseContainerEnv(data string) containerEnv {
	var e containerEnv
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch k {
		case "engine":
			e.engine = v
		case "name":
			e.name = v
		case "id":
			e.id = v
		case "image":
			e.image = v
		case "imageid":
			e.imageID = v
		case "rootless":
			e.rootless = v == "1"
		}
	}
	return e
}

// check refuses a container bootc cannot install from: not podman's
// (install.rs, SourceInfo::from_container: "Currently this command only
// supports being executed via podman"), rootless (prepare_install: "Cannot
// install from rootless podman"), or one that names no image.
func (e containerEnv) check() error {
	switch {
	case !strings.HasPrefix(e.engine, "podman"):
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return fmt.Errorf("Currently this command only supports being executed via podman (engine %q)", e.engine)
	case e.rootless:
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return errors.New("Cannot install from rootless podman; this command must be run as root")
	case e.image == "" || e.imageID == "":
		return errors.New("/run/.containerenv names no image")
	}
	return nil
}

// physicalRoot is where bootc installs for the target root: target must be
// a mount point; with target/sysroot/ostree, the physical root is
// target/sysroot, which must be one too (install.rs,
// install_to_filesystem: "Not a mountpoint").
func physicalRoot(target string, mountPoint func(string) bool, exists func(string) bool) (phys string, isOstree bool, err error) {
	if !mountPoint(target) {
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return "", false, fmt.Errorf("Not a mountpoint: %s", target)
	}
	sysroot := filepath.Join(target, "sysroot")
	if !exists(filepath.Join(sysroot, "ostree")) {
		return target, false, nil
	}
	if !mountPoint(sysroot) {
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return "", true, fmt.Errorf("Not a mountpoint: %s", sysroot)
	}
	return sysroot, true, nil
}

// bootEntriesToRemove are the entries of /boot that --replace alongside
// removes: all, but on an ostree root those whose names start with
// "loader" (install.rs, remove_all_except_loader_dirs).
func bootEntriesToRemove(names []string, isOstree bool) []string {
	var out []string
	for _, n := range names {
		if !(isOstree && strings.HasPrefix(n, "loader")) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// cleanBoot removes what bootEntriesToRemove names from boot, and returns
// it. Mounts under boot are not crossed (remove_all_in_dir_no_xdev): the
// stand-in removes entries of boot's own file system only.
func cleanBoot(boot string, isOstree bool) ([]string, error) {
	entries, err := os.ReadDir(boot)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	remove := bootEntriesToRemove(names, isOstree)
	for _, n := range remove {
		if err := os.RemoveAll(filepath.Join(boot, n)); err != nil {
			return nil, err
		}
	}
	return remove, nil
}

// bootArg is the boot= argument bootc adds: from /etc/fstab's /boot entry
// when it names a UUID, else from /boot's own file system's UUID when it
// has one of its own; "" for a /boot on the root's file system
// (install.rs, install_to_filesystem).
func bootArg(fstab, ownUUID string) string {
	for _, line := range strings.Split(fstab, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "/boot" && strings.HasPrefix(f[0], "UUID=") {
			return "boot=" + f[0]
		}
	}
	if ownUUID != "" {
		return "boot=UUID=" + ownUUID
	}
	return ""
}

// entryKargs is the kernel command line bootc gives the new entry, in its
// order (install.rs, install_container: "root filesystem kargs - install
// config kargs - kargs.d from container image - args specified on the
// CLI"): the running kernel's first root= with its first rootflags= and
// every rd.* (find_root_args_to_inherit; without a root=, root=UUID= of
// the target's file system and nothing else), rw, boot=, kargs.d, then
// --karg, with --karg-delete's arguments taken out before the --karg
// values (delete_kargs).
func entryKargs(cmdline, rootUUID, boot string, kargsD, deletes, cli []string) []string {
	var root string
	var inherited []string
	rootflags := false
	for _, f := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(f, "root=") && root == "":
			root = f
		case strings.HasPrefix(f, "rootflags=") && !rootflags:
			rootflags = true
			inherited = append(inherited, f)
		case strings.HasPrefix(f, "rd."):
			inherited = append(inherited, f)
		}
	}
	out := []string{root}
	if root == "" {
		out, inherited = []string{"root=UUID=" + rootUUID}, nil
	}
	out = append(append(out, inherited...), "rw")
	if boot != "" {
		out = append(out, boot)
	}
	out = append(out, kargsD...)
	for _, d := range deletes {
		out = deleteKarg(out, d)
	}
	return append(out, cli...)
}

// deleteKarg takes out every argument d names: d itself, or, for a key
// alone, every argument of that key.
func deleteKarg(args []string, d string) []string {
	var out []string
	for _, a := range args {
		k, _, _ := strings.Cut(a, "=")
		if a == d || (!strings.Contains(d, "=") && k == d) {
			continue
		}
		out = append(out, a)
	}
	return out
}
