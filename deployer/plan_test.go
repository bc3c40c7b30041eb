package deployer

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/seedbuild/seedbuild/labels"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testHost() HostFacts {
	return HostFacts{
		Sysroot: "/", LiveRoot: true, IsOstreeSysroot: true, Booted: "rhcos", Stateroots: []string{"rhcos"}, Architecture: "amd64",
		InheritedKargs:     []string{"root=UUID=1234", "rw", "rootflags=prjquota", "boot=UUID=5678", "console=ttyS0,115200n8", "ignition.platform.id=metal", "rd.luks.options=discard"},
		HasOstreeContainer: true, PodmanAnswers: true, PodmanURL: DefaultPodmanURL,
		FreeBytes: 100 << 30, BootFreeBytes: 512 << 20,
	}
}

func testSeed(kind labels.Kind) SeedFacts {
	s := SeedFacts{
		Image: "containers-storage:[overlay@/var/lib/containers/storage]localhost/seed:4.20", ImageID: "0123456789ab",
		Store: "overlay@/var/lib/containers/storage+/run/containers/storage",
		Kind:  kind, KindName: kind.String(), Architecture: "amd64", Size: 2 << 30, KernelSize: 120 << 20,
		MachineConfigKargs: []string{"systemd.unified_cgroup_hierarchy=1", `cgroup_no_v1="all"`, "psi=0"},
		Seed:               labels.Seed{ClusterInfo: labels.ClusterInfo{SeedClusterOCPVersion: "4.20.0", HasFIPS: true}},
		// Every seed create makes carries the seed node's origin.
		Origin: labels.ImageOrigin("quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + strings.Repeat("5", 64)),
	}
	if kind.Bootable() {
		// RHCOS has bootc and an SELinux policy.
		s.HasBootc, s.SELinuxPolicy = true, true
	}
	if kind == labels.Native {
		// create writes the MachineConfig kargs and --karg into kargs.d.
		s.KargsD = append(append([]string{}, s.MachineConfigKargs...), "nosmt")
	}
	return s
}

func TestPlanGolden(t *testing.T) {
	kinds := []labels.Kind{labels.Native, labels.BootcTarball, labels.Classic}
	methods := []Method{Auto, Bootc, OstreeExt, Ostree}
	type plan struct {
		kind     labels.Kind
		method   Method
		unpacked bool
		noPolicy bool
	}
	var plans []plan
	for _, kind := range kinds {
		for _, m := range methods {
			if kind == labels.Classic && m != Auto {
				continue
			}
			plans = append(plans, plan{kind, m, false, false})
		}
	}
	// The seed unpacked onto the sysroot: the ostree and classic routes.
	plans = append(plans, plan{labels.Native, Ostree, true, false}, plan{labels.BootcTarball, Ostree, true, false}, plan{labels.Classic, Auto, true, false})
	// An ostree with `admin set-default` (2023.x on) switches the default
	// without a second deploy.
	plans = append(plans, plan{labels.Native, Ostree, true, false})
	// An image without an SELinux policy: seedbuild writes the commit, and
	// a cut-down one to deploy aside.
	plans = append(plans, plan{labels.Native, Ostree, true, true})
	seen := map[string]bool{}
	for _, pl := range plans {
		kind, m := pl.kind, pl.method
		{
			name := kind.String() + "-" + string(m)
			if pl.unpacked {
				name += "-unpacked"
			}
			if pl.noPolicy {
				name += "-no-policy"
			}
			host := testHost()
			if seen[name] {
				name += "-set-default"
				host.HasSetDefault = true
			}
			seen[name] = true
			t.Run(name, func(t *testing.T) {
				o := Options{Stateroot: "rhcos-4.20", Sysroot: "/", Method: m, Kargs: []string{"console=ttyS0"}}
				seed := testSeed(kind)
				seed.Unpacked = pl.unpacked
				// create's native seeds have a /var layer, unpacked aside.
				seed.VarAside = pl.unpacked && kind == labels.Native
				seed.SELinuxPolicy = seed.SELinuxPolicy && !pl.noPolicy
				p := NewPlan(host, seed, o)
				got, err := json.MarshalIndent(p, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata/plans", name+".json")
				if *update {
					if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("reading golden file (run with -update): %v", err)
				}
				if diff := cmp.Diff(strings.TrimSpace(string(want)), strings.TrimSpace(string(got))); diff != "" {
					t.Errorf("NewPlan(%s, %s) mismatch (-golden +got):\n%s", kind, m, diff)
				}
			})
		}
	}
}

// passedKargs is the kernel command line a method's steps give the new
// deployment: what they pass, plus what bootc reads or inherits itself.
func passedKargs(p Plan, h HostFacts, s SeedFacts) []string {
	var out []string
	for _, st := range p.Steps {
		for i, a := range st.Argv {
			switch {
			case strings.HasPrefix(a, "--karg-append="):
				out = append(out, strings.TrimPrefix(a, "--karg-append="))
			case a == "--karg" && i+1 < len(st.Argv):
				out = append(out, st.Argv[i+1])
			}
		}
	}
	if p.Method == Bootc {
		out = append(bootcAdds(h), append(s.KargsD, out...)...)
	}
	sort.Strings(out)
	return out
}

// bootcAdds is what bootc install to-existing-root puts on the entry before
// kargs.d and --karg, modelled from its source apart from the code under
// test (crates/lib/src/install.rs at v1.16.9): find_root_args_to_inherit
// keeps the running kernel's root=, its first rootflags= and every rd.*;
// install_to_filesystem adds rw, and boot=UUID=... when /boot is its own
// file system, which a node with boot= on its command line has.
func bootcAdds(h HostFacts) []string {
	var out []string
	first := map[string]bool{}
	for _, k := range h.InheritedKargs {
		name, _, _ := strings.Cut(k, "=")
		switch {
		case (name == "root" || name == "rootflags") && !first[name]:
			first[name] = true
			out = append(out, k)
		case strings.HasPrefix(k, "rd."):
			out = append(out, k)
		}
	}
	out = append(out, "rw")
	for _, k := range h.InheritedKargs {
		if strings.HasPrefix(k, "boot=") {
			return append(out, k)
		}
	}
	return out
}

func TestKargsSameForEveryMethod(t *testing.T) {
	for _, kind := range []labels.Kind{labels.Native, labels.BootcTarball} {
		h, s := testHost(), testSeed(kind)
		o := Options{Stateroot: "new", Kargs: []string{"console=ttyS0"}}
		want := append([]string{}, NewPlan(h, s, Options{Stateroot: "new", Method: Ostree, Kargs: o.Kargs}).Kargs...)
		sort.Strings(want)
		for _, must := range []string{"fips=1", "ibu=4.20.0", "root=UUID=1234", "rw", "boot=UUID=5678", "console=ttyS0,115200n8", "ignition.platform.id=metal", "rd.luks.options=discard", "console=ttyS0", "psi=0"} {
			if !slices.Contains(want, must) {
				t.Errorf("%s: kargs %v lack %s", kind, want, must)
			}
		}
		for _, m := range []Method{Bootc, OstreeExt, Ostree} {
			o.Method = m
			p := NewPlan(h, s, o)
			// No argument twice: what bootc reads or adds itself is not
			// passed again.
			got := passedKargs(p, h, s)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s via %s: kargs differ from the ostree method's (-want +got):\n%s", kind, m, diff)
			}
		}
	}
}

func TestKargsNoIBU(t *testing.T) {
	p := NewPlan(testHost(), testSeed(labels.Native), Options{Stateroot: "x", Method: Ostree, NoIBUKarg: true})
	for _, k := range p.Kargs {
		if strings.HasPrefix(k, "ibu=") {
			t.Errorf("kargs = %v, want no ibu= with NoIBUKarg", p.Kargs)
		}
	}
}

func TestChooseMethod(t *testing.T) {
	tests := []struct {
		name string
		host func(*HostFacts)
		seed func(*SeedFacts)
		kind labels.Kind
		want Method
	}{
		{"bootc", nil, nil, labels.Native, Bootc},
		{"no podman", func(h *HostFacts) { h.PodmanAnswers = false }, nil, labels.Native, OstreeExt},
		// bootc installs only into the running system's root.
		{"a sysroot in a folder", func(h *HostFacts) { h.Sysroot, h.LiveRoot = "/var/tmp/sysroot", false }, nil, labels.Native, OstreeExt},
		{"no bootc in seed", nil, func(s *SeedFacts) { s.HasBootc = false }, labels.BootcTarball, OstreeExt},
		{"nothing", func(h *HostFacts) { h.PodmanAnswers, h.HasOstreeContainer = false, false }, nil, labels.Native, Ostree},
		{"classic", nil, nil, labels.Classic, Classic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s := testHost(), testSeed(tt.kind)
			if tt.host != nil {
				tt.host(&h)
			}
			if tt.seed != nil {
				tt.seed(&s)
			}
			if got, reason := ChooseMethod(h, s, Auto); got != tt.want || reason == "" {
				t.Errorf("ChooseMethod() = %s (%q), want %s with a reason", got, reason, tt.want)
			}
		})
	}
}

