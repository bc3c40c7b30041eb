// Package deployer installs a seed image into a new ostree stateroot. It
// gathers facts read-only, checks them all at once (Preflight), turns them
// into a pure Plan, and carries the plan out with an executor that undoes
// what it did when a step fails.
package deployer

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/seedbuild/seedbuild/labels"
)

// Method is how a seed is installed.
type Method string

// The install methods.
const (
	// Auto picks bootc, then ostree-ext, then ostree for bootable seeds, and
	// Classic for classic seeds.
	Auto Method = "auto"
	// Bootc runs `bootc install to-existing-root` in a privileged container.
	Bootc Method = "bootc"
	// OstreeExt runs `ostree container image deploy`.
	OstreeExt Method = "ostree-ext"
	// Ostree commits the image's root into the repo with plain libostree.
	Ostree Method = "ostree"
	// Classic replays the upstream agent's deploy of a FROM-scratch seed.
	Classic Method = "classic"
)

// ParseMethod checks a --method value.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case Auto, Bootc, OstreeExt, Ostree:
		return m, nil
	}
	return "", fmt.Errorf("unknown method %q: want auto, bootc, ostree-ext or ostree", s)
}

var stateRootName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ValidateStateroot checks a stateroot name: [A-Za-z0-9_.-]{1,64}, not "."
// or "..".
func ValidateStateroot(name string) error {
	if !stateRootName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("invalid stateroot name %q: want 1 to 64 of A-Z a-z 0-9 _ . - other than \".\" and \"..\"", name)
	}
	return nil
}

// Options are what the user asked for.
type Options struct {
	// Stateroot is the new stateroot's name.
	Stateroot string
	// Sysroot is the ostree sysroot; default "/".
	Sysroot string
	// Method defaults to Auto.
	Method Method
	// Kargs are added last.
	Kargs []string
	// NotAsDefault keeps the current default deployment.
	NotAsDefault bool
	// Force replaces an existing, non-booted stateroot.
	Force bool
	// NoIBUKarg leaves out the ibu=<version> kernel argument.
	NoIBUKarg bool
	// AllowXattrLoss lets the copies of /var and /etc go on past xattrs
	// (SELinux labels among them) that the sysroot's file system refuses,
	// with a warning; by default such a copy fails and names the path.
	AllowXattrLoss bool
}

// HostFacts is what Gather read about the host and sysroot, read-only.
type HostFacts struct {
	Sysroot         string `json:"sysroot"`
	IsOstreeSysroot bool   `json:"is_ostree_sysroot"`
	// LiveRoot is whether the sysroot is the running system's root (the
	// node's /, or --host-root's), the only one bootc installs into.
	LiveRoot bool `json:"live_root"`
	// Booted is the booted stateroot, "" when the sysroot is not booted.
	Booted string `json:"booted_stateroot,omitempty"`
	// Stateroots are the existing stateroots.
	Stateroots []string `json:"stateroots"`
	// Architecture is the host's, GOARCH style.
	Architecture string `json:"architecture"`
	// InheritedKargs are the running kernel's arguments that a new
	// stateroot keeps (see CarriedFromHost), when the sysroot is the
	// running system's.
	InheritedKargs []string `json:"inherited_kargs,omitempty"`
	// HasOstreeContainer is whether `ostree container` runs.
	HasOstreeContainer bool `json:"has_ostree_container"`
	// HasSetDefault is whether `ostree admin set-default` exists (ostree
	// 2023.x and later): a new deployment can then be made the default
	// without deploying it a second time.
	HasSetDefault bool `json:"has_set_default"`
	// OstreeLabelsUsrEtc is whether `ostree commit` can label /usr/etc as
	// the /etc it becomes (--selinux-labeling-epoch=1, ostree 2023.7 and
	// later); an older one labels it by the policy's rule for /usr/etc.
	OstreeLabelsUsrEtc bool `json:"ostree_labels_usr_etc"`
	// HasBwrap is whether the host has /usr/bin/bwrap, which ostree runs
	// an image's semodule in.
	HasBwrap bool `json:"has_bwrap"`
	// PodmanAnswers is whether the podman service answered.
	PodmanAnswers bool   `json:"podman_answers"`
	PodmanURL     string `json:"podman_url,omitempty"`
	// FreeBytes and BootFreeBytes are the free space in the sysroot and in
	// its boot/ folder.
	FreeBytes     uint64 `json:"free_bytes"`
	BootFreeBytes uint64 `json:"boot_free_bytes"`
	// SpaceUnknown says why the free space could not be read, if so.
	SpaceUnknown string `json:"space_unknown,omitempty"`
}

