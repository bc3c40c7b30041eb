package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/seedbuild/seedbuild/builder"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/spf13/cobra"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

type createOptions struct {
	registryFlags
	rootfs, base, layout, clusterInfo, compression, ostreeRef, containersList string
	tags, outputs, excludes, kargs                                            []string
	timestamp                                                                 int64
	allowCredentials, allowRunning, quiet                                     bool
	out                                                                       formatFlags
}

// Validate checks the flags on their face.
func (o *createOptions) Validate(cmd *cobra.Command) error {
	if len(o.tags) == 0 && len(o.outputs) == 0 {
		return usagef("give at least one --tag or --output")
	}
	if _, err := labels.ParseKind(o.layout); err != nil {
		return usageError{err}
	}
	if _, err := builder.ParseCompression(o.compression); err != nil {
		return usageError{err}
	}
	if err := o.out.parse(); err != nil {
		return err
	}
	if cmd.Flags().Changed("timestamp") && o.timestamp < 0 {
		return usagef("invalid --timestamp %d: want seconds since the epoch", o.timestamp)
	}
	return nil
}

func newCreateCmd(g *globalOptions) *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Capture a node's state from a host root into a seed image",
		Long: `Captures a node's state from a host root (a live /, or any folder laid out
like one) and commits it as a seed image.

The native layout (default, format 5) adds three layers on top of the node's
OS image: /var as the image's /var, the node's /etc changes as real files
under /usr/lib/openshift/seed/etc with an etc.deletions list, and the seed's
metadata, kernel arguments (/usr/lib/bootc/kargs.d) and a first-boot unit that
applies the /etc state. The image's own /etc stays the base's.

The bootc-tarball and classic layouts write what the upstream lifecycle agent
writes (format 4), for agents that only know those.

The base image defaults to spec.osImageURL of
ROOTFS/etc/machine-config-daemon/currentconfig.`,
		Example: `  seedbuild create --rootfs /var/tmp/root --base localhost/rhcos:4.20 --tag localhost/seed:4.20
  seedbuild create --timestamp 1700000000 --output oci-archive:/var/tmp/seed.tar
  seedbuild create --layout classic --output docker://registry.example.com/seeds/sno:4.20`,
		Args: noArgs("name the root with --rootfs DIR"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			opts, err := o.builderOptions(cmd, g)
			if err != nil {
				return err
			}
			report, err := builder.Create(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if o.out.structured() {
				return o.out.write(g.stdout, report)
			}
			fmt.Fprintf(g.stdout, "%s\n", report.ManifestDigest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.rootfs, "rootfs", "/", "host root to capture (default the node's /, or --host-root)")
	f.StringVar(&o.base, "base", "", "OS image to build on (default: spec.osImageURL of the root's MachineConfig)")
	f.StringVar(&o.layout, "layout", labels.Native.String(), "seed layout: native, bootc-tarball or classic")
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name to commit the seed under in local containers-storage (repeatable)")
	f.StringArrayVarP(&o.outputs, "output", "o", nil, "destination to write or push the seed to: docker://, oci-archive:, oci:, dir: (repeatable)")
	f.StringArrayVar(&o.excludes, "exclude", nil, "tar-style pattern of root paths to leave out, such as 'var/lib/foo/*' (repeatable)")
	f.StringVar(&o.clusterInfo, "cluster-info", "", "JSON file with the seed cluster's facts (default: what the root tells)")
	f.StringVar(&o.ostreeRef, "ostree-ref", "", "classic layout: the ref whose commit the seed carries, when the root has no rpm-ostree.json and several refs")
	f.StringVar(&o.containersList, "containers-list", "", "file with the images the target should pre-pull, one a line (default: read from the root's container store)")
	f.StringArrayVar(&o.kargs, "karg", nil, "kernel argument to add after the MachineConfig ones (repeatable)")
	f.Int64Var(&o.timestamp, "timestamp", 0, "clamp mtimes to and date the image at these seconds since the epoch, for reproducible seeds (default $SOURCE_DATE_EPOCH)")
	f.StringVar(&o.compression, "compression", string(builder.Gzip), "layer compression: gzip or zstd")
	f.BoolVar(&o.allowCredentials, "allow-credentials", false, "capture registry credentials found in the root")
	f.BoolVar(&o.allowRunning, "allow-running", false, "capture a live / while kubelet or crio run")
	o.out.add(cmd, "a build report")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	o.registryFlags.add(cmd)
	return cmd
}

func (o *createOptions) builderOptions(cmd *cobra.Command, g *globalOptions) (builder.Options, error) {
	layout, _ := labels.ParseKind(o.layout)
	comp, _ := builder.ParseCompression(o.compression)
	sys, err := o.options(cmd).SystemContext()
	if err != nil {
		return builder.Options{}, err
	}
	pc, err := imageref.PolicyContext(sys)
	if err != nil {
		return builder.Options{}, err
	}
	opts := builder.Options{
		Rootfs: o.rootfs, Layout: layout, OstreeRef: o.ostreeRef, Excludes: o.excludes, Kargs: o.kargs, Compression: comp,
		AllowCredentials: o.allowCredentials, AllowRunning: o.allowRunning, SystemContext: sys, Policy: pc,
		Progress: g.stderr, TempDir: os.Getenv("TMPDIR"), Retry: o.retries(), Host: g.host,
	}
	if !cmd.Flags().Changed("rootfs") {
		opts.Rootfs = g.host.Root()
	}
	if opts.TempDir != "" {
		sys.BigFilesTemporaryDir = opts.TempDir
	}
	if o.quiet {
		opts.Progress = nil
	}
	if opts.Timestamp, err = timestamp(cmd, o.timestamp); err != nil {
		return opts, err
	}
	opts.ContainersListFile = o.containersList
	if o.clusterInfo != "" {
		data, err := os.ReadFile(o.clusterInfo)
		if err != nil {
			return opts, fmt.Errorf("reading cluster info %q: %w", o.clusterInfo, err)
		}
		info, err := labels.ParseClusterInfo(data)
		if err != nil {
			return opts, fmt.Errorf("reading cluster info %q: %w", o.clusterInfo, err)
		}
		opts.ClusterInfo = &info
	}
	if opts.Destinations, err = o.destinations(g); err != nil {
		return opts, err
	}
	if len(o.tags) > 0 {
		if opts.Store, err = g.openStore(); err != nil {
			return opts, err
		}
	}
	opts.ParseImage = g.parseImage
	if o.base != "" && layout != labels.Classic {
		if opts.Base, err = g.parseImage(o.base); err != nil {
			return opts, err
		}
	}
	if g.store != nil {
		opts.ExcludePaths = []string{g.store.GraphRoot(), g.store.RunRoot()}
	}
	return opts, nil
}

func (o *createOptions) destinations(g *globalOptions) ([]types.ImageReference, error) {
	var refs []types.ImageReference
	for _, t := range o.tags {
		store, err := g.openStore()
		if err != nil {
			return nil, err
		}
		ref, err := istorage.Transport.ParseStoreReference(store, localName(t))
		if err != nil {
			return nil, usagef("invalid --tag %q: %v", t, err)
		}
		refs = append(refs, ref)
	}
	for _, out := range o.outputs {
		if !imageref.HasTransport(out) {
			return nil, usagef("invalid --output %q: want TRANSPORT:NAME, such as oci-archive:/var/tmp/seed.tar or docker://registry/seed:tag", out)
		}
		ref, err := g.parseImage(out)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// localName gives a short name the localhost/ domain, as podman does for
// images it builds.
func localName(name string) string {
	first, _, found := strings.Cut(name, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return name
	}
	return "localhost/" + name
}