func TestPreflightReportsEverything(t *testing.T) {
	h := testHost()
	h.IsOstreeSysroot = false
	h.FreeBytes = 1 << 20
	h.BootFreeBytes = 1 << 20
	h.PodmanAnswers = false
	s := testSeed(labels.Native)
	s.Architecture = "arm64"
	no := false
	target := &labels.Target{FIPS: &no, OCPVersion: "4.19.0"}
	problems := Preflight(h, s, Options{Stateroot: "rhcos", Method: Bootc}, target)
	var checks []Check
	for _, p := range problems {
		checks = append(checks, p.Check)
	}
	want := []Check{CheckSysroot, CheckBooted, CheckArchitecture, CheckMethod, CheckSpace, CheckBootSpace, CheckCompatibility, CheckCompatibility}
	if diff := cmp.Diff(want, checks); diff != "" {
		t.Errorf("Preflight() checks mismatch (-want +got):\n%s\n%v", diff, problems)
	}
	if got := Preflight(testHost(), testSeed(labels.Native), Options{Stateroot: "new"}, nil); got != nil {
		t.Errorf("Preflight() on a good host = %v, want none", got)
	}
	// A sysroot folder that does not exist: one problem, not a space
	// problem that only follows from it.
	missing := testHost()
	missing.IsOstreeSysroot, missing.FreeBytes, missing.BootFreeBytes = false, 0, 0
	missing.SpaceUnknown = `reading the free space of "/x": no such file or directory`
	if got := Preflight(missing, testSeed(labels.Native), Options{Stateroot: "new"}, nil); len(got) != 1 || got[0].Check != CheckSysroot {
		t.Errorf("Preflight() on a missing sysroot = %v, want only the sysroot problem", got)
	}
	// A sysroot whose free space cannot be read: said, never taken as 0.
	unreadable := testHost()
	unreadable.FreeBytes, unreadable.SpaceUnknown = 0, `reading the free space of "/": permission denied`
	if got := Preflight(unreadable, testSeed(labels.Native), Options{Stateroot: "new"}, nil); len(got) != 1 || got[0].Check != CheckSpace || !strings.Contains(got[0].Message, "permission denied") {
		t.Errorf("Preflight() with unreadable free space = %v, want one space problem naming why", got)
	}
}

