package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/deployer"
	"github.com/seedbuild/seedbuild/internal/command"
	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
)

// infoReport is what `seedbuild info` prints; its JSON form is stable.
type infoReport struct {
	Version         string `json:"version"`
	GraphRoot       string `json:"graph_root"`
	RunRoot         string `json:"run_root"`
	StorageDriver   string `json:"storage_driver"`
	RegistriesConf  string `json:"registries_conf"`
	PodmanURL       string `json:"podman_url"`
	PodmanAnswers   bool   `json:"podman_answers"`
	Bootc           string `json:"bootc"`
	OstreeContainer bool   `json:"ostree_container"`
	Ostree          string `json:"ostree"`
}

func newInfoCmd(g *globalOptions) *cobra.Command {
	var out formatFlags
	var podmanURL string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the store, registries config, podman service and deploy tools this node has",
		Long: `Prints what seedbuild would use on this node: the containers-storage store,
the registries.conf in use, whether the podman service answers, and whether
bootc, ostree-ext (ostree container) and ostree are available. It is the first
thing to run on a new node. It changes nothing.`,
		Example: `  seedbuild info
  seedbuild info --json`,
		Args: noArgs("it reports on this machine"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.parse(); err != nil {
				return err
			}
			opts, err := g.storeOptions()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("podman-url") {
				podmanURL = deployer.HostPodmanURL(g.host)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			r := infoReport{
				Version: version, GraphRoot: opts.GraphRoot, RunRoot: opts.RunRoot, StorageDriver: opts.GraphDriverName,
				RegistriesConf: sysregistriesv2.ConfigPath(&types.SystemContext{SystemRegistriesConfPath: os.Getenv("CONTAINERS_REGISTRIES_CONF")}), PodmanURL: podmanURL,
				PodmanAnswers: deployer.PodmanPinger(podmanURL)(ctx),
				Bootc:         toolVersion(ctx, g.host, "bootc", "--version"), Ostree: toolVersion(ctx, g.host, "ostree", "--version"),
				OstreeContainer: deployer.OstreeContainerWorks(g.host.Runner())(ctx),
			}
			if out.structured() {
				return out.write(g.stdout, r)
			}
			yes := map[bool]string{true: "yes", false: "no"}
			none := func(s string) string {
				if s == "" {
					return "not found"
				}
				return s
			}
			fmt.Fprintf(g.stdout, "seedbuild:         %s\nstore:             %s (run root %s, driver %s)\nregistries.conf:   %s\npodman service:    %s answers: %s\nbootc:             %s\nostree container:  %s\nostree:            %s\n",
				r.Version, r.GraphRoot, r.RunRoot, cmp.Or(r.StorageDriver, "chosen when the store is first used"), r.RegistriesConf, r.PodmanURL, yes[r.PodmanAnswers],
				none(r.Bootc), yes[r.OstreeContainer], none(r.Ostree))
			return nil
		},
	}
	out.add(cmd, "the report")
	cmd.Flags().StringVar(&podmanURL, "podman-url", deployer.DefaultPodmanURL, "podman service to check")
	return cmd
}

// toolVersion is the first line a tool prints about its version, or "".
func toolVersion(ctx context.Context, host hostroot.Host, argv ...string) string {
	out, err := command.Output(ctx, host.Runner(), argv...)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "libostree") {
			return strings.TrimPrefix(strings.ReplaceAll(l, "'", ""), "Version: ")
		}
	}
	return ""
}
