package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/docker/go-units"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/seedbuild/seedbuild/internal/localimage"
	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"github.com/seedbuild/seedbuild/internal/selabel"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// Config is everything Deploy needs.
type Config struct {
	Options
	// Image is the seed, in any transport.
	Image types.ImageReference
	// Store is local containers-storage. The bootc and ostree-ext methods
	// need the seed there, and it is pulled into it when it is not.
	Store storage.Store
	// KeepImage keeps a seed pulled into Store there after the deploy; by
	// default the pull is taken back (localimage.Source.Transient).
	KeepImage     bool
	SystemContext *types.SystemContext
	Policy        *signature.PolicyContext
	// Retry applies to pulling the seed.
	Retry imageref.Retry
	// PodmanURL is the podman service for the bootc method.
	PodmanURL string
	// Target, when set, is checked against the seed's cluster info.
	Target *labels.Target
	// DryRun stops after planning.
	DryRun bool
	// TempDir holds scratch folders; default /var/tmp. On a host seen
	// through a folder it is always under the host's root, where the host's
	// tools can reach it.
	TempDir string
	// Host is the node to deploy on: the zero Host is the one seedbuild
	// runs on; another (--host-root) is read under its root, and its own
	// tools run in its mount namespace.
	Host hostroot.Host
	// Events receives progress; Log receives children's long output.
	Events func(Event)
	Log    io.Writer
}

// Result is what Deploy did, or with DryRun would do.
type Result struct {
	Kind       string    `json:"kind"`
	Plan       Plan      `json:"plan"`
	Host       HostFacts `json:"host"`
	Seed       SeedFacts `json:"seed"`
	Deployment string    `json:"deployment,omitempty"`
	Checksum   string    `json:"checksum,omitempty"`
	BootEntry  string    `json:"boot_entry,omitempty"`
	// Staged says ostree staged the deployment (ostree-ext does on a
	// booted host): its boot entry is written at the next shutdown.
	Staged bool `json:"staged,omitempty"`
	// RemovedImage names the seed's image, pulled into containers-storage
	// for the deploy and deleted after it (see Config.KeepImage).
	RemovedImage string `json:"removed_image,omitempty"`
}

