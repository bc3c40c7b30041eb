package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/precache"
	"github.com/seedbuild/seedbuild/seedimage"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/types"
)

// nodeAuthFile is where an OpenShift node keeps the cluster's pull secret;
// the agent's precache pulls with it.
const nodeAuthFile = "/var/lib/kubelet/config.json"

// precacheFlags are precache's flags, which deploy --precache shares.
type precacheFlags struct {
	containersList string
	jobs, tries    int
	bestEffort     bool
	overrides      []string
	priority       string
	// prio is priority, parsed by validate.
	prio precache.Priority
}

func (p *precacheFlags) add(cmd *cobra.Command, prefix string) {
	f := cmd.Flags()
	f.StringVar(&p.containersList, prefix+"containers-list", "", "file with the images to pull, one a line (default: the seed's containers.list)")
	f.IntVar(&p.jobs, prefix+"jobs", 0, fmt.Sprintf("images pulled at once (default %d here: two per core, 4 to 10)", precache.DefaultJobs()))
	f.IntVar(&p.tries, prefix+"tries", 5, "tries per image before it fails; a \"manifest unknown\" is not tried again")
	f.BoolVar(&p.bestEffort, prefix+"best-effort", false, "go on after an image fails, and exit 0 if every other image is there")
	f.StringArrayVar(&p.overrides, prefix+"registry-override", nil, "pull images of registry FROM from registry TO instead, as FROM=TO (repeatable)")
	f.StringVar(&p.priority, prefix+"priority", "low", "CPU and I/O priority: low (nice 19, idle I/O), normal, or NICE[,CLASS[:LEVEL]]")
}

// validate checks the flags on their face.
func (p *precacheFlags) validate(prefix string) error {
	if p.jobs < 0 {
		return usagef("invalid --%sjobs %d: want 1 or more", prefix, p.jobs)
	}
	if p.tries < 1 {
		return usagef("invalid --%stries %d: want 1 or more", prefix, p.tries)
	}
	for _, o := range p.overrides {
		if from, to, ok := strings.Cut(o, "="); !ok || from == "" || to == "" {
			return usagef("invalid --%sregistry-override %q: want FROM=TO", prefix, o)
		}
	}
	prio, err := precache.ParsePriority(p.priority)
	if err != nil {
		return usageError{err}
	}
	p.prio = prio
	return nil
}

// rewrite is the registry overrides as precache.Options.Rewrite.
func (p *precacheFlags) rewrite() func(string) (string, error) {
	if len(p.overrides) == 0 {
		return nil
	}
	return func(name string) (string, error) {
		for _, o := range p.overrides {
			from, to, _ := strings.Cut(o, "=")
			if rest, ok := strings.CutPrefix(name, from+"/"); ok {
				return to + "/" + rest, nil
			}
		}
		return name, nil
	}
}

// run reads the list (the file, else the seed's) and pulls it into the
// store at the priority asked for.
func (p *precacheFlags) run(ctx context.Context, cmd *cobra.Command, g *globalOptions, rf *registryFlags, seed string, progress io.Writer) (*precache.Status, error) {
	store, err := g.openStore()
	if err != nil {
		return nil, err
	}
	ro := rf.options(cmd)
	if ro.AuthFile == "" && os.Getenv("REGISTRY_AUTH_FILE") == "" {
		if auth := g.host.Path(nodeAuthFile); fileExists(auth) {
			ro.AuthFile = auth
		}
	}
	sys, err := ro.SystemContext()
	if err != nil {
		return nil, err
	}
	policy, err := imageref.PolicyContext(sys)
	if err != nil {
		return nil, err
	}
	images, err := p.list(ctx, g, sys, seed)
	if err != nil {
		return nil, err
	}
	restore, err := p.prio.Apply()
	if err != nil {
		fmt.Fprintf(progress, "Warning: %v; pulling at the current priority\n", err)
	}
	defer restore()
	fmt.Fprintf(progress, "Precaching %d image(s) into %s\n", len(images), store.GraphRoot())
	return precache.Run(ctx, images, precache.Options{
		Store: store, SystemContext: sys, Policy: policy, Jobs: p.jobs, Tries: p.tries,
		BestEffort: p.bestEffort, Rewrite: p.rewrite(), TempDir: os.Getenv("TMPDIR"), Progress: progress,
		Events: func(st precache.ImageStatus) {
			if st.Status == precache.Skipped || st.Status == precache.Failed {
				fmt.Fprintf(progress, "%s %s: %s\n", strings.ToUpper(st.Status[:1])+st.Status[1:], st.Image, st.Reason)
			}
		},
	})
}

