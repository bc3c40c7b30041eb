package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containers/buildah/define"
	"github.com/containers/buildah/imagebuildah"
	"github.com/containers/buildah/pkg/parse"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// BuildOptions are the choices of `seedbuild build`.
type BuildOptions struct {
	// ContextDir is the build context.
	ContextDir string
	// File is the Containerfile; "" finds Containerfile, else Dockerfile,
	// in ContextDir.
	File string
	// Tags name the image in local storage.
	Tags []string
	// Args are build arguments; Labels are KEY=VALUE labels to add, and
	// Annotations KEY=VALUE annotations of the image's manifest.
	Args        map[string]string
	Labels      []string
	Annotations []string
	// Timestamp, when set, dates the image and its layers, for
	// reproducible builds.
	Timestamp *time.Time
	// Layers keeps intermediate images; NoCache ignores them.
	Layers, NoCache bool
	// Pull is always, missing, never or newer; default missing.
	Pull string
	// Isolation is chroot (default) or oci.
	Isolation string
	// SystemContext reaches registries.
	SystemContext *types.SystemContext
	// Out receives the build's output; Err its errors and progress.
	Out, Err io.Writer
}

// FindContainerfile returns the Containerfile to build: File when given,
// else ContextDir's Containerfile, else its Dockerfile.
func FindContainerfile(contextDir, file string) (string, error) {
	if fi, err := os.Stat(contextDir); err != nil {
		return "", fmt.Errorf("reading the build context: %w", err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("the build context %q is not a folder", contextDir)
	}
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("reading Containerfile %q: %w", file, err)
		}
		return file, nil
	}
	for _, name := range []string{"Containerfile", "Dockerfile"} {
		p := filepath.Join(contextDir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Containerfile or Dockerfile in %q: give one with -f", contextDir)
}

// ParsePull checks a --pull value.
func ParsePull(s string) (define.PullPolicy, error) {
	switch s {
	case "", "missing":
		return define.PullIfMissing, nil
	case "always":
		return define.PullAlways, nil
	case "never":
		return define.PullNever, nil
	case "newer":
		return define.PullIfNewer, nil
	}
	return 0, fmt.Errorf("unknown pull policy %q: want always, missing, never or newer", s)
}

// ParseIsolation checks an --isolation value.
func ParseIsolation(s string) (define.Isolation, error) {
	switch s {
	case "", "chroot":
		return define.IsolationChroot, nil
	case "oci":
		return define.IsolationOCI, nil
	}
	return 0, fmt.Errorf("unknown isolation %q: want chroot or oci", s)
}

// currentUlimits are nofile and nproc at their current values: RUN steps
// with chroot isolation set them, and raising them is not allowed here.
func currentUlimits() []string {
	var out []string
	for name, res := range map[string]int{"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC} {
		var r unix.Rlimit
		if err := unix.Getrlimit(res, &r); err == nil {
			out = append(out, name+"="+limitString(r.Cur)+":"+limitString(r.Max))
		}
	}
	return out
}

func limitString(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "-1"
	}
	return strconv.FormatUint(v, 10)
}

// Build builds the Containerfile with buildah's imagebuildah and returns
// the image ID. A relative context or Containerfile is taken from the
// working directory, as buildah takes it.
func Build(ctx context.Context, store storage.Store, o BuildOptions) (string, error) {
	for _, p := range []*string{&o.ContextDir, &o.File} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return "", fmt.Errorf("resolving %q: %w", *p, err)
		}
		*p = abs
	}
	file, err := FindContainerfile(o.ContextDir, o.File)
	if err != nil {
		return "", err
	}
	pull, err := ParsePull(o.Pull)
	if err != nil {
		return "", err
	}
	isolation, err := ParseIsolation(o.Isolation)
	if err != nil {
		return "", err
	}
	excludes, ignoreFile, err := parse.ContainerIgnoreFile(o.ContextDir, "", []string{file})
	if err != nil {
		return "", fmt.Errorf("reading the ignore file of %q: %w", o.ContextDir, err)
	}
	opts := define.BuildOptions{
		ContextDirectory:        o.ContextDir,
		PullPolicy:              pull,
		Isolation:               isolation,
		Args:                    o.Args,
		Labels:                  o.Labels,
		Annotations:             o.Annotations,
		Timestamp:               o.Timestamp,
		Layers:                  o.Layers,
		NoCache:                 o.NoCache,
		Out:                     o.Out,
		Err:                     o.Err,
		ReportWriter:            o.Err,
		SystemContext:           o.SystemContext,
		OutputFormat:            define.OCIv1ImageManifest,
		CommonBuildOpts:         &define.CommonBuildOptions{Ulimit: currentUlimits()},
		Excludes:                excludes,
		IgnoreFile:              ignoreFile,
		RemoveIntermediateCtrs:  true,
		ForceRmIntermediateCtrs: true,
	}
	if isolation == define.IsolationChroot {
		opts.NetworkInterface = hostNetwork{}
	}
	if len(o.Tags) > 0 {
		opts.Output = o.Tags[0]
		opts.AdditionalTags = o.Tags[1:]
	}
	id, _, err := imagebuildah.BuildDockerfiles(ctx, store, opts, file)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return "", fmt.Errorf("building %q: interrupted", file)
		}
		return "", fmt.Errorf("building %q: %w", file, err)
	}
	return id, nil
}
