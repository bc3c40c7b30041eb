package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/seedbuild/seedbuild/deployer"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/precache"
	"github.com/spf13/cobra"
)

type deployOptions struct {
	registryFlags
	stateroot, sysroot, method, podmanURL, facts string
	kargs                                        []string
	notAsDefault, dryRun, asJSON, force, quiet   bool
	noIBUKarg, allowXattrLoss, keepImage         bool
	// precache pulls the seed's workload images first (pc says how).
	precache bool
	pc       precacheFlags
}

// Validate checks the flags on their face.
func (o *deployOptions) Validate() error {
	if o.stateroot == "" {
		return usagef("--stateroot is required")
	}
	if err := deployer.ValidateStateroot(o.stateroot); err != nil {
		return usageError{err}
	}
	if _, err := deployer.ParseMethod(o.method); err != nil {
		return usageError{err}
	}
	return o.pc.validate("precache-")
}

func newDeployCmd(g *globalOptions) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy IMAGE --stateroot NAME",
		Short: "Install a seed into a new ostree stateroot",
		Long: `Installs a seed image into a new ostree stateroot, next to the running one.

It reads the seed's labels, gathers facts about the sysroot read-only, checks
everything at once (and lists every problem), plans the steps, and carries
them out. If a step fails, what this run made is undone.

Methods (--method auto picks the first that can run):
  bootc       bootc install to-existing-root --stateroot, in a privileged
              container from the seed, through the podman service
  ostree-ext  ostree container image deploy
  ostree      plain libostree: commit the image's root, os-init, deploy
Classic (FROM scratch) seeds are deployed from their ostree.tgz, as the
upstream agent does.

bootc and ostree-ext read the seed from local containers-storage. A seed
that is not there is pulled into it, and what the pull did is taken back
when the deploy is over: the image deleted, or only the name it gave
taken off an image that was there or has been named since (--keep-image
keeps it). The ostree method unpacks the layers straight onto the
sysroot, and leaves nothing in containers-storage.

For native seeds every method ends by laying the seed's /etc state into the
new deployment's /etc, so its /usr/etc stays the OS image's.`,
		Example: `  seedbuild deploy localhost/seed:4.20 --stateroot rhcos-4.20 --dry-run
  seedbuild deploy oci-archive:/var/tmp/seed.tar --stateroot seed --sysroot /var/tmp/sysroot --method ostree`,
		Args:              exactArgs(1, "IMAGE"),
		ValidArgsFunction: completeLocalImages(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			cfg, err := o.config(cmd, g, args[0])
			if err != nil {
				return err
			}
			if err := o.precacheFirst(cmd, g, args[0], cfg.Log); err != nil {
				return err
			}
			res, err := deployer.Deploy(cmd.Context(), cfg)
			var pe *deployer.PreflightError
			if o.asJSON && errors.As(err, &pe) {
				if jerr := writeJSON(g.stdout, map[string][]deployer.Problem{"problems": pe.Problems}); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				return err
			}
			return o.print(g.stdout, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.stateroot, "stateroot", "", "name of the new stateroot ([A-Za-z0-9_.-], 1 to 64)")
	f.StringVar(&o.sysroot, "sysroot", "/", "ostree sysroot to deploy into")
	f.StringVar(&o.method, "method", string(deployer.Auto), "auto, bootc, ostree-ext or ostree")
	f.StringArrayVar(&o.kargs, "karg", nil, "kernel argument to add (repeatable)")
	f.BoolVar(&o.notAsDefault, "not-as-default", false, "keep the current default deployment")
	f.StringVar(&o.podmanURL, "podman-url", deployer.DefaultPodmanURL, "podman service for the bootc method")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	f.BoolVar(&o.asJSON, "json", false, "print the result (or the plan) as JSON")
	f.BoolVar(&o.force, "force", false, "replace an existing, non-booted stateroot")
	f.StringVar(&o.facts, "facts", "", "target facts JSON (seedbuild facts --json); refuse an incompatible seed")
	f.BoolVar(&o.noIBUKarg, "no-ibu-karg", false, "leave out the ibu=<seed OCP version> kernel argument")
	f.BoolVar(&o.allowXattrLoss, "allow-xattr-loss", false, "go on, with a warning, when the sysroot refuses an xattr (an SELinux label) of the seed's /var or /etc; by default the deploy fails and names the path")
	f.BoolVar(&o.keepImage, "keep-image", false, "keep the seed in local containers-storage after a bootc or ostree-ext deploy that pulled it there; by default it is taken out again")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.precache, "precache", false, "first pull the seed's workload images into the node's store, as 'seedbuild precache' does (the --precache-* flags are its flags); a failed precache deploys nothing")
	o.pc.add(cmd, "precache-")
	o.registryFlags.add(cmd)
	return cmd
}

