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
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/seedbuild/seedbuild/internal/mounts"
	"github.com/seedbuild/seedbuild/tests/internal/standin"
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
// image and blob refs. Not modelled either: the origin bootc writes (its
// container-image-reference); the stand-in's is ostree's own,
// refspec=<commit>, which seedbuild replaces as it would bootc's.
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
	if err := standin.CopyImage("/", tree, mounts, "target"); err != nil {
		return fmt.Errorf("copying the image: %w", err)
	}
	// The paths as the host sees them.
	self := fmt.Sprintf("/proc/%d/root", os.Getpid())
	// As bootc does, the new stateroot's /var starts as the image's.
	return standin.Install(hostOstree, self+"/target", "/target", self+tree,
		"ostree/container/image/bootc-standin_3A_"+stateroot, stateroot, "", append(kargsD(), kargs...),
		func(varDir string) error { return standin.CopyVar("/", varDir, mounts) })
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

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
