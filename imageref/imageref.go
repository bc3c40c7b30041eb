// Package imageref turns the image names users type into containers/image
// references, with podman's rules: a transport prefix is honoured as given,
// and a bare name means local storage when the image is there, else a
// registry.
package imageref

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seedbuild/seedbuild/internal/scratch"
	"golang.org/x/sys/unix"

	"go.podman.io/common/pkg/retry"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/shortnames"
	"go.podman.io/image/v5/signature"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// Options are the registry settings podman users know. The zero value
// means podman's defaults.
type Options struct {
	// AuthFile is the registry auth file; "" uses REGISTRY_AUTH_FILE or the
	// usual auth.json locations.
	AuthFile string
	// CertDir holds *.crt, *.cert and *.key files for registry TLS; "" uses
	// /etc/containers/certs.d.
	CertDir string
	// TLSVerify, when set, turns registry TLS verification on or off.
	TLSVerify *bool
	// Creds is USER[:PASSWORD] for the registry, overriding the auth file.
	Creds string
}

// SystemContext returns the containers/image settings for the options.
func (o Options) SystemContext() (*types.SystemContext, error) {
	sys := &types.SystemContext{
		AuthFilePath:            o.AuthFile,
		DockerCertPath:          o.CertDir,
		OCICertPath:             o.CertDir,
		DockerRegistryUserAgent: "seedbuild",
		// As podman: CONTAINERS_REGISTRIES_CONF names registries.conf.
		SystemRegistriesConfPath: os.Getenv("CONTAINERS_REGISTRIES_CONF"),
	}
	if sys.AuthFilePath == "" {
		sys.AuthFilePath = os.Getenv("REGISTRY_AUTH_FILE")
	}
	if sys.AuthFilePath != "" {
		if _, err := os.Stat(sys.AuthFilePath); err != nil {
			return nil, fmt.Errorf("reading auth file %q: %w", sys.AuthFilePath, err)
		}
	}
	if o.TLSVerify != nil {
		sys.DockerInsecureSkipTLSVerify = types.NewOptionalBool(!*o.TLSVerify)
		sys.OCIInsecureSkipTLSVerify = !*o.TLSVerify
		sys.DockerDaemonInsecureSkipTLSVerify = !*o.TLSVerify
	}
	if o.Creds != "" {
		user, pass, _ := strings.Cut(o.Creds, ":")
		if user == "" {
			return nil, fmt.Errorf("parsing --creds: want USER[:PASSWORD], got an empty user")
		}
		sys.DockerAuthConfig = &types.DockerAuthConfig{Username: user, Password: pass}
	}
	return sys, nil
}

// ErrShortName is a short name that registries.conf does not resolve: a
// fault of the configuration found at run time, not of the name's form.
var ErrShortName = errors.New("short name not resolved by registries.conf")

// HasTransport reports whether name starts with a known transport prefix,
// such as "docker://" or "oci-archive:".
func HasTransport(name string) bool {
	prefix, _, ok := strings.Cut(name, ":")
	return ok && transports.Get(prefix) != nil
}

// StoreSpec names the store as the containers-storage transport's
// [driver@graphroot+runroot:options] prefix does, without the brackets.
func StoreSpec(s storage.Store) string {
	spec := fmt.Sprintf("%s@%s+%s", s.GraphDriverName(), s.GraphRoot(), s.RunRoot())
	if opts := s.GraphOptions(); len(opts) > 0 {
		spec += ":" + strings.Join(opts, ",")
	}
	return spec
}

// NeedsStore reports whether resolving name may read local storage.
func NeedsStore(name string) bool {
	return !HasTransport(name) || strings.HasPrefix(name, istorage.Transport.Name()+":")
}

