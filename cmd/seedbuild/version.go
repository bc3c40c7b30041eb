package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/containers/buildah/define"
	"github.com/spf13/cobra"
)

// version is set at link time by the Makefile.
var version = "dev"

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	Buildah   string `json:"buildah"`
	Storage   string `json:"storage"`
	Image     string `json:"image"`
}

func newVersionCmd(g *globalOptions) *cobra.Command {
	var out formatFlags
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print seedbuild's version and the buildah, storage and image versions it embeds",
		Args:  noArgs("it prints versions only"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.parse(); err != nil {
				return err
			}
			v := versionInfo{
				Version:   version,
				GoVersion: runtime.Version(),
				Platform:  runtime.GOOS + "/" + runtime.GOARCH,
				Buildah:   define.Version,
				Storage:   moduleVersion("go.podman.io/storage"),
				Image:     moduleVersion("go.podman.io/image/v5"),
			}
			if out.structured() {
				return out.write(g.stdout, v)
			}
			fmt.Fprintf(g.stdout, "seedbuild:  %s\ngo:         %s\nplatform:   %s\nbuildah:    %s\nstorage:    %s\nimage:      %s\n",
				v.Version, v.GoVersion, v.Platform, v.Buildah, v.Storage, v.Image)
			return nil
		},
	}
	out.add(cmd, "the versions")
	return cmd
}

func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range bi.Deps {
		if m.Path == path {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}