// SeedFacts is what the seed image says and holds.
type SeedFacts struct {
	// Image is the seed in local containers-storage, as the transport names it.
	Image string `json:"image"`
	// ImageID is the local image ID.
	ImageID string `json:"image_id"`
	// Store is the containers-storage store that holds the image, as
	// driver@graphroot+runroot[:options] (see imageref.StoreSpec), for tools that
	// read the image from it.
	Store        string      `json:"store,omitempty"`
	Kind         labels.Kind `json:"-"`
	KindName     string      `json:"kind"`
	Architecture string      `json:"architecture"`
	Seed         labels.Seed `json:"-"`
	// Unpacked says the seed's root was unpacked onto the sysroot's file
	// system, for the commit to take its files over (ostree commit
	// --consume), rather than mounted from containers-storage.
	Unpacked bool `json:"unpacked"`
	// VarAside says the seed's /var layer is unpacked beside the others,
	// while the commit runs, and moved into the stateroot's var before
	// the new deployment becomes the default.
	VarAside bool `json:"var_aside,omitempty"`
	// Labelled says the seed's layers carry SELinux labels.
	Labelled bool `json:"labelled"`
	// SELinuxPolicy says the image has an SELinux policy (its
	// etc/selinux/config), which an ostree commit may label files by.
	SELinuxPolicy bool `json:"selinux_policy"`
	// HasBootc is whether the image has /usr/bin/bootc.
	HasBootc bool `json:"has_bootc"`
	// HasSemodule is whether the image has semodule (/usr/sbin or
	// /usr/bin), which ostree runs in a merge deploy of an image with an
	// SELinux policy.
	HasSemodule bool `json:"has_semodule"`
	// KargsD are the kernel arguments of the image's kargs.d files.
	KargsD []string `json:"kargs_d,omitempty"`
	// Unreadable lists the kargs.d files that could not be read or
	// parsed, each with why: a preflight problem, since ostree-ext and the
	// ostree method must pass every karg themselves.
	Unreadable []string `json:"unreadable,omitempty"`
	// Origin is the seed node's booted deployment's .origin, as the seed
	// carries it (labels.OriginFile, or the agent's AgentOriginFile
	// beside rpm-ostree.json), or "" for a seed without one. Every route
	// gives it to the new deployment, as the upstream agent does: it names
	// the OS image rpm-ostree and the machine-config daemon see.
	Origin string `json:"origin,omitempty"`
	// originFile is where Origin is in the seed's root.
	originFile string
	// MachineConfigKargs are spec.kernelArguments of mco-currentconfig.json.
	MachineConfigKargs []string `json:"machine_config_kargs,omitempty"`
	// Size is the image's uncompressed size.
	Size int64 `json:"size"`
	// KernelSize is the size of the kernel and initramfs.
	KernelSize int64 `json:"kernel_size"`
}

// Step is one thing the executor does: a command line, or a named internal
// action with arguments. Argv and Args may hold placeholders such as
// {mount}, {commit} and {deployment}, which the executor fills in as
// earlier steps learn them.
type Step struct {
	Desc string   `json:"desc"`
	Argv []string `json:"argv,omitempty"`
	// Action names an internal action; Args are its arguments. An action
	// with Argv runs that command its own way (bootc-install runs it in a
	// container).
	Action string            `json:"action,omitempty"`
	Args   map[string]string `json:"args,omitempty"`
	// Capture stores the command's trimmed stdout (an action's result)
	// under this placeholder.
	Capture string `json:"capture,omitempty"`
	// Makes names the other values the step learns, each stored under its
	// placeholder for later steps and the result. A step can store no
	// value it does not declare here, so the plan (and --dry-run) shows
	// every value each step makes.
	Makes []string `json:"makes,omitempty"`
	// Undo reverses the step; it runs when a later step fails.
	Undo *Step `json:"undo,omitempty"`
}

// The internal actions a Step can name, one list for the planner and the
// executor.
const (
	// ActionClearStateroot removes an existing stateroot's non-booted deployments and var (--force).
	ActionClearStateroot = "clear-stateroot"
	// ActionRemoveStateroot undeploys what the run made in a stateroot and removes the stateroot.
	ActionRemoveStateroot = "remove-stateroot"
	// ActionPrepareRoot lays an unpacked root out for the commit.
	ActionPrepareRoot = "prepare-root"
	// ActionMergeVar moves the seed's /var layer, unpacked beside the root, into the stateroot's var.
	ActionMergeVar = "merge-var"
	// ActionUndeployPath removes one deployment, named by its folder.
	ActionUndeployPath = "undeploy-path"
	// ActionUndeploy removes the deployments the run made in a stateroot.
	ActionUndeploy = "undeploy"
	// ActionFindDeployment finds the new deployment's folder.
	ActionFindDeployment = "find-deployment"
	// ActionStageUsrEtc lays the image's /etc out as /usr/etc beside the image root, for the commit.
	ActionStageUsrEtc = "stage-usr-etc"
	// ActionUnstageUsrEtc removes that staging folder.
	ActionUnstageUsrEtc = "unstage-usr-etc"
	// ActionTempDir makes a scratch folder. No plan uses it any more: it
	// is kept, with its undo, for the journals of runs of older versions.
	ActionTempDir = "temp-dir"
	// ActionRemoveTempDir removes a scratch folder.
	ActionRemoveTempDir = "remove-temp-dir"
	// ActionClassicCommit finds the commit a classic seed carries.
	ActionClassicCommit = "classic-commit"
	// ActionCopyTree copies a folder with every attribute.
	ActionCopyTree = "copy-tree"
	// ActionApplyDeletions removes the /etc files the seed node deleted.
	ActionApplyDeletions = "apply-deletions"
	// ActionWriteFile writes a file.
	ActionWriteFile = "write-file"
	// ActionCommitTree commits a laid-out root into the repo, taking its
	// files over, in Go (package ostreerepo).
	ActionCommitTree = "commit-tree"
	// ActionUnpackArchive extracts a tarball (file) into a folder (to), in
	// Go, as tar xzf with tarOpts would, writing files in parallel.
	ActionUnpackArchive = "unpack-archive"
	// ActionCopySeedFiles copies a tarball seed's metadata files.
	ActionCopySeedFiles = "copy-seed-files"
	// ActionVerify checks the new deployment.
	ActionVerify = "verify"
	// ActionBootcInstall runs bootc install to-existing-root in a container.
	ActionBootcInstall = "bootc-install"
	// ActionRemoveCommit deletes a branch and prunes the objects no ref holds.
	ActionRemoveCommit = "remove-commit"
)

