package main

import (
	"time"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/spf13/cobra"
)

// registryFlags are the registry flags shared by every command that reads
// or writes images.
type registryFlags struct {
	authfile, certDir, creds string
	tlsVerify                bool
	retry                    int
	retryDelay               time.Duration
}

// add puts the flags on cmd, and their checks before its RunE.
func (r *registryFlags) add(cmd *cobra.Command) {
	cmd.PreRunE = func(*cobra.Command, []string) error { return r.validate() }
	f := cmd.Flags()
	f.StringVar(&r.authfile, "authfile", "", "path of the registry auth file (default $REGISTRY_AUTH_FILE or the usual auth.json)")
	f.StringVar(&r.certDir, "cert-dir", "", "folder of certificates (*.crt, *.cert, *.key) for registry TLS")
	f.StringVar(&r.creds, "creds", "", "registry credentials as USER[:PASSWORD]")
	f.BoolVar(&r.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates for registries")
	f.IntVar(&r.retry, "retry", 3, "times to retry a pull or push that a network failure broke")
	f.DurationVar(&r.retryDelay, "retry-delay", 0, "delay between retries (default: exponential back-off from 1s)")
}

// validate refuses negative retry counts and delays.
func (r *registryFlags) validate() error {
	if r.retry < 0 {
		return usagef("invalid --retry %d: it cannot be negative", r.retry)
	}
	if r.retryDelay < 0 {
		return usagef("invalid --retry-delay %s: it cannot be negative", r.retryDelay)
	}
	return nil
}

func (r *registryFlags) retries() imageref.Retry {
	return imageref.Retry{Count: r.retry, Delay: r.retryDelay}
}

func (r *registryFlags) options(cmd *cobra.Command) imageref.Options {
	o := imageref.Options{AuthFile: r.authfile, CertDir: r.certDir, Creds: r.creds}
	if cmd.Flags().Changed("tls-verify") {
		v := r.tlsVerify
		o.TLSVerify = &v
	}
	return o
}

// noArgs refuses arguments, saying which flag takes what was given.
func noArgs(hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("%s takes no arguments, got %q; %s", cmd.CommandPath(), args[0], hint)
		}
		return nil
	}
}

// exactArgs is cobra.ExactArgs with a message that names the argument.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), %s; got %d", cmd.CommandPath(), n, names, len(args))
		}
		return nil
	}
}
