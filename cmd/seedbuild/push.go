package main

import (
	"fmt"
	"io"
	"os"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/manifest"
)

type pushOptions struct {
	registryFlags
	quiet      bool
	digestFile string
}

func newPushCmd(g *globalOptions) *cobra.Command {
	o := &pushOptions{}
	cmd := &cobra.Command{
		Use:   "push IMAGE DESTINATION",
		Short: "Push or export a local image, such as a seed, to a registry or an archive",
		Long: `Copies IMAGE (local storage, or any transport) to DESTINATION, as podman push
does. DESTINATION is any transport (docker://, oci-archive:, oci:, dir:); a
bare name means docker://NAME. Layers are copied as they are, so a seed's
digests do not change.`,
		Example: `  seedbuild push localhost/seed:4.20 docker://registry.example.com/seeds/sno:4.20
  seedbuild push localhost/seed:4.20 oci-archive:/var/tmp/seed.tar`,
		Args:              exactArgs(2, "IMAGE and DESTINATION"),
		ValidArgsFunction: completeLocalImages(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := g.parseImage(args[0])
			if err != nil {
				return err
			}
			dst, err := g.parseImage(args[1])
			if err != nil {
				return err
			}
			sys, err := o.options(cmd).SystemContext()
			if err != nil {
				return err
			}
			pc, err := imageref.PolicyContext(sys)
			if err != nil {
				return err
			}
			var report io.Writer = g.stderr
			if o.quiet {
				report = nil
			}
			written, err := imageref.CopyImage(cmd.Context(), pc, dst, src, &copy.Options{SourceCtx: sys, DestinationCtx: sys, ReportWriter: report}, o.retries())
			if err != nil {
				return fmt.Errorf("pushing %q to %q: %w", args[0], args[1], err)
			}
			if o.digestFile == "" {
				return nil
			}
			digest, err := manifest.Digest(written)
			if err != nil {
				return fmt.Errorf("digesting the manifest pushed to %q: %w", args[1], err)
			}
			if err := os.WriteFile(o.digestFile, []byte(digest.String()), 0o644); err != nil {
				return fmt.Errorf("writing the digest file: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	cmd.Flags().StringVar(&o.digestFile, "digestfile", "", "write the digest of the pushed manifest to this file, as podman push does")
	o.registryFlags.add(cmd)
	return cmd
}