// Deploy installs the seed into a new stateroot, in stages that each make
// a value: the seed's labels (read from its transport), the label-only
// checks, the undo of what killed runs left, the seed materialised (unpacked onto the sysroot's file system
// for the ostree and classic routes, pulled into containers-storage for
// bootc and ostree-ext), the host's facts, every check, the plan, and the
// run. A dry run materialises nothing: it reads the few files the plan
// needs from the layers, and writes nowhere. Where a native seed's /var
// layer, unpacked aside, turns out not to equal the layers applied in
// order (varaside.go), the run is undone and done again in order.
func Deploy(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	desc, err := readSeed(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// What the labels alone can refuse is refused before anything is
	// fetched: no need to unpack gigabytes for a wrong sysroot.
	labelOnly := SeedFacts{Kind: desc.Seed.Kind(), KindName: desc.Kind, Architecture: desc.Architecture, Seed: desc.Seed,
		Image: imageref.Display(cfg.Image)}
	sysroot := sysrootFacts(cfg.Host, cfg.Sysroot)
	if !cfg.DryRun && sysroot.IsOstreeSysroot {
		if err := newExecutor(cfg, materialised{}).recoverJournals(ctx, true); err != nil {
			return nil, err
		}
	}
	if problems := beforePull(labelOnly.Kind, Preflight(sysroot, labelOnly, cfg.Options, cfg.Target)); len(problems) > 0 {
		return nil, &PreflightError{Problems: problems}
	}
	route := chooseRoute(ctx, cfg, labelOnly)
	if cfg.DryRun {
		return dryRun(ctx, cfg, desc, labelOnly, route)
	}
	scratch.RemoveStale(cfg.TempDir, cfg.Log)
	scratch.RemoveStale(filepath.Join(cfg.Sysroot, "ostree"), cfg.Log)
	localimage.RemoveStaleContainers(cfg.Store, cfg.Log)
	// What killed runs left is undone before the seed is fetched: the undo
	// needs only the journals, and frees the space the unpack and the
	// space checks count on.
	if err := newExecutor(cfg, materialised{}).recoverJournals(ctx, false); err != nil {
		return nil, err
	}
	res, err := deployOnce(ctx, cfg, desc, labelOnly, route)
	var se *StepError
	if errors.Is(err, errLayersInOrder) && !(errors.As(err, &se) && len(se.UndoErrs) > 0) {
		// Wholly undone: done again, the layers applied in order.
		if cfg.Events != nil {
			cfg.Events(Event{Type: EventInfo, Desc: fmt.Sprintf("Deploying again, with the layers applied in order: %v", err)})
		}
		route.inOrder = true
		res, err = deployOnce(ctx, cfg, desc, labelOnly, route)
	}
	return res, err
}

// deployOnce materialises the seed, checks the host and the seed, plans,
// and runs the plan.
func deployOnce(ctx context.Context, cfg Config, desc *seedimage.Description, labelOnly SeedFacts, route route) (res *Result, err error) {
	seed, m, err := materialise(ctx, cfg, desc, labelOnly, route)
	if err != nil {
		return nil, err
	}
	defer func() {
		if removed := m.release(); res != nil {
			res.RemovedImage = removed
		}
	}()
	ex := newExecutor(cfg, m)
	host := GatherHost(ctx, cfg.Host, cfg.Sysroot, route.ping, route.ostreeExt)
	host.PodmanURL = cfg.PodmanURL
	if problems := Preflight(host, seed, cfg.Options, cfg.Target); len(problems) > 0 {
		return nil, &PreflightError{Problems: problems}
	}
	plan := NewPlan(host, seed, cfg.Options)
	res = &Result{Kind: desc.Kind, Plan: plan, Host: host, Seed: seed}
	if cfg.Events != nil {
		cfg.Events(Event{Type: EventInfo, Desc: fmt.Sprintf("Deploying the %s seed with the %s method: %s", desc.Kind, plan.Method, plan.Reason)})
	}
	if err := execute(ctx, ex, plan, cfg); err != nil {
		return res, err
	}
	made := ex.made()
	res.Deployment, res.Checksum, res.BootEntry, res.Staged = made.Deployment, made.Checksum, made.BootEntry, made.Staged
	return res, nil
}

// withDefaults fills what was left out and checks the stateroot's name.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Sysroot == "" {
		cfg.Sysroot = cfg.Host.Root()
	}
	if cfg.Method == "" {
		cfg.Method = Auto
	}
	if cfg.PodmanURL == "" {
		cfg.PodmanURL = HostPodmanURL(cfg.Host)
	}
	if !cfg.Host.Local() && cfg.Host.HostPath(cfg.TempDir) == cfg.TempDir {
		cfg.TempDir = cfg.Host.Path("/var/tmp")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := ValidateStateroot(cfg.Stateroot); err != nil {
		return cfg, err
	}
	abs, err := filepath.Abs(cfg.Sysroot)
	if err != nil {
		return cfg, fmt.Errorf("resolving the sysroot %q: %w", cfg.Sysroot, err)
	}
	cfg.Sysroot = abs
	return cfg, nil
}

// readSeed reads the seed's labels from its transport.
func readSeed(ctx context.Context, cfg Config) (*seedimage.Description, error) {
	desc, err := seedimage.Read(ctx, cfg.Image, cfg.SystemContext)
	if err != nil {
		return nil, fmt.Errorf("inspecting %q: %w", imageref.Display(cfg.Image), err)
	}
	return desc, nil
}

// unpackRatio is how much bigger than its compressed layers a seed is
// taken to be unpacked, for the space check before unpacking: OS content
// compresses about 2.5 to 3 times with gzip.
const unpackRatio = 3

// route is how the seed reaches the sysroot.
type route struct {
	// unpack says the seed is unpacked straight onto the sysroot's file
	// system, where the commit takes its files over (ostree commit
	// --consume) and its /var is moved, not copied: each byte is written
	// once. Otherwise it is pulled into containers-storage and mounted,
	// which bootc and ostree-ext need.
	unpack bool
	// inOrder says every layer is applied in order: a native seed's /var
	// layer is not unpacked aside (see varaside.go).
	inOrder bool
	// ping asks the podman service, for the bootc method.
	ping func(context.Context) bool
	// ostreeExt asks whether `ostree container` runs.
	ostreeExt func(context.Context) bool
}

