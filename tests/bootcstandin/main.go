// Command bootcstandin is a STAND-IN for bootc, used only by seedbuild's
// tests, where bootc cannot be installed. It is not bootc: it accepts the
// command line of `bootc install to-existing-root` as bootc 1.1 defines it,
// rejects anything else the way clap would (exit 2), and records what it
// was asked and what it can see (argv, mounts, privileges, pid namespace)
// in /target/bootc-standin.json. Then it installs the image as a new
// stateroot's default deployment, as bootc does, but with the host's own
// ostree command (see install), and exits 0.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/seedbuild/seedbuild/internal/mounts"
)

// Flags of `bootc install to-existing-root`: true when they take a value.
var flags = map[string]bool{
	"--acknowledge-destructive": false, "--cleanup": false,
	"--source-imgref": true, "--target-transport": true, "--target-imgref": true,
	"--enforce-container-sigpolicy": false, "--target-ostree-remote": true,
	"--skip-fetch-check": false, "--run-fetch-check": false, "--disable-selinux": false,
	"--karg": true, "--root-ssh-authorized-keys": true, "--generic-image": false,
	"--bound-images": true, "--stateroot": true,
}

type record struct {
	Argv      []string `json:"argv"`
	Stateroot string   `json:"stateroot"`
	Kargs     []string `json:"kargs"`
	Mounts    []string `json:"mounts"`
	CapEff    string   `json:"cap_eff"`
	PID1      string   `json:"pid1_comm"`
	Target    bool     `json:"target_is_sysroot"`
}

func main() {
	args := os.Args[1:]
	if len(args) < 2 || args[0] != "install" || args[1] != "to-existing-root" {
		fail("error: this stand-in only knows `install to-existing-root`, got %q", args)
	}
	rec := record{Argv: os.Args, Kargs: []string{}}
	positional := 0
	for i := 2; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		takes, known := flags[name]
		switch {
		case !strings.HasPrefix(a, "-"):
			positional++
			if positional > 1 {
				fail("error: unexpected argument '%s' found", a)
			}
			continue
		case !known:
			fail("error: unexpected argument '%s' found", a)
		case takes && !hasValue:
			if i+1 >= len(args) {
				fail("error: a value is required for '%s <VALUE>' but none was supplied", name)
			}
			i++
			value = args[i]
		case !takes && hasValue:
			fail("error: unexpected value '%s' for '%s' found; no more were expected", value, name)
		}
		switch name {
		case "--stateroot":
			rec.Stateroot = value
		case "--karg":
			rec.Kargs = append(rec.Kargs, value)
		case "--cleanup":
			fail("error: refusing --cleanup on an ostree host (stand-in check)")
		}
	}
	mounted, err := mounts.Under("/")
	if err != nil {
		fail("error: %v", err)
	}
	for _, m := range mounted {
		if m == "/target" || m == "/dev" || strings.HasPrefix(m, "/var/lib/containers") {
			rec.Mounts = append(rec.Mounts, m)
		}
	}
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
	if _, err := os.Stat("/target/ostree/repo"); err == nil {
		rec.Target = true
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile("/target/bootc-standin.json", data, 0o644); err != nil {
		fail("error: recording: %v", err)
	}
	fmt.Println("bootc stand-in: recorded the request in /target/bootc-standin.json")
	mountPoints := map[string]bool{}
	for _, m := range mounted {
		mountPoints[m] = true
	}
	if err := install(rec.Stateroot, rec.Kargs, mountPoints); err != nil {
		fmt.Fprintf(os.Stderr, "error: installing (stand-in): %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("bootc stand-in: installed the image as the default deployment of stateroot %s\n", rec.Stateroot)
}

// install does what bootc install to-existing-root leaves behind on the
// sysroot: the stateroot, the image committed into the sysroot's repo and
// deployed as the default, with the image's kargs.d and the --karg values.
// bootc imports the image with ostree-ext; the stand-in copies its own root
// (the image, its /etc as /usr/etc, without the container's mounts) into
// the sysroot and runs the host's ostree, reached through the root of a
// host process above it (bootc install runs in the host's pid namespace).
// Unlike bootc it inherits no root= or rd.* from the running kernel (the
// test host's), and it keeps the image under one ref, not ostree-ext's
// image and blob refs.
func install(stateroot string, kargs []string, mounts map[string]bool) error {
	if stateroot == "" {
		stateroot = "default"
	}
	tree, err := os.MkdirTemp("/target/ostree", "bootc-standin-tree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	// The image's / (MkdirTemp made it 0700).
	if err := os.Chmod(tree, 0o755); err != nil {
		return err
	}
	if err := copyImage(tree, mounts); err != nil {
		return fmt.Errorf("copying the image: %w", err)
	}
	kargs = append(kargsD(), kargs...)
	// The paths as the host sees them.
	self := fmt.Sprintf("/proc/%d/root", os.Getpid())
	sys := self + "/target"
	// As ostree-ext does, the image is kept under an ostree/container/ ref.
	ref := "ostree/container/image/bootc-standin_3A_" + stateroot
	commit, err := hostOstree("commit", "--repo="+sys+"/ostree/repo", "--branch="+ref, "--consume", "--tree=dir="+self+tree)
	if err != nil {
		return err
	}
	if _, err := os.Stat("/target/ostree/deploy/" + stateroot); err != nil {
		if _, err := hostOstree("admin", "os-init", "--sysroot="+sys, stateroot); err != nil {
			return err
		}
	}
	// As bootc does, the new stateroot's /var starts as the image's.
	if err := copyVar("/target/ostree/deploy/"+stateroot+"/var", mounts); err != nil {
		return fmt.Errorf("copying the image's /var: %w", err)
	}
	args := []string{"admin", "deploy", "--sysroot=" + sys, "--os=" + stateroot}
	for _, k := range kargs {
		args = append(args, "--karg-append="+k)
	}
	_, err = hostOstree(append(args, strings.TrimSpace(commit))...)
	return err
}

// hostRoot is the root of the nearest process above the stand-in that is
// outside its mount namespace (conmon, which runs on the host).
func hostRoot() (string, error) {
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return "", err
	}
	pid := os.Getppid()
	for pid > 1 {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns != own {
			return fmt.Sprintf("/proc/%d/root", pid), nil
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return "", err
		}
		next := 0
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				fmt.Sscan(v, &next)
			}
		}
		pid = next
	}
	return "", fmt.Errorf("no process above the stand-in runs on the host (is the pid namespace the host's?)")
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

// kargsD reads the image's /usr/lib/bootc/kargs.d/*.toml kargs lists, in
// name order (one-line `kargs = ["a", "b"]` entries only).
func kargsD() []string {
	files, _ := filepath.Glob("/usr/lib/bootc/kargs.d/*.toml")
	sort.Strings(files)
	var out []string
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(data), "\n") {
			name, list, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(name) != "kargs" {
				continue
			}
			var kargs []string
			if json.Unmarshal([]byte(strings.TrimSpace(list)), &kargs) == nil {
				out = append(out, kargs...)
			}
		}
	}
	return out
}

