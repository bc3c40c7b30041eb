package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/seedbuild/seedbuild/frontend"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/localimage"
	"github.com/seedbuild/seedbuild/seedimage"
	"github.com/spf13/cobra"
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
		d, err := seedimage.Describe(ctx, ref, sys)
		if err != nil {
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
	d, err := seedimage.Describe(ctx, ref, sys)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", name, err)
	}
	pc, err := imageref.PolicyContext(sys)
	if err != nil {
		return nil, err
	}
	mnt, err := localimage.EnsureMounted(ctx, store, localimage.Source{Ref: ref, Description: d, SystemContext: sys, Policy: pc,
		Retry: imageref.Retry{Count: 3}, Progress: g.stderr})
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