// askOnce answers the first question asked, and then the same.
func askOnce(ask func(context.Context) bool) func(context.Context) bool {
	var once sync.Once
	var answer bool
	return func(ctx context.Context) bool {
		once.Do(func() { answer = ask(ctx) })
		return answer
	}
}

// chooseRoute picks how the seed reaches the sysroot: only bootc and
// ostree-ext need containers-storage, so a seed unpacks unless one of
// them can run. It reads the host, and changes nothing.
func chooseRoute(ctx context.Context, cfg Config, seed SeedFacts) route {
	// Each probe runs once; GatherHost reuses the answers.
	r := route{ostreeExt: askOnce(OstreeContainerWorks(cfg.Host.Runner()))}
	// bootc installs only into the running system's root.
	if seed.Kind.Bootable() && (cfg.Method == Auto || cfg.Method == Bootc) && cfg.Host.IsRoot(cfg.Sysroot) {
		r.ping = askOnce(PodmanPinger(cfg.PodmanURL))
	}
	switch {
	case seed.Kind == labels.Classic, cfg.Method == Ostree:
		r.unpack = true
	case cfg.Method == Auto:
		r.unpack = !(r.ping != nil && r.ping(ctx)) && !r.ostreeExt(ctx)
	}
	return r
}

// materialise makes the seed's root file system readable on the host, by
// its route, and reads the seed's facts from it. release removes what it
// made (the unpacked root; the mount, and the pull unless KeepImage).
func materialise(ctx context.Context, cfg Config, desc *seedimage.Description, seed SeedFacts, r route) (SeedFacts, materialised, error) {
	if r.unpack {
		return unpackSeed(ctx, cfg, desc, seed, r)
	}
	return mountSeed(ctx, cfg, desc, seed)
}

// unpackSeed unpacks the seed's layers straight onto the sysroot's file
// system, in a scratch folder under ostree/, for the commit to take its
// files over; a native seed's /var layer beside the others unless r says
// in order.
func unpackSeed(ctx context.Context, cfg Config, desc *seedimage.Description, seed SeedFacts, r route) (SeedFacts, materialised, error) {
	var none materialised
	free, err := unpackSpace(cfg, desc)
	if err != nil {
		return seed, none, err
	}
	stage, err := scratch.New(filepath.Join(cfg.Sysroot, "ostree"), "deploy-"+cfg.Stateroot)
	if err != nil {
		return seed, none, err
	}
	root := filepath.Join(stage.Path, "rootfs")
	n := len(desc.Layers)
	known := ostreerepo.NewKnown()
	uo := seedimage.UnpackOptions{Known: known, OnLayer: func(i int) {
		if cfg.Events != nil {
			cfg.Events(Event{Type: EventInfo, Desc: fmt.Sprintf("Unpacking layer %d of %d onto the sysroot", i+1, n)})
		}
	}}
	if cfg.AllowXattrLoss {
		uo.LabelLost = warnLabelLost(cfg.Log)
	}
	if seed.Kind != labels.Classic {
		// The commit takes over all but /var (prepareRoot).
		uo.ObjectTimes = func(rel string) bool { return !inVar(rel) }
		uo.Labels = &seedimage.PolicyLabels{Load: loadPolicy, Path: labelPathAtUnpack}
	}
	aside := -1
	if !r.inOrder {
		aside = varLayerIndex(desc)
	}
	if aside >= 0 {
		leaveOut(&uo, aside)
	}
	var seedRepo string
	if seed.Kind == labels.Classic {
		// The OS's repo is extracted straight from the layer, beside
		// the root: the gigabyte ostree.tgz is never written.
		seedRepo = filepath.Join(stage.Path, "ostree-repo")
		uo.Extract = map[string]string{classicRepoArchive: seedRepo}
	}
	// prepareRoot saves the labels there, before the commit.
	m := materialised{root: root, seedRepo: seedRepo, labels: filepath.Join(stage.Path, "seed-etc-labels.json"), known: known,
		release: func() string { stage.Remove(); return "" }}
	if aside >= 0 {
		if cfg.Events != nil {
			cfg.Events(Event{Type: EventInfo, Desc: fmt.Sprintf("Unpacking layer %d of %d (the seed's /var) beside the others, behind them", aside+1, n)})
		}
		m.aside = unpackAside(ctx, cfg, aside, filepath.Join(stage.Path, "var-layer"), uo.LabelLost)
		m.release = func() string { m.aside.stop(); stage.Remove(); return "" }
		seed.VarAside = true
	}
	unpacked, err := seedimage.Unpack(ctx, cfg.Image, cfg.SystemContext, root, uo)
	if err != nil {
		m.release()
		if errors.Is(err, syscall.ENOSPC) {
			return seed, none, &PreflightError{Problems: []Problem{{Check: CheckSpace, Message: fmt.Sprintf(
				"the sysroot ran out of space unpacking the seed (%s were free); nothing was changed", units.BytesSize(float64(free)))}}}
		}
		return seed, none, fmt.Errorf("unpacking %s onto %q: %w", imageref.Display(cfg.Image), stage.Path, err)
	}
	if m.aside != nil {
		if err := m.aside.agrees(root); err != nil {
			m.release()
			return seed, none, err
		}
	}
	seed.Unpacked, seed.Size, seed.Labelled = true, unpacked.Size, unpacked.Labels > 0
	readSeedFiles(dirTree(root), &seed)
	// The commit takes the seed's files over: the origin is kept
	// beside the root for the deploy steps.
	if err := m.keepOrigin(seed.Origin, filepath.Join(stage.Path, "seed.origin")); err != nil {
		m.release()
		return seed, none, err
	}
	return seed, m, nil
}