// copyImage copies the container's root into tree, its /etc as /usr/etc:
// the image's own /usr/etc and a mount point's content are left out (an empty folder stays), /var is
// left empty and /target out.
func copyImage(tree string, mounts map[string]bool) error {
	return copyFrom("/", mounts, func(rel string) (string, bool) {
		switch {
		case rel == "target", rel == "usr/etc":
			// The image's /etc becomes /usr/etc.
			return "", false
		case rel == "etc" || strings.HasPrefix(rel, "etc/"):
			return filepath.Join(tree, "usr", rel), true
		}
		return filepath.Join(tree, rel), true
	})
}

// copyVar copies the image's /var into dest (which exists), without the
// container's mounts.
func copyVar(dest string, mounts map[string]bool) error {
	return copyFrom("/var", mounts, func(rel string) (string, bool) {
		return filepath.Join(dest, strings.TrimPrefix(rel, "var/")), true
	})
}

// copyFrom copies what is under root to where to says (false: not at
// all), keeping owners and modes; a mount point's content is left out and
// /var's, but for a copy of /var itself.
func copyFrom(root string, mounts map[string]bool, to func(rel string) (string, bool)) error {
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := strings.TrimPrefix(p, "/")
		dst, ok := to(rel)
		if !ok {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			// /etc comes before /usr: /usr may be there already.
			if err := os.MkdirAll(dst, fi.Mode().Perm()); err != nil {
				return err
			}
			mode, uid, gid := fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky), int(st.Uid), int(st.Gid)
			if mounts[p] {
				// What is mounted there hides the image's folder: image
				// folders are root's, 0755.
				mode, uid, gid = 0o755, 0, 0
			}
			if err := os.Chmod(dst, mode); err != nil {
				return err
			}
			if err := os.Lchown(dst, uid, gid); err != nil {
				return err
			}
			if mounts[p] || (p == "/var" && root != "/var") {
				return filepath.SkipDir
			}
			return nil
		case mounts[p]:
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			// os-init made var/run and var/lock already.
			if err := os.Symlink(target, dst); err != nil && !os.IsExist(err) {
				return err
			}
			return os.Lchown(dst, int(st.Uid), int(st.Gid))
		case fi.Mode().IsRegular():
			return copyFile(p, dst, fi.Mode(), int(st.Uid), int(st.Gid))
		}
		return nil
	})
}

// copyFile copies a file with its owner, then its mode: a chown after the
// chmod would clear setuid.
func copyFile(src, dst string, mode os.FileMode, uid, gid int) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chown(uid, gid); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
