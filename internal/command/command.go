// Package command runs the host's tools (ostree, rpm-ostree, tar) for
// create and deploy, through one small seam that tests replace.
package command

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Runner runs one command with stdin closed and stdout and stderr apart.
type Runner interface {
	Run(ctx context.Context, argv []string, stdout, stderr io.Writer) error
}

// Exec runs commands on the host.
type Exec struct{}

// Run runs argv.
func (Exec) Run(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

var _ Runner = Exec{}

// Output runs argv with r and returns its stdout, trimmed; a failure names
// the command and carries what it wrote on stderr.
func Output(ctx context.Context, r Runner, argv ...string) (string, error) {
	var out, errb bytes.Buffer
	if err := r.Run(ctx, argv, &out, &errb); err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