// loadPolicy reads the SELinux policy of a root being unpacked, for the
// checksums the unpack guesses (seedimage.PolicyLabels): the same policy
// the commit step labels by, when no later layer changes it. Its matcher
// is not checked against the compiled contexts: the commit's is, and
// looks every label up again.
func loadPolicy(root string) (seedimage.PolicyLabeler, error) {
	p, err := selabel.LoadUnchecked(root)
	if p == nil {
		return nil, err
	}
	return p, err
}

// labelPathAtUnpack is the path the commit step labels an unpacked file
// of a native seed as, for the files whose label does not depend on the
// host: not the image's /etc (where the commit puts it, and so its label,
// depends on the host's ostree: hostfacts OstreeLabelsUsrEtc), nor /var
// (not committed).
func labelPathAtUnpack(rel string) (string, bool) {
	if under(rel, "etc") || under(rel, "usr/etc") || inVar(rel) {
		return "", false
	}
	return "/" + rel, true
}

// unpackSpace is the sysroot's free space, or a space problem when the
// seed's compressed layers already show the unpack cannot fit. The
// unpacked size is known only once unpacked: an unpack that runs out of
// space is a space problem too, with nothing left.
func unpackSpace(cfg Config, desc *seedimage.Description) (uint64, error) {
	free, err := freeBytes(cfg.Sysroot)
	if err != nil {
		return 0, &PreflightError{Problems: []Problem{{Check: CheckSpace, Message: err.Error()}}}
	}
	if need := uint64(desc.LayersSize) * unpackRatio; free < need {
		return 0, &PreflightError{Problems: []Problem{{Check: CheckSpace, Message: fmt.Sprintf(
			"the sysroot has %s free, unpacking the seed needs about %s (its compressed layers x %d)",
			units.BytesSize(float64(free)), units.BytesSize(float64(need)), unpackRatio)}}}
	}
	return free, nil
}

