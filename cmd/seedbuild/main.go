// Command seedbuild builds bootc seed images for image-based upgrade and
// install of single-node OpenShift, and deploys them into new ostree
// stateroots.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/containers/buildah"
	"github.com/seedbuild/seedbuild/deployer"
	"github.com/seedbuild/seedbuild/imageref"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitMismatch = 3
)

func main() {
	if buildah.InitReexec() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startCPUProfile(os.Getenv("SEEDBUILD_CPUPROFILE"), os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startCPUProfile writes a pprof CPU profile of the run to path, for
// `go tool pprof`, when path is set (SEEDBUILD_CPUPROFILE). A profile that
// cannot be started is said on stderr and the run goes on.
func startCPUProfile(path string, stderr io.Writer) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "seedbuild: no CPU profile (SEEDBUILD_CPUPROFILE=%s): %v\n", path, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// usageError marks bad usage: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError carries a specific exit code with a message that may be empty
// when the command already printed everything.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root, g := newRootCmd(stdin, stdout, stderr)
	defer g.shutdown()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ue), isCobraUsage(err):
		code = exitUsage
	}
	var pe *deployer.PreflightError
	if errors.As(err, &pe) {
		// Every problem on a line of its own, all at once.
		fmt.Fprintf(stderr, "Error: refusing to deploy, %d problem(s):\n", len(pe.Problems))
		for _, p := range pe.Problems {
			fmt.Fprintf(stderr, "  %s\n", oneLine(p.String()))
		}
	} else if msg := oneLine(err.Error()); msg != "" {
		fmt.Fprintf(stderr, "Error: %s%s\n", msg, hint(msg))
	}
	if code == exitUsage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", commandPath(root, args))
	}
	return code
}

// isCobraUsage recognises cobra's own argument errors, which it returns as
// plain errors. They start with these words; an error of seedbuild's own
// that merely contains them (EINVAL's "invalid argument") is a failure.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "flag needs an argument", "invalid argument", "required flag(s)", "if any flags in the group"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// oneLine folds a multi-line error into one line, so every failure is one
// line on stderr.
func oneLine(s string) string {
	// cobra's suggestion for a mistyped command.
	if before, after, ok := strings.Cut(s, "\n\nDid you mean this?\n"); ok {
		s = before + "; did you mean " + strings.Join(strings.Fields(after), " or ") + "?"
	}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, "; ")
}

// hint adds what to do about registry failures whose own words are terse.
func hint(msg string) string {
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "authentication required") || strings.Contains(lower, "unauthorized"):
		return " (unauthorized: check the credentials in --authfile, $REGISTRY_AUTH_FILE or --creds)"
	case strings.Contains(lower, "x509:") || strings.Contains(lower, "certificate signed by unknown authority"):
		return " (the registry's certificate is not trusted: give its CA with --cert-dir, or --tls-verify=false)"
	case strings.Contains(lower, "http response to https client"):
		return " (the registry speaks plain HTTP: pass --tls-verify=false)"
	}
	return ""
}

// parseError is bad usage for a malformed image name, and a run-time
// failure for a short name that registries.conf does not resolve.
func parseError(err error) error {
	if errors.Is(err, imageref.ErrShortName) {
		return err
	}
	return usageError{err}
}
