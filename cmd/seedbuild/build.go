package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/seedbuild/seedbuild/frontend"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/copy"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

type buildOptions struct {
	registryFlags
	file, output, pull, isolation        string
	tags, buildArgs, labels, annotations []string
	timestamp                            int64
	layers, noCache, noLint              bool
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
			if err := o.validate(); err != nil {
				return err
			}
			bo, sys, err := o.buildOptions(cmd, args[0], g)
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
	f.StringArrayVar(&o.annotations, "annotation", nil, "manifest annotation KEY=VALUE to add, such as org.opencontainers.image.source=URL (repeatable)")
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

// validate checks the flags on their face, before anything is read.
func (o *buildOptions) validate() error {
	if _, err := frontend.ParsePull(o.pull); err != nil {
		return usageError{err}
	}
	if _, err := frontend.ParseIsolation(o.isolation); err != nil {
		return usageError{err}
	}
	if o.output != "" && !imageref.HasTransport(o.output) {
		return usagef("invalid --output %q: want TRANSPORT:NAME, such as oci-archive:/var/tmp/image.tar", o.output)
	}
	for flag, kvs := range map[string][]string{"--label": o.labels, "--annotation": o.annotations} {
		for _, kv := range kvs {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return usagef("invalid %s %q: want KEY=VALUE", flag, kv)
			}
		}
	}
	return nil
}

// buildOptions turns the flags into frontend's options; a build argument
// given as KEY alone takes KEY's value from the environment, as buildah's.
func (o *buildOptions) buildOptions(cmd *cobra.Command, contextDir string, g *globalOptions) (frontend.BuildOptions, *types.SystemContext, error) {
	ts, err := timestamp(cmd, o.timestamp)
	if err != nil {
		return frontend.BuildOptions{}, nil, err
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
		return frontend.BuildOptions{}, nil, err
	}
	return frontend.BuildOptions{ContextDir: contextDir, File: o.file, Tags: o.tags, Args: bargs, Labels: o.labels, Annotations: o.annotations,
		Layers: o.layers, NoCache: o.noCache, Pull: o.pull, Isolation: o.isolation, SystemContext: sys, Timestamp: ts,
		Out: g.stderr, Err: g.stderr}, sys, nil
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