// precacheFirst runs precache before the stateroot is made, with --precache:
// a failure stops the deploy before it changes anything.
func (o *deployOptions) precacheFirst(cmd *cobra.Command, g *globalOptions, seed string, log io.Writer) error {
	if !o.precache || o.dryRun {
		return nil
	}
	_, err := o.pc.run(cmd.Context(), cmd, g, &o.registryFlags, seed, log)
	var failed *precache.FailedError
	if errors.As(err, &failed) && o.pc.bestEffort {
		fmt.Fprintf(log, "Warning: %v\n", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("precaching the seed's images (nothing was deployed): %w", err)
	}
	return nil
}

func (o *deployOptions) config(cmd *cobra.Command, g *globalOptions, image string) (deployer.Config, error) {
	method, _ := deployer.ParseMethod(o.method)
	// Left unset, the sysroot and the podman service are the host's.
	if !cmd.Flags().Changed("sysroot") {
		o.sysroot = ""
	}
	if !cmd.Flags().Changed("podman-url") {
		o.podmanURL = ""
	}
	cfg := deployer.Config{
		Options: deployer.Options{Stateroot: o.stateroot, Sysroot: o.sysroot, Method: method, Kargs: o.kargs,
			NotAsDefault: o.notAsDefault, Force: o.force, NoIBUKarg: o.noIBUKarg, AllowXattrLoss: o.allowXattrLoss},
		PodmanURL: o.podmanURL, DryRun: o.dryRun, KeepImage: o.keepImage, Retry: o.retries(), TempDir: os.Getenv("TMPDIR"), Log: g.stderr,
		Host: g.host,
	}
	if o.quiet {
		cfg.Log = io.Discard
	} else if !o.asJSON || !o.dryRun {
		cfg.Events = textEvents(g.stderr)
	}
	store, err := g.openStore()
	if err != nil {
		return cfg, err
	}
	cfg.Store = store
	if cfg.Image, err = g.parseImage(image); err != nil {
		return cfg, err
	}
	if cfg.SystemContext, err = o.options(cmd).SystemContext(); err != nil {
		return cfg, err
	}
	if cfg.Policy, err = imageref.PolicyContext(cfg.SystemContext); err != nil {
		return cfg, err
	}
	if o.facts != "" {
		t, err := readFacts(o.facts)
		if err != nil {
			return cfg, err
		}
		cfg.Target = &t
	}
	return cfg, nil
}

func readFacts(path string) (labels.Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return labels.Target{}, fmt.Errorf("reading facts %q: %w", path, err)
	}
	t, err := labels.ParseTarget(data)
	if err != nil {
		return t, fmt.Errorf("parsing facts %q: %w", path, err)
	}
	return t, nil
}

func textEvents(w io.Writer) func(deployer.Event) {
	return func(e deployer.Event) {
		switch e.Type {
		case deployer.EventStep:
			fmt.Fprintf(w, "[%d/%d] %s\n", e.Index, e.Total, e.Desc)
		case deployer.EventDone:
			if e.Seconds >= 1 {
				fmt.Fprintf(w, "[%d/%d] done in %.1fs\n", e.Index, e.Total, e.Seconds)
			}
		case deployer.EventFailed:
			fmt.Fprintf(w, "[%d/%d] failed: %s\n", e.Index, e.Total, e.Error)
		case deployer.EventInfo, deployer.EventRecovered:
			fmt.Fprintln(w, e.Desc)
		case deployer.EventUndo:
			fmt.Fprintf(w, "undo: %s\n", e.Desc)
		}
	}
}

func (o *deployOptions) print(w io.Writer, res *deployer.Result) error {
	if o.asJSON {
		// A dry run's result is the plan with the facts it was made from.
		return writeJSON(w, res)
	}
	if o.dryRun {
		printPlan(w, res.Plan)
		return nil
	}
	fmt.Fprintf(w, "Deployed %s seed into stateroot %s\n  deployment: %s\n  checksum:   %s\n", res.Kind, o.stateroot, res.Deployment, res.Checksum)
	if res.BootEntry != "" {
		fmt.Fprintf(w, "  boot entry: %s\n", res.BootEntry)
	}
	if res.Staged {
		fmt.Fprintf(w, "  staged: ostree writes its boot entry at the next shutdown (ostree-finalize-staged)\n")
	}
	return nil
}

func printPlan(w io.Writer, p deployer.Plan) {
	fmt.Fprintf(w, "Method: %s (%s)\nStateroot: %s\nSysroot: %s\nKernel arguments: %s\n", p.Method, p.Reason, p.Stateroot, p.Sysroot, strings.Join(p.Kargs, " "))
	for i, s := range p.Steps {
		fmt.Fprintf(w, "%2d. %s\n", i+1, s.Desc)
		if len(s.Argv) > 0 {
			fmt.Fprintf(w, "      $ %s\n", strings.Join(s.Argv, " "))
		}
		if s.Action != "" {
			fmt.Fprintf(w, "      action %s%s\n", s.Action, formatArgs(s.Args))
		}
		if s.Undo != nil {
			fmt.Fprintf(w, "      undo: %s\n", s.Undo.Desc)
		}
	}
}

func formatArgs(args map[string]string) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, args[k])
	}
	return b.String()
}