// Plan is the ordered list of steps that installs a seed.
type Plan struct {
	Method    Method `json:"method"`
	Reason    string `json:"reason"`
	Stateroot string `json:"stateroot"`
	Sysroot   string `json:"sysroot"`
	// Kargs is the full kernel command line the new deployment gets, the
	// same whatever the method.
	Kargs []string `json:"kargs"`
	Steps []Step   `json:"steps"`
}

// tarOpts are the upstream agent's tar options for its tarballs.
var tarOpts = []string{"--selinux", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner"}

// ChooseMethod resolves Auto into a method and says why.
func ChooseMethod(h HostFacts, s SeedFacts, asked Method) (Method, string) {
	if s.Kind == labels.Classic {
		return Classic, "classic seeds (FROM scratch) are deployed from their ostree.tgz"
	}
	if asked != Auto && asked != "" {
		return asked, "asked for with --method"
	}
	switch {
	case s.HasBootc && h.PodmanAnswers && h.LiveRoot:
		return Bootc, "the seed has /usr/bin/bootc and the podman service answers"
	case h.HasOstreeContainer:
		return OstreeExt, "`ostree container` is available (no bootc in the seed, no podman service, or a sysroot that is not the running system's)"
	}
	return Ostree, "neither bootc with a podman service nor `ostree container` is available"
}

// Kargs is the kernel command line of the new deployment, in order: the
// MachineConfig's (as the seed carries them), fips=1 when the seed cluster
// has FIPS, the image's kargs.d, ibu=<version>, the running kernel's
// arguments that CarriedFromHost keeps, then --karg. Duplicates keep their
// first place.
func Kargs(h HostFacts, s SeedFacts, o Options) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ks ...string) {
		for _, k := range ks {
			if k != "" && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	add(s.MachineConfigKargs...)
	if s.Seed.ClusterInfo.HasFIPS {
		add("fips=1")
	}
	add(s.KargsD...)
	if v := s.Seed.ClusterInfo.SeedClusterOCPVersion; v != "" && !o.NoIBUKarg {
		add("ibu=" + v)
	}
	add(h.InheritedKargs...)
	add(o.Kargs...)
	return out
}

// storageRef names the image in its store, in the containers-storage
// transport's syntax: ostree-ext reads the image there, not from the
// default store.
func (s SeedFacts) storageRef() string {
	if s.Store == "" {
		return s.ImageID
	}
	return "[" + s.Store + "]" + s.ImageID
}

// NewPlan turns facts and options into the steps that install the seed.
// It is pure: it reads nothing and changes nothing.
func NewPlan(h HostFacts, s SeedFacts, o Options) Plan {
	method, reason := ChooseMethod(h, s, o.Method)
	p := Plan{Method: method, Reason: reason, Stateroot: o.Stateroot, Sysroot: h.Sysroot, Kargs: Kargs(h, s, o)}
	if slices.Contains(h.Stateroots, o.Stateroot) {
		p.Steps = append(p.Steps, Step{
			Desc: "remove the existing stateroot's non-booted deployments and its var (--force)", Action: ActionClearStateroot,
			Args: map[string]string{argSysroot: h.Sysroot, argStateroot: o.Stateroot},
		})
	}
	switch method {
	case Bootc, OstreeExt:
		p.Steps = append(p.Steps, imageToolSteps(p, h, s, o)...)
	case Ostree, Classic:
		p.Steps = append(p.Steps, ostreeSteps(p, h, s, o)...)
	}
	return p
}

// imageToolSteps install the seed with bootc or ostree-ext, which read it
// from containers-storage, then lay the seed node's state in.
func imageToolSteps(p Plan, h HostFacts, s SeedFacts, o Options) []Step {
	sr := h.Sysroot
	stateDir := path.Join(sr, "ostree/deploy", o.Stateroot)
	var steps []Step
	if p.Method == Bootc {
		steps = append(steps, bootcSteps(p, h, s, o)...)
	} else {
		steps = append(steps, osInit(sr, o.Stateroot, h)...)
		steps = append(steps, ostreeExtStep(p, s, o))
	}
	// bootc and ostree-ext import the image into the repo under
	// ostree/container/ refs: undoing the stateroot or the deployment
	// removes the refs the run added.
	for _, st := range steps {
		if st.Undo != nil && (st.Undo.Action == ActionRemoveStateroot || st.Undo.Action == ActionUndeploy) {
			st.Undo.Args[imageRefsArg] = imageRefsNew
		}
	}
	steps = append(steps, findDeploymentStep(sr, o.Stateroot))
	if s.Origin != "" {
		// bootc and ostree-ext name the image they installed from (a
		// local containers-storage ID): the agent's prep copies the seed
		// node's origin over it, and so does this step.
		steps = append(steps, Step{Desc: "give the new deployment the seed node's origin, as the upstream agent does", Action: ActionWriteFile,
			Args: map[string]string{argPath: phDeployment + ".origin", argFrom: phOriginFile}})
	}
	steps = append(steps, varSteps(s.Kind, p.Method, stateDir)...)
	steps = append(steps, etcSteps(s.Kind)...)
	if o.NotAsDefault {
		steps = append(steps, Step{Desc: "keep the previous default deployment (--not-as-default)",
			Argv: []string{"ostree", "admin", "set-default", "--sysroot=" + sr, "1"}})
	}
	return append(steps, verifyStep(p, s, o))
}

// ostreeExtStep deploys the image with ostree container image deploy.
func ostreeExtStep(p Plan, s SeedFacts, o Options) Step {
	argv := []string{"ostree", "container", "image", "deploy", "--sysroot", p.Sysroot, "--stateroot", o.Stateroot,
		"--imgref", "ostree-unverified-image:containers-storage:" + s.storageRef()}
	if ref := labels.OriginValue(s.Origin, "container-image-reference"); ref != "" {
		// ostree-ext writes the origin's container-image-reference from
		// --target-imgref (crates/ostree-ext, container/deploy.rs).
		argv = append(argv, "--target-imgref", ref)
	}
	for _, k := range p.Kargs {
		argv = append(argv, "--karg", k)
	}
	return Step{Desc: "deploy the image with ostree-ext (which ignores kargs.d, so every karg is passed)", Argv: argv, Undo: undeployStep(p.Sysroot, o.Stateroot)}
}

// ostreeSteps install the seed with plain libostree (a classic seed's
// commit, or the image's root committed), lay the seed node's state in,
// and make the deployment the default once it is whole: it is made
// aside, filled, and then deployed again as the default (or set-default),
// which ostree does atomically (after a sync), merging the /etc state from
// the copy made aside. A power cut at any point boots either the old
// default or the whole new deployment.
func ostreeSteps(p Plan, h HostFacts, s SeedFacts, o Options) []Step {
	sr := h.Sysroot
	stateDir := path.Join(sr, "ostree/deploy", o.Stateroot)
	seedDir := seedFiles(s.Kind)
	// redeploy: the default is switched by deploying the commit again (no
	// --not-as-default, no admin set-default), so the copy made aside is
	// a spare. aside is the commit deployed aside: the whole commit, or a
	// cut-down one where the commit step makes it.
	redeploy := redeploys(h, o)
	aside := phCommit
	var steps []Step
	switch {
	case p.Method == Classic:
		steps = append(steps, classicSteps(sr)...)
		steps = append(steps, osInit(sr, o.Stateroot, h)...)
		steps = append(steps, varSteps(s.Kind, p.Method, stateDir)...)
	case s.Unpacked:
		var commit []Step
		commit, aside = unpackedCommitSteps(h, s, o, redeploy)
		steps = append(steps, commit...)
		seedDir = phDeployment + labels.SeedDir
	default:
		steps = append(steps, commitSteps(sr, o.Stateroot, selinuxArgs(h, s))...)
		steps = append(steps, osInit(sr, o.Stateroot, h)...)
		steps = append(steps, varSteps(s.Kind, p.Method, stateDir)...)
	}
	steps = append(steps, deployStep(sr, o.Stateroot, p.Kargs, aside, s.Origin != ""), findDeploymentStep(sr, o.Stateroot))
	steps = append(steps, etcStepsFrom(s.Kind, seedDir)...)
	if s.Unpacked && s.VarAside {
		steps = append(steps, Step{Desc: "move the seed's /var layer, unpacked beside the others, into the stateroot's var", Action: ActionMergeVar,
			Args: map[string]string{argVar: stateDir + "/var"}})
	}
	switch {
	case o.NotAsDefault:
	case !redeploy:
		steps = append(steps, Step{Desc: "make the whole deployment the default (ostree swaps the boot configuration atomically)",
			Argv: []string{"ostree", "admin", "set-default", "--sysroot=" + sr, phDeploymentIndex}})
	default:
		again := []string{"ostree", "admin", "deploy", "--sysroot=" + sr, "--os=" + o.Stateroot, "--no-prune"}
		if s.Origin != "" {
			// ostree writes a new deployment's origin from the refspec,
			// not from the merge deployment's origin.
			again = append(again, "--origin-file="+phOriginFile)
		}
		steps = append(steps,
			Step{Desc: "make the whole deployment the default: deploy the commit again, with the /etc state ostree merges from the first copy",
				Argv: append(again, phCommit),
				Undo: undeployStep(sr, o.Stateroot)},
			Step{Desc: "remove the first copy, now a spare", Action: ActionUndeployPath,
				Args: map[string]string{argSysroot: sr, argDeployment: phDeployment}},
			findDeploymentStep(sr, o.Stateroot))
	}
	verify := verifyStep(p, s, o)
	if _, ok := verify.Args[argSeedEtc]; ok && redeploy && s.SELinuxPolicy {
		verify.Args[argPolicyRefreshed] = "true"
	}
	return append(steps, verify)
}

// unpackedCommitSteps lay the unpacked root out for the commit in place,
// its /var moved into the stateroot, and commit it, taking its files over:
// the seed's own files are then read from the new deployment's /usr. It
// returns the steps and the commit to deploy aside: a cut-down one where
// seedbuild writes the commit and the default is switched by redeploying.
func unpackedCommitSteps(h HostFacts, s SeedFacts, o Options, redeploy bool) ([]Step, string) {
	sr := h.Sysroot
	stateDir := path.Join(sr, "ostree/deploy", o.Stateroot)
	steps := osInit(sr, o.Stateroot, h)
	prep := Step{Desc: "lay the unpacked root out for the commit: its /etc as /usr/etc, its /var left out", Action: ActionPrepareRoot,
		Args: map[string]string{argRoot: phMount}, Capture: varName(phMountPoints)}
	if s.Kind == labels.Native {
		prep.Desc = "lay the unpacked root out for the commit: its /etc as /usr/etc, its /var moved into the stateroot's var, the seed's /etc labels kept aside"
		prep.Args[argVar] = stateDir + "/var"
		prep.Args[argLabelsOf] = phMount + labels.SeedEtcDir
		prep.Args[argLabelsTo] = phSeedLabels
	}
	steps = append(steps, prep)
	if s.Kind != labels.Native {
		steps = append(steps, varSteps(s.Kind, Ostree, stateDir)...)
	}
	aside := phCommit
	commit := consumeCommitStep(sr, o.Stateroot, h, s)
	if commit.Action == ActionCommitTree && redeploy {
		// The copy made aside only has to boot-configure and carry the
		// /etc state: it is a cut-down commit of the same tree, cheap to
		// check out and to remove.
		commit.Desc += "; and a cut-down commit of it (what ostree admin deploy and the /etc steps read) to deploy aside"
		commit.Makes = []string{varName(phAside)}
		aside = phAside
	}
	return append(steps, commit), aside
}

// verifyStep checks the new deployment: its boot entry, and, for a
// bootable seed, the image's files, /etc state and /var where they are
// still to be read.
func verifyStep(p Plan, s SeedFacts, o Options) Step {
	verify := Step{Desc: "verify the new deployment", Action: ActionVerify,
		Args:  map[string]string{argSysroot: p.Sysroot, argStateroot: o.Stateroot, argKind: s.Kind.String(), argDeployment: phDeployment},
		Makes: []string{varName(phBootEntry), varName(phStaged)}}
	if s.Kind == labels.Classic {
		return verify
	}
	verify.Args[argImageRoot] = phMount
	verify.Args[argSeedEtc] = phMount + labels.SeedDir + "/etc"
	verify.Args[argImageVar] = phMount + "/var"
	if s.Unpacked && p.Method == Ostree {
		// The commit took the unpacked files over: the seed's /etc is the
		// new deployment's, and its /var was moved.
		verify.Args[argImageRoot], verify.Args[argImageVar] = "", ""
		verify.Args[argMountPoints] = phMountPoints
		verify.Args[argSeedEtc] = phDeployment + labels.SeedDir + "/etc"
	}
	if s.Kind != labels.Native {
		delete(verify.Args, argSeedEtc)
		delete(verify.Args, argImageVar)
	}
	return verify
}

// redeploys says whether the ostree method makes the deployment the
// default by deploying its commit a second time: without --not-as-default,
// on an ostree without admin set-default.
func redeploys(h HostFacts, o Options) bool { return !o.NotAsDefault && !h.HasSetDefault }

// mergeDeploys says whether the plan deploys into a stateroot that already
// has a deployment of the seed (the ostree method's second deploy), where
// ostree merges /etc from it and, for an image with /etc/selinux/config
// (SeedFacts.SELinuxPolicy), refreshes the SELinux policy with the image's semodule in bubblewrap
// (ostree-sysroot-deploy.c, sysroot_finalize_deployment and
// sysroot_finalize_selinux_policy, v2022.3 and later).
func mergeDeploys(h HostFacts, o Options, method Method) bool {
	return (method == Ostree || method == Classic) && redeploys(h, o)
}

// selinuxArgs say how the commit labels the image's files. Where ostree
// can label /usr/etc as the /etc it becomes, every file is labelled as the
// image's own SELinux policy says (read from its etc/selinux), as bootc and
// ostree-ext do when they import an image: whatever the files carried (no
// label after containers-storage, or container_file_t under a context=
// mount) does not matter. An older ostree would label /usr/etc by the
// policy's rule for /usr/etc, so every /etc file of the deployment would
// get etc_t: there an image whose layers carry labels (as a bootc image's
// build gives them, by its policy) is committed with those, and only an
// unlabelled one is labelled by the policy. An image without a policy
// commits as it is.
func selinuxArgs(h HostFacts, s SeedFacts) []string {
	switch {
	case h.OstreeLabelsUsrEtc:
		return []string{"--selinux-policy=" + phMount, "--selinux-labeling-epoch=1"}
	case s.Labelled && s.Unpacked:
		return nil
	}
	return []string{"--selinux-policy=" + phMount}
}

// labelledBy says how selinuxArgs label a commit, for a step's description.
func labelledBy(selinux []string) string {
	if len(selinux) == 0 {
		return ", with the SELinux labels its layers carry"
	}
	return ", labelled by its SELinux policy"
}

// consumeCommitStep commits the unpacked root into the repo, taking its
// files over instead of copying them (they are on the same file system).
// seedbuild writes the objects itself (package ostreerepo, checked against
// ostree commit and ostree fsck by its tests): ostree commit spends most
// of its time checksumming with GLib's SHA-256, which uses no SHA
// instructions, on one core, and with a policy it looks each label up on
// that core too. Where selinuxArgs label by the image's policy, so does
// the step, on every core (package selabel, libselinux's rules; checked
// against ostree commit --selinux-policy by the tests): on an RHCOS-sized
// base ostree's labelled commit took 30 s of a 51 s deploy.
func consumeCommitStep(sr, name string, h HostFacts, s SeedFacts) Step {
	selinux := selinuxArgs(h, s)
	st := Step{Desc: "commit the unpacked root into the sysroot's repo, taking its files over (no copy)" + labelledBy(selinux),
		Action:  ActionCommitTree,
		Args:    map[string]string{argRepo: path.Join(sr, "ostree/repo"), argRef: "seedbuild/" + name, argRoot: phMount},
		Capture: varName(phCommit), Undo: removeCommitStep(sr, "seedbuild/"+name)}
	if len(selinux) == 0 || !s.SELinuxPolicy {
		st.Desc = "commit the unpacked root into the sysroot's repo, taking its files over (no copy), keeping the SELinux labels its layers gave them (no policy labels them)"
		return st
	}
	st.Args[argLabelPolicy] = phMount
	if h.OstreeLabelsUsrEtc {
		st.Args[argUsrEtcAsEtc] = "true"
	}
	return st
}

func findDeploymentStep(sr, name string) Step {
	return Step{Desc: "find the new deployment", Action: ActionFindDeployment,
		Args: map[string]string{argSysroot: sr, argStateroot: name}, Capture: varName(phDeployment), Makes: []string{varName(phChecksum), varName(phDeploymentIndex)}}
}

// osInit creates the stateroot; with --force over an existing one there is
// nothing to create.
func osInit(sr, name string, h HostFacts) []Step {
	if slices.Contains(h.Stateroots, name) {
		return nil
	}
	return []Step{{Desc: "create the stateroot", Argv: []string{"ostree", "admin", "os-init", "--sysroot=" + sr, name},
		Undo: removeStaterootStep(sr, name)}}
}

func removeStaterootStep(sr, name string) *Step {
	return &Step{Desc: "remove the stateroot this run made", Action: ActionRemoveStateroot, Args: map[string]string{argSysroot: sr, argStateroot: name}}
}

// removeCommitStep deletes the branch a commit step made, when it made one,
// and prunes the objects that no ref holds, so neither a finished nor an
// interrupted commit leaves an OS's worth of objects behind. Every
// deployment keeps its commit through its own ref.
func removeCommitStep(sr, ref string) *Step {
	args := map[string]string{argRepo: path.Join(sr, "ostree/repo")}
	desc := "prune the objects the pulled commit brought"
	if ref != "" {
		args[argRef] = ref
		desc = "remove the branch " + ref + " and the objects only it held"
	}
	return &Step{Desc: desc, Action: ActionRemoveCommit, Args: args}
}

func undeployStep(sr, name string) *Step {
	return &Step{Desc: "remove the deployment this run made", Action: ActionUndeploy, Args: map[string]string{argSysroot: sr, argStateroot: name}}
}

// deployStep deploys commit into the stateroot beside the default: the
// deployment is not whole until its /etc state is laid in. With origin,
// the deployment gets the seed node's origin (--origin-file), which
// ostree writes with the deployment.
func deployStep(sr, name string, kargs []string, commit string, origin bool) Step {
	argv := []string{"ostree", "admin", "deploy", "--sysroot=" + sr, "--os=" + name, "--no-prune", "--not-as-default"}
	for _, k := range kargs {
		argv = append(argv, "--karg-append="+k)
	}
	if origin {
		argv = append(argv, "--origin-file="+phOriginFile)
	}
	argv = append(argv, commit)
	desc := "deploy the commit into the stateroot, beside the default and pruning nothing"
	if commit != phCommit {
		desc = "deploy the cut-down commit into the stateroot, beside the default and pruning nothing"
	}
	return Step{Desc: desc, Argv: argv, Undo: undeployStep(sr, name)}
}

// commitSteps commit the mounted image's root into the sysroot's repo,
// with the image's /etc as /usr/etc and without var, run, tmp, proc, sys,
// dev.
func commitSteps(sr, name string, selinux []string) []Step {
	argv := []string{"ostree", "commit", "--repo=" + path.Join(sr, "ostree/repo"), "--branch=seedbuild/" + name, "--skip-list=" + phStage + "/skip-list"}
	argv = append(append(argv, selinux...), "--tree=dir="+phMount, "--tree=dir="+phStage+"/tree")
	return []Step{
		{Desc: "lay the image's /etc out as /usr/etc for the commit", Action: ActionStageUsrEtc,
			Args: map[string]string{argRoot: phMount}, Capture: varName(phStage),
			Undo: &Step{Desc: "remove the staging folder", Action: ActionUnstageUsrEtc, Args: map[string]string{argStage: phStage}}},
		{Desc: "commit the image's root filesystem into the sysroot's repo" + labelledBy(selinux),
			Argv:    argv,
			Capture: varName(phCommit),
			Undo:    removeCommitStep(sr, "seedbuild/"+name)},
		{Desc: "release the staging folder", Action: ActionUnstageUsrEtc, Args: map[string]string{argStage: phStage}},
	}
}

// classicRepoArchive is a classic seed's OS repo, extracted into
// {seed-repo} as the seed is unpacked.
const classicRepoArchive = labels.OstreeArchive

// classicSteps pull the commit of a classic seed's ostree.tgz, extracted
// into {seed-repo} as the seed was unpacked.
func classicSteps(sr string) []Step {
	return []Step{
		{Desc: "find the seed's commit in its " + classicRepoArchive, Action: ActionClassicCommit, Args: map[string]string{argRepo: phSeedRepo, argRpmOstree: phMount + "/rpm-ostree.json"}, Capture: varName(phCommit)},
		// By checksum: the seed repo's refs are not brought along, so the
		// undo has only objects to prune.
		{Desc: "pull the seed's commit into the sysroot's repo", Argv: []string{"ostree", "pull-local", "--repo=" + path.Join(sr, "ostree/repo"), phSeedRepo, phCommit},
			Undo: removeCommitStep(sr, "")},
	}
}

// seedFiles is where a seed's state files are in the mounted image.
func seedFiles(kind labels.Kind) string {
	if kind == labels.Classic {
		return phMount
	}
	return phMount + labels.SeedDir
}

// varSteps lay the seed node's /var into the stateroot's var.
func varSteps(kind labels.Kind, method Method, stateDir string) []Step {
	seed := seedFiles(kind)
	switch {
	case kind == labels.Native && method == Ostree:
		return []Step{{Desc: "fill the stateroot's var from the image's /var",
			Action: ActionCopyTree, Args: map[string]string{argFrom: phMount + "/var", argTo: stateDir + "/var"}}}
	case kind == labels.Native:
		// libostree fills a new stateroot's empty var from the image from
		// 2024.3 on (ostree-sysroot-deploy.c, prepare_deployment_var);
		// before, ostree-ext moves the image's /var to
		// usr/share/factory/var (container/store.rs, ostree_v2024_3) and
		// the var holds only what os-init made. Whichever ran, what the
		// var lacks is copied; what the tool put there stays.
		// Either way the files carry the labels the image's policy gives
		// them (ostree-ext relabels a merged tree with derived layers:
		// container/store.rs, write_merge_commit_impl): the seed node's
		// labels, from the layers, are put back on what is there.
		return []Step{{Desc: "fill the stateroot's var from the image's /var where the install left it out (ostree before 2024.3 does not fill it), with the seed node's labels",
			Action: ActionCopyTree, Args: map[string]string{argFrom: phMount + "/var", argTo: stateDir + "/var", argKeep: keepExisting, argLabels: phVarLabels}}}
	case kind == labels.BootcTarball || kind == labels.Classic:
		return []Step{
			{Desc: "unpack var.tgz into the stateroot", Action: ActionUnpackArchive, Args: map[string]string{argFile: seed + "/" + labels.VarArchive, argTo: stateDir}},
			{Desc: "copy the seed's metadata files into the stateroot's var/tmp, as the upstream agent does", Action: ActionCopySeedFiles,
				Args: map[string]string{argFrom: seed, argTo: stateDir + "/var/tmp"}},
		}
	}
	return nil
}

// etcSteps lay the seed node's /etc state into the new deployment's /etc.
func etcSteps(kind labels.Kind) []Step { return etcStepsFrom(kind, seedFiles(kind)) }

// etcStepsFrom is etcSteps with the seed's files read from seed.
func etcStepsFrom(kind labels.Kind, seed string) []Step {
	var steps []Step
	if kind == labels.Native {
		copyEtc := Step{Desc: "apply the seed's /etc changes to the new deployment's /etc, with the labels its layers give them",
			Action: ActionCopyTree, Args: map[string]string{argFrom: seed + "/etc", argTo: phDeployment + "/etc", argLabels: phSeedLabels}}
		if strings.HasPrefix(seed, phDeployment) {
			// Read from the deployment's checkout, where files of the
			// same content share an inode: /etc files are each their own.
			copyEtc.Args[argLinks] = "unlinked"
		}
		steps = append(steps, copyEtc)
	} else {
		steps = append(steps, Step{Desc: "unpack etc.tgz into the new deployment", Argv: append([]string{"tar", "xzf", seed + "/" + labels.EtcArchive, "-C", phDeployment}, tarOpts...)})
	}
	steps = append(steps, Step{Desc: "remove the /etc files the seed node deleted", Action: ActionApplyDeletions,
		Args: map[string]string{argList: seed + "/" + labels.DeletionsFile, argEtc: phDeployment + "/etc"}})
	if kind == labels.Native {
		steps = append(steps, Step{Desc: "mark the /etc state applied, so the first-boot unit skips", Action: ActionWriteFile,
			Args: map[string]string{argPath: phDeployment + labels.EtcStamp, argContent: ""}})
	}
	return steps
}

// bootcSteps run bootc in a privileged container from the seed image.
func bootcSteps(p Plan, h HostFacts, s SeedFacts, o Options) []Step {
	argv := []string{"bootc", "install", "to-existing-root", "--acknowledge-destructive", "--stateroot", o.Stateroot}
	// bootc reads kargs.d and puts the root's and /boot's arguments on
	// the entry itself (bootcInherits): passing them again would put them
	// there twice. An explicit --karg is passed as asked.
	own := map[string]bool{}
	for _, k := range s.KargsD {
		own[k] = true
	}
	for _, k := range p.Kargs {
		if !own[k] && (!bootcInherits(k) || slices.Contains(o.Kargs, k)) {
			argv = append(argv, "--karg", k)
		}
	}
	// bootc makes the stateroot itself: undo removes it when it is new.
	undo := undeployStep(p.Sysroot, o.Stateroot)
	if !slices.Contains(h.Stateroots, o.Stateroot) {
		undo = removeStaterootStep(p.Sysroot, o.Stateroot)
	}
	return []Step{{
		Desc: "run bootc install to-existing-root in a privileged container from the seed", Action: ActionBootcInstall,
		Args: map[string]string{argImage: s.ImageID, argTarget: p.Sysroot}, Argv: argv, Undo: undo,
	}}
}

// CarriedFromHost says whether an argument of the running kernel goes to
// the new stateroot. Those that say how to find and mount the root and
// /boot (root=, rootflags=, rw or ro, boot=, rd.*), where the console is
// (console=) and which platform the node runs on (ignition.platform.id=)
// are the node's, not the seed's: a new stateroot without them does not
// boot, or boots blind. Everything else comes from the seed: its
// MachineConfig's kargs, kargs.d and ibu=. ostree=, BOOT_IMAGE= and
// initrd= are the bootloader's, and the running stateroot's own
// MachineConfig kargs are replaced by the seed's.
func CarriedFromHost(k string) bool {
	name, _, _ := strings.Cut(k, "=")
	switch name {
	case "root", "rootflags", "rw", "ro", "boot", "console", "ignition.platform.id":
		return true
	}
	return strings.HasPrefix(k, "rd.")
}

// bootcInherits says whether bootc install to-existing-root puts the
// argument on the new entry by itself (crates/lib/src/install.rs at
// v1.16.9, find_root_args_to_inherit and install_to_filesystem): root=,
// the first rootflags= and every rd.* of the running kernel, then rw, then
// boot= for a /boot on its own file system (from /etc/fstab, or the
// mount's UUID).
func bootcInherits(k string) bool {
	name, _, _ := strings.Cut(k, "=")
	switch name {
	case "root", "rootflags", "rw", "boot":
		return true
	}
	return strings.HasPrefix(k, "rd.")
}
