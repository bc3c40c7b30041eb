package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the fixed date of the man pages, so that regenerating them
// changes nothing unless the commands changed.
var manDate = time.Unix(1700000000, 0).UTC()

// newGenDocsCmd writes the man pages of the whole command tree. It is
// hidden: `make docs` runs it.
func newGenDocsCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of every command into DIR",
		Hidden: true,
		Args:   exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("making %q: %w", args[0], err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "SEEDBUILD", Section: "1", Date: &manDate, Source: "seedbuild", Manual: "seedbuild manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("writing man pages into %q: %w", args[0], err)
			}
			fmt.Fprintf(g.stdout, "%s\n", args[0])
			return nil
		},
	}
}
