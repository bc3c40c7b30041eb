package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/seedbuild/seedbuild/frontend"
	"github.com/seedbuild/seedbuild/seedimage"
	"github.com/spf13/cobra"
)

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
