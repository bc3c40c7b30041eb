package deployer

import (
	"fmt"
	"slices"

	"github.com/docker/go-units"
	"github.com/seedbuild/seedbuild/labels"
)

// Check names one preflight check.
type Check string

// The preflight checks.
const (
	CheckSysroot       Check = "sysroot"
	CheckStateroot     Check = "stateroot"
	CheckBooted        Check = "booted-stateroot"
	CheckArchitecture  Check = "architecture"
	CheckMethod        Check = "method"
	CheckSpace         Check = "space"
	CheckBootSpace     Check = "boot-space"
	CheckCompatibility Check = "compatibility"
	CheckSeedFiles     Check = "seed-files"
	CheckHostTools     Check = "host-tools"
)

// Problem is one reason not to deploy.
type Problem struct {
	Check   Check  `json:"check"`
	Message string `json:"message"`
}

func (p Problem) String() string { return string(p.Check) + ": " + p.Message }

// PreflightError carries every problem Preflight found.
type PreflightError struct{ Problems []Problem }

func (e *PreflightError) Error() string {
	msg := fmt.Sprintf("refusing to deploy, %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		msg += "\n  " + p.String()
	}
	return msg
}

// hostName names the host whose tools a step runs.
func hostName(h HostFacts) string {
	if h.LiveRoot {
		return "the host"
	}
	return "the host of " + h.Sysroot
}

// Preflight checks everything before anything changes and reports every
// problem, not just the first. target, when not nil, is checked against
// the seed's cluster info.
func Preflight(h HostFacts, s SeedFacts, o Options, target *labels.Target) []Problem {
	var out []Problem
	add := func(check Check, format string, args ...any) {
		out = append(out, Problem{Check: check, Message: fmt.Sprintf(format, args...)})
	}
	if !h.IsOstreeSysroot {
		add(CheckSysroot, "%q is not an ostree sysroot (no ostree/repo): make one with `ostree admin init-fs`", h.Sysroot)
	}
	if err := ValidateStateroot(o.Stateroot); err != nil {
		add(CheckStateroot, "%v", err)
	}
	if h.Booted != "" && h.Booted == o.Stateroot {
		add(CheckBooted, "%q is the booted stateroot: deploy into a new one", o.Stateroot)
	} else if slices.Contains(h.Stateroots, o.Stateroot) && !o.Force {
		add(CheckStateroot, "stateroot %q exists: pick another name, or pass --force to replace its non-booted deployments", o.Stateroot)
	}
	for _, u := range s.Unreadable {
		add(CheckSeedFiles, "the seed's kargs.d file %s: its kernel arguments would be lost", u)
	}
	if s.Architecture != "" && h.Architecture != "" && s.Architecture != h.Architecture {
		add(CheckArchitecture, "the seed is for %s, this host is %s", s.Architecture, h.Architecture)
	}
	method, _ := ChooseMethod(h, s, o.Method)
	if method == Bootc && !h.LiveRoot {
		// bootc install to-existing-root installs into the root the host
		// runs from, bind-mounted at /target (crates/lib/src/install.rs,
		// install_to_existing_root): it cannot be pointed at a folder.
		add(CheckMethod, "--method bootc installs into the running system's root, not into %q: use --method ostree-ext or ostree for a sysroot in a folder, or deploy on the node with --sysroot /", h.Sysroot)
	}
	switch {
	case s.Kind == labels.Classic && o.Method != Auto && o.Method != "":
		add(CheckMethod, "classic seeds are deployed from their ostree.tgz; --method %s does not apply (use auto)", o.Method)
	case method == Bootc && !s.HasBootc:
		add(CheckMethod, "--method bootc: the seed has no /usr/bin/bootc")
	case method == Bootc && !h.PodmanAnswers:
		add(CheckMethod, "--method bootc: the podman service at %s does not answer: start it with `systemctl start podman.socket`", h.PodmanURL)
	case method == OstreeExt && !h.HasOstreeContainer:
		add(CheckMethod, "--method ostree-ext: `ostree container` is not available on this host")
	case (method == Bootc || method == OstreeExt) && o.NotAsDefault && !h.HasSetDefault:
		add(CheckMethod, "--not-as-default with the %s method needs `ostree admin set-default` (ostree 2023.x or later), which this host's ostree lacks", method)
	}
	if s.SELinuxPolicy && mergeDeploys(h, o, method) {
		// The second deploy refreshes the seed's policy: semodule, run in
		// the new deployment through /usr/bin/bwrap (a path compiled into
		// ostree), and a failure of either fails the deploy
		// (ostree-sysroot-deploy.c, sysroot_finalize_selinux_policy and
		// run_in_deployment, v2022.7).
		if !h.HasBwrap {
			add(CheckHostTools, "the seed carries an SELinux policy (/etc/selinux/config), which this host's ostree refreshes with semodule in bubblewrap when it deploys the seed again as the default, and %s lacks /usr/bin/bwrap: install bubblewrap, or deploy with --not-as-default", hostName(h))
		}
		if !s.HasSemodule {
			add(CheckSeedFiles, "the seed carries an SELinux policy (/etc/selinux/config) but no semodule, which this host's ostree runs in the new deployment when it deploys the seed again as the default: deploy with --not-as-default")
		}
	}
	// A sysroot that is not there is the sysroot problem above, not a
	// space problem too; free space that cannot be read is a problem.
	unknownSpace := h.SpaceUnknown != ""
	if h.IsOstreeSysroot && h.SpaceUnknown != "" {
		add(CheckSpace, "%s", h.SpaceUnknown)
	}
	if need := uint64(float64(s.Size) * 1.1); s.Size > 0 && h.FreeBytes < need && !unknownSpace {
		add(CheckSpace, "the sysroot has %s free, the seed needs %s (its size x 1.1)", units.BytesSize(float64(h.FreeBytes)), units.BytesSize(float64(need)))
	}
	if need := uint64(float64(s.KernelSize) * 1.2); s.KernelSize > 0 && h.BootFreeBytes < need && !unknownSpace {
		add(CheckBootSpace, "boot/ has %s free, the seed's kernel and initramfs need %s (x 1.2)", units.BytesSize(float64(h.BootFreeBytes)), units.BytesSize(float64(need)))
	}
	if target != nil {
		for _, m := range labels.CompatibleImage(s.Seed.ClusterInfo, s.Architecture, *target) {
			add(CheckCompatibility, "%s", m.String())
		}
	}
	return out
}