// mountSeed pulls the seed into containers-storage, when it is not there,
// and mounts it: bootc and ostree-ext read it from there.
func mountSeed(ctx context.Context, cfg Config, desc *seedimage.Description, seed SeedFacts) (SeedFacts, materialised, error) {
	var none materialised
	mnt, err := localimage.EnsureMounted(ctx, cfg.Store, localimage.Source{Ref: cfg.Image, Description: desc,
		SystemContext: cfg.SystemContext, Policy: cfg.Policy, Retry: cfg.Retry, Progress: cfg.Log, Transient: !cfg.KeepImage})
	if err != nil {
		return seed, none, err
	}
	seed.Image, seed.ImageID, seed.Store = imageref.Display(mnt.Ref), mnt.ImageID, imageref.StoreSpec(cfg.Store)
	if size, err := cfg.Store.ImageSize(mnt.ImageID); err == nil {
		seed.Size = size
	}
	readSeedFiles(dirTree(mnt.Path), &seed)
	m := materialised{root: mnt.Path}
	if seed.originFile != "" {
		// The mount stays for the whole run: its file is read as it is.
		m.origin = filepath.Join(mnt.Path, seed.originFile)
	}
	m.release = func() (removed string) {
		undone, err := mnt.Release()
		if err != nil {
			fmt.Fprintf(cfg.Log, "Warning: %v\n", err)
		}
		if undone == nil {
			return ""
		}
		if cfg.Events != nil {
			cfg.Events(Event{Type: EventInfo, Desc: fmt.Sprintf("Took %s out of local storage again: this deploy pulled it (--keep-image keeps it)", undone)})
		}
		if undone.Deleted {
			return undone.Name
		}
		return ""
	}
	if seed.Kind == labels.Native {
		// containers-storage unpacked the files without their labels: the
		// /etc apply and the /var fill take them from the layers (bootc
		// and ostree-ext relabel /var by the image's policy).
		etcFile, err := saveImageLabels(ctx, cfg, mnt.Ref, labels.SeedEtcDir)
		if err != nil {
			m.release()
			return seed, none, err
		}
		varFile, err := saveImageLabels(ctx, cfg, mnt.Ref, "/var")
		if err != nil {
			os.Remove(etcFile)
			m.release()
			return seed, none, err
		}
		m.labels, m.varLabels = etcFile, varFile
		release := m.release
		m.release = func() string { defer os.Remove(etcFile); defer os.Remove(varFile); return release() }
	}
	return seed, m, nil
}

// warnLabelLost is the unpack's LabelLost under --allow-xattr-loss: it
// warns on w and goes on.
func warnLabelLost(w io.Writer) func(string, error) error {
	// Two unpacks may warn at once (the /var layer's is aside).
	var mu sync.Mutex
	return func(_ string, err error) error {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "Warning: %v (going on: --allow-xattr-loss)\n", err)
		return nil
	}
}

// materialised is the seed's root file system on the host.
type materialised struct {
	root string
	// seedRepo is where a classic seed's ostree.tgz was extracted.
	seedRepo string
	// labels is the file with the SELinux labels of the seed's /etc files,
	// for the /etc apply (see phSeedLabels).
	labels string
	// varLabels is the file with the SELinux labels of the seed's /var, on
	// the pulled route (see phVarLabels).
	varLabels string
	// known holds the checksums of the files the unpack wrote.
	known *ostreerepo.Known
	// aside is the /var layer, being unpacked beside the root, or nil.
	aside *asideLayer
	// origin is the file that holds the seed node's origin, or "".
	origin string
	// release removes what materialise made, and names the pulled image
	// it deleted from containers-storage, if any (see Config.KeepImage).
	release func() (removed string)
}

// keepOrigin writes the seed node's origin to path, for the deploy steps
// (phOriginFile); nothing when the seed has none. An unpacked seed's own
// file is taken over by the commit, so it is kept beside the root.
func (m *materialised) keepOrigin(origin, path string) error {
	if origin == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(origin), 0o644); err != nil {
		return fmt.Errorf("keeping the seed node's origin: %w", err)
	}
	m.origin = path
	return nil
}