// Parse resolves a user's image name. A name with a transport prefix is
// parsed as given (containers-storage: names use store). A bare name is
// the image in store when store holds it, else a docker:// reference.
// store may be nil when NeedsStore(name) is false.
func Parse(name string, store storage.Store) (types.ImageReference, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("parsing image name: empty name")
	}
	if HasTransport(name) {
		if strings.HasPrefix(name, istorage.Transport.Name()+":") && store != nil {
			ref, err := istorage.Transport.ParseStoreReference(store, strings.TrimPrefix(name, istorage.Transport.Name()+":"))
			if err != nil {
				return nil, fmt.Errorf("parsing image name %q: %w", name, err)
			}
			return ref, nil
		}
		ref, err := alltransports.ParseImageName(name)
		if err != nil {
			return nil, fmt.Errorf("parsing image name %q: %w", name, err)
		}
		return ref, nil
	}
	if strings.Contains(name, "://") {
		scheme, _, _ := strings.Cut(name, "://")
		return nil, fmt.Errorf("parsing image name %q: unknown transport %q (known: %s)", name, scheme, strings.Join(transports.ListNames(), ", "))
	}
	if store != nil {
		if ref, err := istorage.Transport.ParseStoreReference(store, name); err == nil {
			if _, _, err := istorage.ResolveReference(ref); err == nil {
				return ref, nil
			}
		}
	}
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("parsing image name %q: a path needs its transport, such as oci-archive:%s or oci:%s", name, name, name)
	}
	if _, err := reference.ParseNormalizedNamed(name); err != nil {
		return nil, fmt.Errorf("parsing image name %q: %w", name, err)
	}
	// Short names resolve as podman resolves them: registries.conf aliases,
	// then its unqualified-search registries, without prompting.
	mode := types.ShortNameModePermissive
	resolved, err := shortnames.Resolve(&types.SystemContext{ShortNameMode: &mode, SystemRegistriesConfPath: os.Getenv("CONTAINERS_REGISTRIES_CONF")}, name)
	if err != nil {
		return nil, fmt.Errorf("resolving image name %q: %w: %v", name, ErrShortName, err)
	}
	if len(resolved.PullCandidates) == 0 {
		return nil, fmt.Errorf("resolving image name %q: %w: give a full name, such as registry.example.com/%s", name, ErrShortName, name)
	}
	ref, err := docker.NewReference(resolved.PullCandidates[0].Value)
	if err != nil {
		return nil, fmt.Errorf("parsing image name %q: %w", name, err)
	}
	return ref, nil
}

// Display is the transport-qualified form of ref, for messages.
// An archive or layout path without an image name loses the empty ":"
// suffix containers/image adds.
func Display(ref types.ImageReference) string {
	within := ref.StringWithinTransport()
	if LocalPath(ref) != "" {
		within = strings.TrimSuffix(within, ":")
	}
	return ref.Transport().Name() + ":" + within
}

// ErrNoPolicy is returned when the machine has no signature policy file.
var ErrNoPolicy = errors.New("no signature policy (policy.json)")

