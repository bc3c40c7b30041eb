package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/frontend"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/localimage"
	"github.com/seedbuild/seedbuild/seedimage"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/copy"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

// labelReader reads base image labels for lint, locally or from a
// registry, giving up after a while.
func labelReader(g *globalOptions, sys *types.SystemContext) frontend.LabelReader {
	return func(ctx context.Context, name string) (map[string]string, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		ref, err := g.parseImage(name)
		if err != nil {
			return nil, err
		}
		d, err := seedimage.Read(ctx, ref, sys)
		if d == nil {
			return nil, err
		}
		return d.Labels, nil
	}
}

type lintOptions struct {
	registryFlags
	file, image    string
	asJSON, strict bool
}

func newLintCmd(g *globalOptions) *cobra.Command {
	o := &lintOptions{}
	cmd := &cobra.Command{
		Use:   "lint [-f FILE | --image IMAGE]",
		Short: "Check a Containerfile or an image against the seed and bootc rules",
		Long: `Checks a Containerfile (default: ./Containerfile, else ./Dockerfile) or, with
--image, an image's root filesystem, against the seed and bootc rules. Each
finding has a rule ID, a severity, file:line, a message and a fix hint.

Exits 1 when there are errors, or with --strict any finding at all.`,
		Example: `  seedbuild lint -f Containerfile
  seedbuild lint --image localhost/seed:4.20 --json`,
		Args: noArgs("name the file with -f FILE or the image with --image IMAGE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := o.options(cmd).SystemContext()
			if err != nil {
				return err
			}
			var findings []frontend.Finding
			if o.image != "" {
				findings, err = lintImage(cmd.Context(), g, o.image, sys)
			} else {
				findings, err = lintFile(cmd.Context(), g, o.file, sys)
			}
			if err != nil {
				return err
			}
			if err := printFindings(g.stdout, findings, o.asJSON); err != nil {
				return err
			}
			if frontend.HasErrors(findings, o.strict) {
				return exitError{code: exitFailure, err: fmt.Errorf("lint found %d problem(s)", len(findings))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "Containerfile to check (default ./Containerfile, else ./Dockerfile)")
	f.StringVar(&o.image, "image", "", "image to check instead of a Containerfile")
	f.BoolVar(&o.asJSON, "json", false, "print findings as JSON")
	f.BoolVar(&o.strict, "strict", false, "fail on warnings too")
	cmd.MarkFlagsMutuallyExclusive("file", "image")
	cmd.RegisterFlagCompletionFunc("image", completeLocalImages(g))
	o.registryFlags.add(cmd)
	return cmd
}

func lintFile(ctx context.Context, g *globalOptions, file string, sys *types.SystemContext) ([]frontend.Finding, error) {
	path, err := frontend.FindContainerfile(".", file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", path, err)
	}
	return frontend.LintContainerfile(ctx, path, data, frontend.LintOptions{
		ContextDir: filepath.Dir(path), Labels: labelReader(g, sys),
	}), nil
}

func lintImage(ctx context.Context, g *globalOptions, name string, sys *types.SystemContext) ([]frontend.Finding, error) {
	store, err := g.openStore()
	if err != nil {
		return nil, err
	}
	ref, err := g.parseImage(name)
	if err != nil {
		return nil, err
	}
	d, err := seedimage.Read(ctx, ref, sys)
	if d == nil {
		return nil, fmt.Errorf("reading %q: %w", name, err)
	}
	pc, err := imageref.PolicyContext(sys)
	if err != nil {
		return nil, err
	}
	_, id, err := localimage.Ensure(ctx, store, ref, d, sys, pc, imageref.Retry{Count: 3}, g.stderr)
	if err != nil {
		return nil, err
	}
	mnt, err := localimage.Mount(store, id)
	if err != nil {
		return nil, err
	}
	defer mnt.Release()
	return frontend.LintImage(mnt.Path, name), nil
}

func printFindings(w io.Writer, findings []frontend.Finding, asJSON bool) error {
	if asJSON {
		if findings == nil {
			findings = []frontend.Finding{}
		}
		return writeJSON(w, findings)
	}
	for _, f := range findings {
		fmt.Fprintln(w, f.String())
	}
	return nil
}

type buildOptions struct {
	registryFlags
	file, output, pull, isolation string
	tags, buildArgs, labels       []string
	timestamp                     int64
	layers, noCache, noLint       bool
}

func newBuildCmd(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build a Containerfile with the embedded buildah",
		Long: `Builds a Containerfile (default CONTEXT/Containerfile, else CONTEXT/Dockerfile)
with buildah's imagebuildah, embedded: no podman or buildah needed. It honours
.containerignore and .dockerignore, runs RUN steps with chroot isolation by
default, and lints the Containerfile first (stopping on errors) unless
--no-lint. Prints the image ID.`,
		Example: `  seedbuild build -t localhost/configured-seed:4.20 ./configured-seed
  seedbuild build --timestamp 1700000000 -o oci-archive:/var/tmp/cs.tar .`,
		Args: exactArgs(1, "CONTEXT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := frontend.ParsePull(o.pull); err != nil {
				return usageError{err}
			}
			if _, err := frontend.ParseIsolation(o.isolation); err != nil {
				return usageError{err}
			}
			if o.output != "" && !imageref.HasTransport(o.output) {
				return usagef("invalid --output %q: want TRANSPORT:NAME, such as oci-archive:/var/tmp/image.tar", o.output)
			}
			ts, err := timestamp(cmd, o.timestamp)
			if err != nil {
				return err
			}
			bargs := map[string]string{}
			for _, a := range o.buildArgs {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					v = os.Getenv(k)
				}
				bargs[k] = v
			}
			sys, err := o.options(cmd).SystemContext()
			if err != nil {
				return err
			}
			if !o.noLint {
				if err := o.lint(cmd.Context(), g, args[0], sys); err != nil {
					return err
				}
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			bo := frontend.BuildOptions{ContextDir: args[0], File: o.file, Tags: o.tags, Args: bargs, Labels: o.labels,
				Layers: o.layers, NoCache: o.noCache, Pull: o.pull, Isolation: o.isolation, SystemContext: sys, Out: g.stderr, Err: g.stderr}
			bo.Timestamp = ts
			id, err := frontend.Build(cmd.Context(), store, bo)
			if err != nil {
				return err
			}
			if o.output != "" {
				if err := pushLocal(cmd.Context(), g, id, o.output, sys, o.retries()); err != nil {
					return err
				}
			}
			fmt.Fprintln(g.stdout, id)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "Containerfile to build (default CONTEXT/Containerfile, else CONTEXT/Dockerfile)")
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name of the image in local storage (repeatable)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build argument KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.labels, "label", nil, "label KEY=VALUE to add (repeatable)")
	f.Int64Var(&o.timestamp, "timestamp", 0, "date the image and its layers at these seconds since the epoch, for reproducible builds (default $SOURCE_DATE_EPOCH)")
	f.BoolVar(&o.layers, "layers", false, "cache intermediate images")
	f.BoolVar(&o.noCache, "no-cache", false, "do not use cached intermediate images")
	f.StringVar(&o.pull, "pull", "missing", "pull policy: always, missing, never or newer")
	f.StringVar(&o.isolation, "isolation", "chroot", "RUN isolation: chroot or oci")
	f.StringVarP(&o.output, "output", "o", "", "also write or push the image to this destination (docker://, oci-archive:, oci:, dir:)")
	f.BoolVar(&o.noLint, "no-lint", false, "skip the lint that runs first")
	o.registryFlags.add(cmd)
	return cmd
}

func (o *buildOptions) lint(ctx context.Context, g *globalOptions, contextDir string, sys *types.SystemContext) error {
	path, err := frontend.FindContainerfile(contextDir, o.file)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %q: %w", path, err)
	}
	findings := frontend.LintContainerfile(ctx, path, data, frontend.LintOptions{ContextDir: contextDir, Labels: labelReader(g, sys)})
	for _, f := range findings {
		fmt.Fprintln(g.stderr, f.String())
	}
	if frontend.HasErrors(findings, false) {
		return fmt.Errorf("lint found errors in %q: fix them or pass --no-lint", path)
	}
	return nil
}