// list is the images to pull: the --containers-list file, else the
// seed's list, read without its big layers.
func (p *precacheFlags) list(ctx context.Context, g *globalOptions, sys *types.SystemContext, seed string) ([]string, error) {
	if p.containersList != "" {
		data, err := os.ReadFile(p.containersList)
		if err != nil {
			return nil, fmt.Errorf("reading the containers list: %w", err)
		}
		return seedimage.ParseContainersList(string(data)), nil
	}
	ref, err := g.parseImage(seed)
	if err != nil {
		return nil, err
	}
	d, err := seedimage.Read(ctx, ref, sys)
	if err != nil {
		return nil, err
	}
	images, found, err := seedimage.ContainersList(ctx, ref, sys, d)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s carries no %s: give the images with --containers-list FILE", seed, labels.ContainersListFile)
	}
	return images, nil
}

func newPrecacheCmd(g *globalOptions) *cobra.Command {
	var p precacheFlags
	var rf registryFlags
	var out formatFlags
	cmd := &cobra.Command{
		Use:   "precache [SEED]",
		Short: "Pull a seed's workload images into the node's container store",
		Long: `Pulls every image of a seed's containers.list (or of --containers-list FILE)
into the node's containers-storage, before the node reboots into the seed's
stateroot, so the new cluster finds its images there: as the upstream agent
precaches, but with containers/image in process, not podman.

Each blob is fetched once: images that share layers wait for the pull that
fetches a shared layer instead of fetching it too, and a layer already in
the store is not fetched. A list is resolved to this node's platform; an
image built for another architecture is skipped with a warning. A digest
reference is checked against what arrives. Before the first byte, the blobs
the store lacks are summed against its free space, and a run that cannot
fit is refused. An interrupted run leaves what it finished; the next one
fetches only the rest.

The list is read from the seed without fetching its big layers. Images are
pulled with the node's pull secret (` + nodeAuthFile + `) unless
--authfile or REGISTRY_AUTH_FILE says otherwise, through registries.conf
(mirrors honoured). It runs at a low CPU and I/O priority by default, as the
node is in production meanwhile.

Exit codes: 0 every image is in the store (pulled, already there, or
skipped for another architecture) or, with --best-effort, failed and said
so; 1 an image failed (without --best-effort the run stops at the first,
and what was pulled stays), the store lacks the room, or the list cannot
be read; 2 bad usage.`,
		Example: `  seedbuild precache docker://registry.example.com/seeds/sno:4.20
  seedbuild precache --containers-list containers.list --best-effort --json
  seedbuild deploy localhost/seed:4.20 --stateroot rhcos_4.20 --precache`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("precache takes one SEED at most, got %d", len(args))
			}
			if len(args) == 0 && p.containersList == "" {
				return usagef("name a SEED or give --containers-list FILE")
			}
			return nil
		},
		ValidArgsFunction: completeLocalImages(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.parse(); err != nil {
				return err
			}
			if err := p.validate(""); err != nil {
				return err
			}
			seed := ""
			if len(args) == 1 {
				seed = args[0]
			}
			st, err := p.run(cmd.Context(), cmd, g, &rf, seed, g.stderr)
			if st != nil && out.structured() {
				if werr := out.write(g.stdout, st); werr != nil {
					return werr
				}
			}
			var failed *precache.FailedError
			if errors.As(err, &failed) && p.bestEffort {
				fmt.Fprintf(g.stderr, "Warning: %v\n", err)
				err = nil
			}
			if err == nil && st != nil && !out.structured() {
				fmt.Fprintf(g.stdout, "Precached %d image(s): %d pulled, %d there already, %d skipped, %d failed; %d bytes fetched\n",
					st.Total, st.Pulled, st.Present, st.Skipped, st.Failed, st.Bytes)
			}
			return err
		},
	}
	p.add(cmd, "")
	rf.add(cmd)
	out.add(cmd, "the status: total, pulled, present, skipped, failed, and each image's")
	return cmd
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
