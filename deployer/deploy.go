package deployer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/localimage"
	"github.com/seedbuild/seedbuild/scratch"
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
	// Store is local containers-storage; the seed is pulled into it.
	Store         storage.Store
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
	// TempDir holds scratch folders; default /var/tmp.
	TempDir string
	// Events receives progress; Log receives children's long output.
	Events func(Event)
	Log    io.Writer

	runner Runner
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
}

// Deploy installs the seed into a new stateroot: inspect, gather, check,
// plan, then (unless DryRun) execute, undoing on failure.
func Deploy(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Sysroot == "" {
		cfg.Sysroot = "/"
	}
	if cfg.Method == "" {
		cfg.Method = Auto
	}
	if cfg.PodmanURL == "" {
		cfg.PodmanURL = DefaultPodmanURL
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.runner == nil {
		cfg.runner = ExecRunner{}
	}
	if err := ValidateStateroot(cfg.Stateroot); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Sysroot)
	if err != nil {
		return nil, err
	}
	cfg.Sysroot = abs
	scratch.RemoveStale(cfg.TempDir, cfg.Log)
	localimage.RemoveStaleContainers(cfg.Store, cfg.Log)

	desc, err := seedimage.Read(ctx, cfg.Image, cfg.SystemContext)
	if err != nil {
		if desc != nil && errors.Is(err, labels.ErrNotASeed) {
			return nil, fmt.Errorf("%s is not a seed: %w", desc.Image, err)
		}
		return nil, fmt.Errorf("inspecting %q: %w", imageref.Display(cfg.Image), err)
	}
	// What the labels alone can refuse is refused before a pull: no need to
	// fetch gigabytes for a wrong sysroot or an incompatible target.
	labelOnly := SeedFacts{Kind: desc.Seed.Kind(), KindName: desc.Kind, Architecture: desc.Architecture, Seed: desc.Seed}
	if problems := beforePull(Preflight(sysrootFacts(cfg.Sysroot), labelOnly, cfg.Options, cfg.Target)); len(problems) > 0 {
		return nil, &PreflightError{Problems: problems}
	}
	local, imageID, err := localimage.Ensure(ctx, cfg.Store, cfg.Image, desc, cfg.SystemContext, cfg.Policy, cfg.Retry, cfg.Log)
	if err != nil {
		return nil, err
	}
	mnt, err := localimage.Mount(cfg.Store, imageID)
	if err != nil {
		return nil, err
	}
	defer mnt.Release()

	seed := labelOnly
	seed.Image, seed.ImageID = imageref.Display(local), imageID
	if size, err := cfg.Store.ImageSize(imageID); err == nil {
		seed.Size = size
	}
	readSeedFiles(mnt.Path, &seed)
	var ping func(context.Context) bool
	if seed.Kind.Bootable() && seed.HasBootc && (cfg.Method == Auto || cfg.Method == Bootc) {
		ping = PodmanPinger(cfg.PodmanURL)
	}
	ex := &executor{
		runner: cfg.runner, vars: map[string]string{"mount": mnt.Path}, events: cfg.Events, sysroot: cfg.Sysroot,
		tempDir: cfg.TempDir, podmanURL: cfg.PodmanURL, graphRoot: cfg.Store.GraphRoot(), log: cfg.Log,
	}
	ex.registerActions()
	// A dry run changes nothing, not even what a killed run left.
	if !cfg.DryRun && fileExists(filepath.Join(cfg.Sysroot, "ostree/repo/config")) {
		if err := ex.recoverJournals(ctx); err != nil {
			return nil, err
		}
	}
	host := GatherHost(ctx, cfg.Sysroot, ping)
	host.PodmanURL = cfg.PodmanURL
	if problems := Preflight(host, seed, cfg.Options, cfg.Target); len(problems) > 0 {
		return nil, &PreflightError{Problems: problems}
	}
	plan := NewPlan(host, seed, cfg.Options)
	res := &Result{Kind: desc.Kind, Plan: plan, Host: host, Seed: seed}
	if cfg.DryRun {
		return res, nil
	}
	if cfg.Events != nil {
		cfg.Events(Event{Type: EventInfo, Desc: fmt.Sprintf("Deploying the %s seed with the %s method: %s", desc.Kind, plan.Method, plan.Reason)})
	}
	ex.kargs, ex.allowXattrLoss = plan.Kargs, cfg.AllowXattrLoss
	ex.failAt, ex.hangAt = failpoints()
	if ex.before, err = ex.deployments(ctx); err != nil {
		return nil, err
	}
	ex.journal = &journal{PID: os.Getpid(), Stateroot: cfg.Stateroot, Before: ex.before, path: journalPath(cfg.Sysroot, cfg.Stateroot)}
	err = ex.run(ctx, plan)
	var se *StepError
	if err != nil && errors.As(err, &se) && len(se.UndoErrs) > 0 {
		// What is left is recorded: the next run finishes the undo.
		return res, err
	}
	// Done, or wholly undone: nothing is left to recover.
	if rerr := ex.journal.remove(); rerr != nil && err == nil {
		err = fmt.Errorf("removing the deploy journal: %w", rerr)
	}
	if err != nil {
		return res, err
	}
	res.Deployment, res.Checksum, res.BootEntry = ex.vars["deployment"], ex.vars["checksum"], ex.vars["boot-entry"]
	return res, nil
}

// beforePull keeps the problems a seed's labels are enough to find. The
// others need the image's content (its size, kernel, bootc), or wait for
// the recovery of a killed run (an existing stateroot may be its leftover).
func beforePull(problems []Problem) []Problem {
	var out []Problem
	for _, p := range problems {
		switch p.Check {
		case CheckSysroot, CheckBooted, CheckArchitecture, CheckCompatibility:
			out = append(out, p)
		}
	}
	return out
}
