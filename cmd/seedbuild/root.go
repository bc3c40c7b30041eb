package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	istorage "go.podman.io/image/v5/storage"
	imagetypes "go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"go.podman.io/storage/types"
)

// globalOptions are the flags every command shares: podman's storage flags
// and the log level.
type globalOptions struct {
	root, runroot, driver string
	storageOpts           []string
	logLevel              string
	hostRoot              string
	// host is the node: the one seedbuild runs on, or --host-root's.
	host hostroot.Host

	stdin          io.Reader
	stdout, stderr io.Writer
	store          storage.Store
}

// storeOptions applies the flags over storage.conf, found the way podman
// finds it (CONTAINERS_STORAGE_CONF, then the system or user file).
func (g *globalOptions) storeOptions() (types.StoreOptions, error) {
	opts, err := types.DefaultStoreOptions()
	if err != nil {
		return opts, fmt.Errorf("reading storage configuration: %w", err)
	}
	// On a host seen through --host-root, the store is the host's own.
	opts.GraphRoot, opts.RunRoot = g.host.Path(opts.GraphRoot), g.host.Path(opts.RunRoot)
	if g.root != "" {
		opts.GraphRoot = g.root
	}
	if g.runroot != "" {
		opts.RunRoot = g.runroot
	}
	if g.driver != "" {
		opts.GraphDriverName = g.driver
	}
	if len(g.storageOpts) > 0 {
		opts.GraphDriverOptions = g.storageOpts
	}
	return opts, nil
}

// openStore opens the containers-storage store once and makes it the one
// containers-storage: references use.
func (g *globalOptions) openStore() (storage.Store, error) {
	if g.store != nil {
		return g.store, nil
	}
	opts, err := g.storeOptions()
	if err != nil {
		return nil, err
	}
	s, err := storage.GetStore(opts)
	if err != nil {
		return nil, fmt.Errorf("opening storage %q: %w", opts.GraphRoot, err)
	}
	istorage.Transport.SetStore(s)
	g.store = s
	return s, nil
}

// storeFor opens the store only when resolving name may need it.
func (g *globalOptions) storeFor(name string) (storage.Store, error) {
	if !imageref.NeedsStore(name) {
		return nil, nil
	}
	return g.openStore()
}

// parseImage resolves a user's image name (imageref.Parse), opening the
// store only when the name may need it. A malformed name is bad usage.
func (g *globalOptions) parseImage(name string) (imagetypes.ImageReference, error) {
	store, err := g.storeFor(name)
	if err != nil {
		return nil, err
	}
	ref, err := imageref.Parse(name, store)
	if err != nil {
		return nil, parseError(err)
	}
	return ref, nil
}

func (g *globalOptions) shutdown() {
	if g.store != nil {
		if _, err := g.store.Shutdown(true); err != nil {
			logrus.Debugf("shutting down storage: %v", err)
		}
		g.store = nil
	}
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) (*cobra.Command, *globalOptions) {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "seedbuild",
		Short: "Build, inspect and deploy bootc seed images for single-node OpenShift",
		Long: `seedbuild builds bootc seed images for image-based upgrade and install of
single-node OpenShift, and deploys them into new ostree stateroots.

A seed captures a healthy node's state (/var and its /etc changes) as native
layers on top of the node's OS image, labelled so that the lifecycle agent,
bootc and seedbuild itself can consume it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			lvl, err := logrus.ParseLevel(g.logLevel)
			if err != nil {
				return usagef("invalid --log-level %q: want one of trace, debug, info, warn, error, fatal, panic", g.logLevel)
			}
			logrus.SetLevel(lvl)
			logrus.SetOutput(g.stderr)
			if g.hostRoot != "" {
				if g.host, err = hostroot.Open(g.hostRoot); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	f := cmd.PersistentFlags()
	f.StringVar(&g.root, "root", "", "path to the containers-storage graph root (default from storage.conf)")
	f.StringVar(&g.runroot, "runroot", "", "path to the containers-storage run root (default from storage.conf)")
	f.StringVar(&g.driver, "storage-driver", "", "storage driver, such as overlay or vfs (default from storage.conf)")
	f.StringSliceVar(&g.storageOpts, "storage-opt", nil, "storage driver option, as DRIVER.KEY=VALUE (repeatable)")
	f.StringVar(&g.hostRoot, "host-root", "", "the node's / when seedbuild runs in a container (podman run --privileged --pid=host -v /:/host): create, deploy, facts and info read the node under it, use its container store, and run its own ostree, rpm-ostree and bootc in its mount namespace")
	f.StringVar(&g.logLevel, "log-level", "warn", "log level: "+strings.Join([]string{"trace", "debug", "info", "warn", "error"}, ", "))
	cmd.AddCommand(
		newVersionCmd(g),
		newInspectCmd(g),
		newCreateCmd(g),
		newDeployCmd(g),
		newBuildCmd(g),
		newLintCmd(g),
		newContainerfileCmd(g),
		newFactsCmd(g),
		newPrecacheCmd(g),
		newInfoCmd(g),
		newPushCmd(g),
		newGenDocsCmd(g),
	)
	// cobra's completion command prints its help for a shell it does not
	// know and exits 0; name the shells and exit 2 instead.
	cmd.InitDefaultCompletionCmd()
	if comp, _, err := cmd.Find([]string{"completion"}); err == nil && comp.Name() == "completion" {
		comp.Args = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				var shells []string
				for _, sub := range c.Commands() {
					shells = append(shells, sub.Name())
				}
				return usagef("unknown shell %q for completion; want one of %s", args[0], strings.Join(shells, ", "))
			}
			return nil
		}
		// Runnable, so that cobra checks the arguments above.
		comp.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	return cmd, g
}

// commandPath returns "seedbuild SUB" for the subcommand args name, for
// the usage hint.
func commandPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == nil {
		return root.Name()
	}
	return c.CommandPath()
}

// completeLocalImages completes image arguments with the names of the
// images in local storage.
func completeLocalImages(g *globalOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		store, err := g.openStore()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		images, err := store.Images()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, img := range images {
			for _, n := range img.Names {
				if strings.HasPrefix(n, toComplete) {
					names = append(names, n)
				}
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