// saveImageLabels writes the SELinux labels of the seed's files under dir,
// as its layers give them, to a file in the temporary folder.
func saveImageLabels(ctx context.Context, cfg Config, ref types.ImageReference, dir string) (string, error) {
	found, err := seedimage.LabelsUnder(ctx, ref, cfg.SystemContext, dir)
	if err != nil {
		return "", fmt.Errorf("reading the SELinux labels of the seed's %s in %s: %w", dir, imageref.Display(ref), err)
	}
	data, err := json.Marshal(found)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(cfg.TempDir, "seedbuild-labels-*.json")
	if err != nil {
		return "", fmt.Errorf("saving the SELinux labels of the seed's %s: %w", dir, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("saving the SELinux labels of the seed's %s: %w", dir, err)
	}
	return f.Name(), nil
}

// dryRun plans from what the layers say, read straight from the seed's
// transport, and the host's facts: nothing is pulled, unpacked, mounted,
// recovered or written.
func dryRun(ctx context.Context, cfg Config, desc *seedimage.Description, seed SeedFacts, r route) (*Result, error) {
	scan, err := seedimage.Scan(ctx, cfg.Image, cfg.SystemContext, seedFactFile)
	if err != nil {
		return nil, fmt.Errorf("reading the layers of %s: %w", imageref.Display(cfg.Image), err)
	}
	seed.Unpacked, seed.Size, seed.Labelled = r.unpack, scan.Size, scan.Labelled
	seed.VarAside = r.unpack && varLayerIndex(desc) >= 0
	if !r.unpack {
		seed.ImageID = desc.ConfigDigest
		if cfg.Store != nil {
			seed.Store = imageref.StoreSpec(cfg.Store)
		}
	}
	readSeedFiles(scannedTree{scan}, &seed)
	host := GatherHost(ctx, cfg.Host, cfg.Sysroot, r.ping, r.ostreeExt)
	host.PodmanURL = cfg.PodmanURL
	if problems := Preflight(host, seed, cfg.Options, cfg.Target); len(problems) > 0 {
		return nil, &PreflightError{Problems: problems}
	}
	return &Result{Kind: desc.Kind, Plan: NewPlan(host, seed, cfg.Options), Host: host, Seed: seed}, nil
}

func newExecutor(cfg Config, m materialised) *executor {
	ex := &executor{
		runner: cfg.Host.Runner(), vars: map[string]string{varName(phMount): m.root, varName(phSeedLabels): m.labels, varName(phVarLabels): m.varLabels, varName(phSeedRepo): m.seedRepo, varName(phOriginFile): m.origin}, events: cfg.Events, sysroot: cfg.Sysroot,
		tempDir: cfg.TempDir, podmanURL: cfg.PodmanURL, log: cfg.Log, allowXattrLoss: cfg.AllowXattrLoss, host: cfg.Host,
		known: m.known, aside: m.aside,
	}
	if cfg.Store != nil {
		ex.graphRoot = cfg.Store.GraphRoot()
	}
	ex.failAt, ex.hangAt, ex.pauseDir = failpoints()
	ex.registerActions()
	return ex
}

// execute runs the plan with a journal: it is removed when the run is done
// or wholly undone, and kept, for the next run to finish the undo, when an
// undo failed.
func execute(ctx context.Context, ex *executor, plan Plan, cfg Config) error {
	ex.kargs = plan.Kargs
	var err error
	if ex.before, err = ex.deployments(ctx); err != nil {
		return err
	}
	if ex.beforeImageRefs, err = ex.imageRefs(ctx); err != nil {
		return err
	}
	ex.journal = &journal{PID: os.Getpid(), Boot: scratch.BootID(), Stateroot: cfg.Stateroot, Sysroot: cfg.Sysroot, Before: ex.before, BeforeImageRefs: ex.beforeImageRefs, path: journalPath(cfg.Sysroot, cfg.Stateroot)}
	err = ex.run(ctx, plan)
	var se *StepError
	if errors.As(err, &se) && len(se.UndoErrs) > 0 {
		return err
	}
	if rerr := ex.journal.remove(); rerr != nil && err == nil {
		err = fmt.Errorf("removing the deploy journal: %w", rerr)
	}
	return err
}

// beforePull keeps the problems a seed's labels are enough to find. The
// others need the image's content (its size, kernel, bootc), or wait for
// the recovery of a killed run (an existing stateroot may be its leftover).
// A --method given for a classic seed is wrong whatever its content.
func beforePull(kind labels.Kind, problems []Problem) []Problem {
	var out []Problem
	for _, p := range problems {
		switch {
		case p.Check == CheckSysroot, p.Check == CheckBooted, p.Check == CheckArchitecture, p.Check == CheckCompatibility,
			p.Check == CheckMethod && kind == labels.Classic:
			out = append(out, p)
		}
	}
	return out
}
