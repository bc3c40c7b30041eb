// Command bootcstandin is a STAND-IN for bootc, used only by seedbuild's
// tests, where bootc cannot be installed. It is not bootc: it accepts the
// command line of `bootc install to-existing-root` as bootc 1.1 defines it,
// rejects anything else the way clap would (exit 2), records what it was
// asked and what it can see (argv, mounts, privileges, pid namespace) in
// /target/bootc-standin.json, and exits 0 without installing anything.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
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
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (f[4] == "/target" || f[4] == "/dev" || strings.HasPrefix(f[4], "/var/lib/containers")) {
				rec.Mounts = append(rec.Mounts, f[4])
			}
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
	fmt.Println("bootc stand-in: recorded the request in /target/bootc-standin.json; nothing installed")
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
