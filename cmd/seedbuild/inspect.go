package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/types"
)

type inspectOptions struct {
	registryFlags
	out     formatFlags
	against string
	list    bool
}

// listReport is inspect --containers-list: the seed's precache list.
type listReport struct {
	Image  string   `json:"image"`
	Found  bool     `json:"found"`
	Images []string `json:"images"`
	// ByTag are the images named by tag alone, without a digest.
	ByTag []string `json:"by_tag"`
}

func newInspectCmd(g *globalOptions) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show what a seed image's labels say, from any transport",
		Long: `Reads a seed image's manifest and config (never its layers) and prints its
kind, format version, OpenShift version, cluster name, base image, platform and
layers.

IMAGE is any containers/image transport: containers-storage:, docker://, oci:,
oci-archive:, dir:. A bare name means local storage when the image is there,
else the name resolved through registries.conf, as podman resolves it.

Exits 1 when the image is not a seed or cannot be read.`,
		Example: `  seedbuild inspect oci-archive:/var/tmp/seed.tar
  seedbuild inspect --json docker://registry.example.com/seeds/sno:4.20
  seedbuild inspect --format '{{.Digest}} {{.OCPVersion}}' localhost/seed:4.20`,
		Args:              exactArgs(1, "IMAGE"),
		ValidArgsFunction: completeLocalImages(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.out.parse(); err != nil {
				return err
			}
			d, ref, sys, err := readSeed(cmd, g, &o.registryFlags, args[0])
			if err != nil {
				return err
			}
			if o.against != "" {
				return o.checkAgainst(g, d)
			}
			if o.list {
				return o.containersList(cmd.Context(), g, ref, sys, d)
			}
			if o.out.structured() {
				return o.out.write(g.stdout, d)
			}
			printDescription(g.stdout, d)
			return nil
		},
	}
	o.registryFlags.add(cmd)
	o.out.add(cmd, "the description (or, with --against, the mismatches)")
	cmd.Flags().StringVar(&o.against, "against", "", "facts JSON of a target node (seedbuild facts --json): list every mismatch, exit 3 if any")
	cmd.Flags().BoolVar(&o.list, "containers-list", false, "show the seed's precache list (containers.list), its size and the images named by tag alone; reads the seed's metadata layer, not its big ones")
	cmd.MarkFlagsMutuallyExclusive("against", "containers-list")
	return cmd
}

// containersList prints the seed's precache list: its size and the
// images named by tag alone, which a precache may find moved.
func (o *inspectOptions) containersList(ctx context.Context, g *globalOptions, ref types.ImageReference, sys *types.SystemContext, d *seedimage.Description) error {
	images, found, err := seedimage.ContainersList(ctx, ref, sys, d)
	if err != nil {
		return err
	}
	rep := listReport{Image: d.Image, Found: found, Images: append([]string{}, images...), ByTag: seedimage.ByTag(images)}
	if o.out.structured() {
		return o.out.write(g.stdout, rep)
	}
	if !found {
		fmt.Fprintf(g.stdout, "%s carries no %s\n", d.Image, labels.ContainersListFile)
		return nil
	}
	fmt.Fprintf(g.stdout, "%s: %d image(s) to precache, %d named by tag alone\n", d.Image, len(images), len(rep.ByTag))
	for _, img := range images {
		note := ""
		if slices.Contains(rep.ByTag, img) {
			note = "  (by tag: it may have moved)"
		}
		fmt.Fprintf(g.stdout, "  %s%s\n", img, note)
	}
	return nil
}

// readSeed reads the labels of the seed image name, as inspect does, and
// returns them with the reference and system context it read them by.
func readSeed(cmd *cobra.Command, g *globalOptions, rf *registryFlags, name string) (*seedimage.Description, types.ImageReference, *types.SystemContext, error) {
	ref, err := g.parseImage(name)
	if err != nil {
		return nil, nil, nil, err
	}
	sys, err := rf.options(cmd).SystemContext()
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := seedimage.Read(cmd.Context(), ref, sys)
	if errors.Is(err, labels.ErrNotASeed) {
		return nil, nil, nil, fmt.Errorf("%s is not a seed: it has no %s label", name, labels.FormatVersionLabel)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspecting %q: %w", name, err)
	}
	return d, ref, sys, nil
}

// checkAgainst prints every mismatch between the seed and the target's
// facts, one a line, and exits 3 when there is any.
func (o *inspectOptions) checkAgainst(g *globalOptions, d *seedimage.Description) error {
	t, err := readFacts(o.against)
	if err != nil {
		return err
	}
	return reportMismatches(g, o.out, labels.CompatibleImage(d.Seed.ClusterInfo, d.Architecture, t), o.against, d.Image)
}

// reportMismatches prints every mismatch between the seed image and the
// target named target, one a line (or as JSON), and exits 3 when there is
// any.
func reportMismatches(g *globalOptions, out formatFlags, mismatches []labels.Mismatch, target, image string) error {
	if out.structured() {
		if mismatches == nil {
			mismatches = []labels.Mismatch{}
		}
		if err := out.write(g.stdout, mismatches); err != nil {
			return err
		}
	} else {
		for _, m := range mismatches {
			fmt.Fprintln(g.stdout, m.String())
		}
	}
	if len(mismatches) > 0 {
		return exitError{code: exitMismatch, err: fmt.Errorf("%s does not match %s: %d mismatch(es)", target, image, len(mismatches))}
	}
	if !out.structured() {
		fmt.Fprintf(g.stdout, "%s is compatible with %s\n", image, target)
	}
	return nil
}

func printDescription(w io.Writer, d *seedimage.Description) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, v)
	}
	row("Image", d.Image)
	row("Digest", d.Digest)
	row("Kind", d.Kind)
	row("Format version", fmt.Sprint(d.FormatVersion))
	row("OCP version", d.OCPVersion)
	row("Cluster name", d.ClusterName)
	row("Base image", d.Base.Name)
	row("Base digest", d.Base.Digest)
	row("Architecture", d.Architecture)
	row("Layers", fmt.Sprintf("%d, %s in all", d.LayerCount, units.BytesSize(float64(d.LayersSize))))
	for i, l := range d.Layers {
		row(fmt.Sprintf("  %d", i+1), fmt.Sprintf("%s  %s", units.BytesSize(float64(l.Size)), shortDigest(l.Digest)))
	}
	tw.Flush()
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}