func TestPreflightStateroots(t *testing.T) {
	h := testHost()
	h.Booted = ""
	tests := []struct {
		name      string
		stateroot string
		force     bool
		want      int
	}{
		{"new", "new", false, 0},
		{"existing", "rhcos", false, 1},
		{"existing forced", "rhcos", true, 0},
		{"bad name", "a/b", false, 1},
		{"dotdot", "..", false, 1},
		{"long", strings.Repeat("x", 65), false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Preflight(h, testSeed(labels.Native), Options{Stateroot: tt.stateroot, Force: tt.force}, nil)
			if len(got) != tt.want {
				t.Errorf("Preflight(%q, force=%v) = %v, want %d problem(s)", tt.stateroot, tt.force, got, tt.want)
			}
		})
	}
	h.Booted = "rhcos"
	if got := Preflight(h, testSeed(labels.Native), Options{Stateroot: "rhcos", Force: true}, nil); len(got) != 1 || !strings.Contains(got[0].Message, "booted") {
		t.Errorf("Preflight(booted, force) = %v, want the booted stateroot refused", got)
	}
}

func TestParseStatus(t *testing.T) {
	a, b, c := strings.Repeat("2f", 32), strings.Repeat("0", 63)+"1", strings.Repeat("0", 63)+"2"
	// As ostree 2025.2 prints it: a staged deployment first, then the
	// booted one (ot-admin-builtin-status.c).
	out := "  seed " + b + ".0 (staged)\n    origin: <unknown origin type>\n* rhcos " + a + ".0\n    Version: 4.20\n    origin refspec: x\n" +
		"  other " + c + ".1 (finalization locked)\n"
	got := parseStatus(out)
	want := []deployment{
		{Index: 0, Stateroot: "seed", Checksum: b, Serial: 0, Staged: true},
		{Index: 1, Stateroot: "rhcos", Checksum: a, Serial: 0, Booted: true},
		{Index: 2, Stateroot: "other", Checksum: c, Serial: 1, Staged: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseStatus() mismatch (-want +got):\n%s", diff)
	}
}

// TestCommitUndoRemovesItsBranch: every step that commits onto a branch is
// undone by removing that very branch.
func TestCommitUndoRemovesItsBranch(t *testing.T) {
	for _, kind := range []labels.Kind{labels.Native, labels.BootcTarball} {
		for _, unpacked := range []bool{false, true} {
			s := testSeed(kind)
			s.Unpacked = unpacked
			p := NewPlan(testHost(), s, Options{Stateroot: "new", Method: Ostree})
			commits := 0
			for _, st := range p.Steps {
				branches := []string{}
				for _, a := range st.Argv {
					if branch, ok := strings.CutPrefix(a, "--branch="); ok {
						branches = append(branches, branch)
					}
				}
				if st.Action == ActionCommitTree {
					branches = append(branches, st.Args["ref"])
				}
				for _, branch := range branches {
					commits++
					if st.Undo == nil || st.Undo.Action != ActionRemoveCommit || st.Undo.Args["ref"] != branch {
						t.Errorf("%s (unpacked %v): step %q commits onto %s, its undo is %+v", kind, unpacked, st.Desc, branch, st.Undo)
					}
				}
			}
			if commits != 1 {
				t.Errorf("%s (unpacked %v): %d commit steps, want 1", kind, unpacked, commits)
			}
		}
	}
}

// TestCommitStepChoice: the unpacked root is always committed by seedbuild
// (commit-tree, never ostree commit); where a policy labels it, the step
// names the tree whose policy does, and says whether /usr/etc is labelled
// as /etc (the node's ostree has the labelling epoch).
func TestCommitStepChoice(t *testing.T) {
	for _, c := range []struct {
		name                    string
		epoch, labelled, policy bool
		wantPolicy, wantUsrEtc  string
	}{
		{"labelled layers, old ostree", false, true, true, "", ""},
		{"unlabelled layers with a policy", false, false, true, phMount, ""},
		{"new ostree labels by the policy", true, true, true, phMount, "true"},
		{"no policy, old ostree", false, false, false, "", ""},
		{"no policy, new ostree", true, false, false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := testHost()
			h.OstreeLabelsUsrEtc = c.epoch
			s := testSeed(labels.Native)
			s.Unpacked, s.Labelled, s.SELinuxPolicy = true, c.labelled, c.policy
			p := NewPlan(h, s, Options{Stateroot: "new", Method: Ostree})
			var commits []Step
			for _, st := range p.Steps {
				if st.Action == ActionCommitTree || len(st.Argv) > 1 && st.Argv[0] == "ostree" && st.Argv[1] == "commit" {
					commits = append(commits, st)
				}
			}
			if len(commits) != 1 || commits[0].Action != ActionCommitTree {
				t.Fatalf("commit steps %+v, want one commit-tree", commits)
			}
			a := commits[0].Args
			if a[argLabelPolicy] != c.wantPolicy || a[argUsrEtcAsEtc] != c.wantUsrEtc {
				t.Errorf("label-policy %q, usr-etc-as-etc %q; want %q, %q", a[argLabelPolicy], a[argUsrEtcAsEtc], c.wantPolicy, c.wantUsrEtc)
			}
			if got, want := strings.Contains(commits[0].Desc, "labelled by its SELinux policy"), c.wantPolicy != ""; got != want {
				t.Errorf("step %q: says it labels by the policy %v, want %v", commits[0].Desc, got, want)
			}
		})
	}
}

