package main

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/seedbuild/seedbuild/deployer"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/spf13/cobra"
)

func newFactsCmd(g *globalOptions) *cobra.Command {
	var rootfs, ocpVersion, against string
	var out formatFlags
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "facts",
		Short: "Print what a target node can tell about itself, for compatibility checks",
		Long: `Prints the facts of a target node that a seed must match: FIPS, proxy, user CA
bundle, the container-storage mount target (What= of var-lib-containers.mount,
as the upstream agent reads it), architecture (of the running system for /,
else of the root's kernel), whether a mirror registry is configured
(registries.conf), the node's IPs (the kubelet's node IP drop-in), and the
OpenShift version the node runs now (running_ocp_version, from the
MachineConfig daemon's currentconfig: the seed's must be newer). What cannot
be read is left out and can be filled in by hand: ocp_version, the version
the node is to run (or --ocp-version), which must equal the seed's, and
machine_networks. Feed the JSON to 'inspect --against' or 'deploy --facts',
or check a seed here with --against IMAGE: every mismatch is listed, and
the exit code is 3 when there is any.`,
		Example: `  seedbuild facts --json > facts.json
  seedbuild inspect localhost/seed:4.20 --against facts.json
  seedbuild facts --ocp-version 4.20.0 --against docker://registry.example.com/seeds/sno:4.20`,
		Args: noArgs("name the root with --rootfs DIR"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.parse(); err != nil {
				return err
			}
			if !cmd.Flags().Changed("rootfs") {
				rootfs = g.host.Root()
			}
			t, err := deployer.ReadTarget(g.host, rootfs)
			if err != nil {
				return err
			}
			t.OCPVersion = ocpVersion
			if against != "" {
				d, _, _, err := readSeed(cmd, g, &rf, against)
				if err != nil {
					return err
				}
				return reportMismatches(g, out, labels.CompatibleImage(d.Seed.ClusterInfo, d.Architecture, t), "the facts of "+rootfs, d.Image)
			}
			if out.structured() {
				return out.write(g.stdout, t)
			}
			printTarget(g, t)
			return nil
		},
	}
	cmd.Flags().StringVar(&rootfs, "rootfs", "/", "root of the target node (default the node's /, or --host-root)")
	cmd.Flags().StringVar(&ocpVersion, "ocp-version", "", "the OpenShift version the node is to run (ocp_version): a seed must be of this one")
	cmd.Flags().StringVar(&against, "against", "", "a seed IMAGE to check the facts against: list every mismatch, exit 3 if any")
	rf.add(cmd)
	out.add(cmd, "the facts (JSON is the --against and --facts input), or with --against the mismatches")
	return cmd
}

func printTarget(g *globalOptions, t labels.Target) {
	b := func(p *bool) string {
		if p == nil {
			return "unknown"
		}
		return strconv.FormatBool(*p)
	}
	s := func(p *string) string {
		if p == nil {
			return "unknown"
		}
		if *p == "" {
			return "none"
		}
		return *p
	}
	unknown := func(v string) string { return cmp.Or(v, "unknown") }
	list := func(l []string) string { return cmp.Or(strings.Join(l, ", "), "unknown") }
	fmt.Fprintf(g.stdout, "Architecture:                  %s\nOCP version to run:            %s\nOCP version running:           %s\nFIPS:                          %s\nProxy:                         %s\nUser CA bundle:                %s\nContainer storage mount target: %s\nMirror registry:               %s\nNode IPs:                      %s\nMachine networks:              %s\n",
		unknown(t.Architecture), unknown(t.OCPVersion), unknown(t.RunningOCPVersion), b(t.FIPS), b(t.Proxy), b(t.UserCABundle), s(t.ContainerStorageMountpointTarget),
		b(t.MirrorRegistryConfigured), list(t.NodeIPs), list(t.MachineNetworks))
}