// PolicyContext returns the signature policy from policy.json, found as
// podman finds it. A machine without one gets an error that says how to
// make one, never a policy that accepts anything unasked.
func PolicyContext(sys *types.SystemContext) (*signature.PolicyContext, error) {
	policy, err := signature.DefaultPolicy(sys)
	if err != nil {
		if missing := missingPolicy(sys); missing != "" {
			return nil, fmt.Errorf("%w: %s does not exist; install containers-common (Debian: golang-github-containers-common), which ships /etc/containers/policy.json as podman and skopeo use it, or write one such as {\"default\":[{\"type\":\"insecureAcceptAnything\"}]}", ErrNoPolicy, missing)
		}
		return nil, fmt.Errorf("reading signature policy: %w", err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return nil, fmt.Errorf("loading signature policy: %w", err)
	}
	return pc, nil
}

// missingPolicy names the policy file that was looked for and is not
// there, or is "" when one exists.
func missingPolicy(sys *types.SystemContext) string {
	if sys != nil && sys.SignaturePolicyPath != "" {
		if _, err := os.Stat(sys.SignaturePolicyPath); errors.Is(err, os.ErrNotExist) {
			return sys.SignaturePolicyPath
		}
		return ""
	}
	system := "/etc/containers/policy.json"
	if sys != nil && sys.RootForImplicitAbsolutePaths != "" {
		system = filepath.Join(sys.RootForImplicitAbsolutePaths, system)
	}
	home, _ := os.UserHomeDir()
	user := filepath.Join(home, ".config/containers/policy.json")
	for _, p := range []string{user, system} {
		if _, err := os.Stat(p); err == nil {
			return ""
		}
	}
	return system
}

// Retry says how often and how far apart a failed copy is tried again.
type Retry struct {
	// Count is the number of retries after the first try; 0 tries once.
	Count int
	// Delay between tries; 0 backs off exponentially from one second.
	Delay time.Duration
}

// CopyImage copies src to dest, retrying what a flaky network breaks, as
// podman push and pull do. It returns the manifest written to dest.
//
// A local destination (oci-archive:, oci:, dir:) that did not exist before
// is written as WriteAtomically writes: a failed, killed or power-cut copy
// never leaves something at NAME that could be taken for the image.
func CopyImage(ctx context.Context, pc *signature.PolicyContext, dest, src types.ImageReference, opts *copy.Options, r Retry) ([]byte, error) {
	var manifest []byte
	copyTo := func(dest types.ImageReference) error {
		return r.Do(ctx, func() error {
			var err error
			manifest, err = copy.Image(ctx, pc, dest, src, opts)
			return err
		})
	}
	path := LocalPath(dest)
	if path == "" {
		err := copyTo(dest)
		return manifest, err
	}
	if _, err := os.Lstat(path); err == nil {
		removeDeadPartials(path)
		err := copyTo(dest) // an existing layout is added to in place
		return manifest, err
	}
	err := WriteAtomically(path, func(partial string) error {
		_, rest, _ := strings.Cut(dest.StringWithinTransport(), ":")
		name := dest.Transport().Name() + ":" + partial
		if rest != "" {
			name += ":" + rest
		}
		pdest, err := alltransports.ParseImageName(name)
		if err != nil {
			return fmt.Errorf("naming the partial copy of %s: %w", Display(dest), err)
		}
		return copyTo(pdest)
	})
	return manifest, err
}

// Do runs fn, and again after a failure worth retrying (Retryable), up to
// r.Count more times.
func (r Retry) Do(ctx context.Context, fn func() error) error {
	return retry.IfNecessary(ctx, fn, &retry.Options{MaxRetry: r.Count, Delay: r.Delay, IsErrorRetryable: func(err error) bool {
		// An interrupted run reports a closed connection too: no retry.
		return ctx.Err() == nil && Retryable(err)
	}})
}

// WriteAtomically has write make path's content at a Partial's path, and
// publishes it only when write succeeded.
func WriteAtomically(path string, write func(partial string) error) error {
	p := NewPartial(path)
	if err := write(p.Path); err != nil {
		p.Discard()
		return err
	}
	return p.Publish()
}

// Partial is where a local destination is written before it is whole: a
// hidden name beside it (.NAME.partial-BOOT-PID). Published, it is synced
// and renamed into place; a failed, killed or power-cut write never leaves
// something at the final name that could be taken for what was asked.
type Partial struct {
	final string
	// Path is where to write.
	Path string
}

// NewPartial names the partial of path, after removing what dead writes to
// path left.
func NewPartial(path string) *Partial {
	removeDeadPartials(path)
	return &Partial{final: path, Path: PartialPath(path)}
}

// PartialPath is where this process writes path's partial.
func PartialPath(path string) string {
	return filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.partial-%s-%d", filepath.Base(path), scratch.BootID(), os.Getpid()))
}

// Publish syncs the partial and renames it to its final name; on failure
// the partial is removed.
func (p *Partial) Publish() error {
	if err := publish(p.Path, p.final); err != nil {
		p.Discard()
		return err
	}
	return nil
}

// Discard removes the partial.
func (p *Partial) Discard() { os.RemoveAll(p.Path) }

// publish syncs what was written at partial and renames it to path.
func publish(partial, path string) error {
	f, err := os.Open(partial)
	if err != nil {
		return err
	}
	// fsync on a file writes it; syncfs on a folder writes its whole file
	// system, layout blobs included.
	if fi, serr := f.Stat(); serr == nil && fi.IsDir() {
		err = unix.Syncfs(int(f.Fd()))
	} else {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("syncing %q: %w", partial, err)
	}
	if err := os.Rename(partial, path); err != nil {
		return fmt.Errorf("renaming %q to %q: %w", partial, path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// removeDeadPartials removes the partial copies to path that copies no
// longer running left: those of an earlier boot, and those whose pid is
// gone.
func removeDeadPartials(path string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".partial-*"))
	for _, m := range matches {
		_, stamp, _ := strings.Cut(filepath.Base(m), ".partial-")
		boot, pidText, _ := strings.Cut(stamp, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 && (boot != scratch.BootID() || !scratch.Alive(pid)) {
			os.RemoveAll(m)
		}
	}
}

// Retryable tells whether a failed copy is worth trying again: what
// containers/common's heuristic retries, plus a network connection the
// registry dropped in the middle of an upload (closed connection, broken
// pipe, short read), which is what a registry restart looks like to a
// client. The same errors from a local file (a truncated archive) are not
// retried, and a cancelled or timed-out context never is.
func Retryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case retry.IsErrorRetryable(err):
		return true
	}
	var opErr *net.OpError
	var urlErr *url.Error
	if !errors.As(err, &opErr) && !errors.As(err, &urlErr) {
		return false
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF)
}

// LocalPath is the file or folder a local destination writes, or "".
func LocalPath(ref types.ImageReference) string {
	switch ref.Transport().Name() {
	case "oci-archive", "oci", "dir":
		p, _, _ := strings.Cut(ref.StringWithinTransport(), ":")
		return p
	}
	return ""
}