// pushLocal writes the local image id to dest.
func pushLocal(ctx context.Context, g *globalOptions, id, dest string, sys *types.SystemContext, r imageref.Retry) error {
	if !imageref.HasTransport(dest) {
		return usagef("invalid --output %q: want TRANSPORT:NAME", dest)
	}
	store, err := g.openStore()
	if err != nil {
		return err
	}
	src, err := istorage.Transport.ParseStoreReference(store, "@"+id)
	if err != nil {
		return err
	}
	dst, err := g.parseImage(dest)
	if err != nil {
		return err
	}
	pc, err := imageref.PolicyContext(sys)
	if err != nil {
		return err
	}
	if _, err := imageref.CopyImage(ctx, pc, dst, src, &copy.Options{DestinationCtx: sys}, r); err != nil {
		return fmt.Errorf("writing the image to %q: %w", dest, err)
	}
	return nil
}

type containerfileOptions struct {
	registryFlags
	seed, clusterConfig, extraManifests, out string
	asJSON                                   bool
}

func newContainerfileCmd(g *globalOptions) *cobra.Command {
	o := &containerfileOptions{}
	cmd := &cobra.Command{
		Use:   "containerfile --seed IMAGE --cluster-config FILE",
		Short: "Write the Containerfile and build context of a configured seed",
		Long: `Writes a build context whose Containerfile turns a seed into a configured
seed: FROM the seed, with the cluster configuration JSON at
/usr/opt/openshift/cluster-configuration/manifest.json, extra manifests in
manifests/ beside it, and a tmpfiles.d rule in /usr/lib/tmpfiles.d that links
it under /var/opt/openshift/cluster-configuration. Nothing goes into the
image's /etc, except for bootc-tarball seeds, where it adds the untar steps of
etc.tgz and var.tgz onto / that the installer writes (those seeds have no
other way to carry /etc). Build the result with seedbuild build (or buildah
bud).`,
		Example: `  seedbuild containerfile --seed localhost/seed:4.20 --cluster-config cluster.json -o configured-seed
  seedbuild build -t localhost/configured-seed:4.20 configured-seed`,
		Args: noArgs("name the seed with --seed IMAGE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.seed == "" || o.clusterConfig == "" {
				return usagef("--seed and --cluster-config are required")
			}
			cfg, err := os.ReadFile(o.clusterConfig)
			if err != nil {
				return fmt.Errorf("reading cluster configuration %q: %w", o.clusterConfig, err)
			}
			sys, err := o.options(cmd).SystemContext()
			if err != nil {
				return err
			}
			ref, err := g.parseImage(o.seed)
			if err != nil {
				return err
			}
			d, err := seedimage.Read(cmd.Context(), ref, sys)
			if err != nil {
				if d != nil {
					return fmt.Errorf("%s is not a usable seed: %w", o.seed, err)
				}
				return fmt.Errorf("reading seed %q: %w", o.seed, err)
			}
			warnings, err := frontend.WriteContext(o.out, frontend.ConfiguredSeed{
				Seed: strings.TrimPrefix(o.seed, "docker://"), Kind: d.Seed.Kind(), ClusterConfig: cfg, ExtraManifests: o.extraManifests,
			})
			if err != nil {
				return fmt.Errorf("writing the configured seed context %q: %w", o.out, err)
			}
			for _, w := range warnings {
				fmt.Fprintln(g.stderr, "Warning: "+w)
			}
			file := filepath.Join(o.out, "Containerfile")
			if o.asJSON {
				abs, err := filepath.Abs(o.out)
				if err != nil {
					return err
				}
				return writeJSON(g.stdout, struct {
					Context       string   `json:"context"`
					Containerfile string   `json:"containerfile"`
					SeedKind      string   `json:"seed_kind"`
					Warnings      []string `json:"warnings"`
				}{abs, filepath.Join(abs, "Containerfile"), d.Kind, append([]string{}, warnings...)})
			}
			fmt.Fprintf(g.stdout, "%s\n", file)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.seed, "seed", "", "seed image to configure (any transport)")
	cmd.RegisterFlagCompletionFunc("seed", completeLocalImages(g))
	f.StringVar(&o.clusterConfig, "cluster-config", "", "cluster configuration JSON file")
	f.StringVar(&o.extraManifests, "extra-manifests", "", "folder of extra manifests to add")
	f.StringVarP(&o.out, "output", "o", "configured-seed", "folder to write the build context into, relative to the current folder (must not exist or be empty)")
	f.BoolVar(&o.asJSON, "json", false, "print the context, its Containerfile, the seed kind and any warnings as JSON")
	o.registryFlags.add(cmd)
	return cmd
}