// TestSelinuxArgs: how the ostree method's commit labels the image.
func TestSelinuxArgs(t *testing.T) {
	policy := []string{"--selinux-policy={mount}"}
	for _, c := range []struct {
		name string
		h    HostFacts
		s    SeedFacts
		want []string
	}{
		{"ostree labels /usr/etc as /etc: the policy, always", HostFacts{OstreeLabelsUsrEtc: true}, SeedFacts{Labelled: true, Unpacked: true},
			[]string{"--selinux-policy={mount}", "--selinux-labeling-epoch=1"}},
		{"older ostree, labelled layers unpacked: their labels", HostFacts{}, SeedFacts{Labelled: true, Unpacked: true}, nil},
		{"older ostree, unlabelled image: the policy", HostFacts{}, SeedFacts{Unpacked: true}, policy},
		{"older ostree, pulled into containers-storage (labels left out): the policy", HostFacts{}, SeedFacts{Labelled: true}, policy},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := selinuxArgs(c.h, c.s); !slices.Equal(got, c.want) {
				t.Errorf("selinuxArgs = %q, want %q", got, c.want)
			}
		})
	}
}

// TestPreflightToolsAndRoot: the problems a step would meet late (bootc
// into a folder, the merge deploy's semodule in bubblewrap) are found
// before anything changes.
func TestPreflightToolsAndRoot(t *testing.T) {
	folder := func(h *HostFacts) { h.Sysroot, h.LiveRoot, h.Booted = "/var/tmp/sysroot", false, "" }
	noBwrap := func(h *HostFacts) { h.HasBwrap = false }
	tests := []struct {
		name   string
		host   func(*HostFacts)
		seed   func(*SeedFacts)
		opts   Options
		checks []Check
	}{
		{"bootc on the live root", nil, nil, Options{Method: Bootc}, nil},
		{"bootc into a folder", folder, nil, Options{Method: Bootc}, []Check{CheckMethod}},
		{"ostree-ext into a folder", folder, nil, Options{Method: OstreeExt}, nil},
		{"merge deploy without bwrap", noBwrap, nil, Options{Method: Ostree}, []Check{CheckHostTools}},
		{"merge deploy of a seed without semodule", nil, func(s *SeedFacts) { s.HasSemodule = false }, Options{Method: Ostree}, []Check{CheckSeedFiles}},
		{"no merge deploy with --not-as-default", noBwrap, nil, Options{Method: Ostree, NotAsDefault: true}, nil},
		{"no merge deploy with set-default", func(h *HostFacts) { h.HasBwrap, h.HasSetDefault = false, true }, nil, Options{Method: Ostree}, nil},
		{"no policy, nothing refreshed", noBwrap, func(s *SeedFacts) { s.SELinuxPolicy = false }, Options{Method: Ostree}, nil},
		{"bootc and ostree-ext deploy once", noBwrap, nil, Options{Method: OstreeExt}, nil},
		{"classic merge deploy without bwrap", noBwrap, nil, Options{}, []Check{CheckHostTools}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHost()
			h.HasBwrap = true
			kind := labels.Native
			if strings.HasPrefix(tt.name, "classic") {
				kind = labels.Classic
			}
			s := testSeed(kind)
			s.HasSemodule, s.SELinuxPolicy = true, true
			if tt.host != nil {
				tt.host(&h)
			}
			if tt.seed != nil {
				tt.seed(&s)
			}
			tt.opts.Stateroot = "new"
			var got []Check
			problems := Preflight(h, s, tt.opts, nil)
			for _, p := range problems {
				got = append(got, p.Check)
			}
			if !slices.Equal(got, tt.checks) {
				t.Errorf("Preflight() = %v, want checks %v", problems, tt.checks)
			}
		})
	}
}
