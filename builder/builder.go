// Package builder turns a host root into a seed image: it applies the
// capture rules, streams the node's state into layers in one pass, stacks
// them on the node's OS image with the seed labels, and writes the result
// to local storage or any transport.
package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/seedbuild/seedbuild/internal/machineconfig"
	"github.com/seedbuild/seedbuild/labels"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// Options says what to build and where to put it.
type Options struct {
	// Rootfs is the host root to capture. Default "/".
	Rootfs string
	// Base is the OS image the seed is built on. Default: spec.osImageURL
	// of the root's MachineConfig, named through ParseImage. Not used for
	// Classic.
	Base types.ImageReference
	// ParseImage resolves an image name (the MachineConfig's osImageURL)
	// as the caller resolves names (registries.conf, local storage).
	// Required when Base is nil for a layout that needs a base.
	ParseImage func(name string) (types.ImageReference, error)
	// Layout is the kind of seed to make; NotASeed (the zero Kind) means
	// labels.Native.
	Layout labels.Kind
	// Excludes are extra tar-style exclusion patterns, root-relative.
	Excludes []string
	// ExcludePaths are host paths never captured, such as the store.
	ExcludePaths []string
	// ClusterInfo is the seed cluster's facts; nil reads what the root tells.
	ClusterInfo *labels.ClusterInfo
	// OstreeRef picks the commit a classic seed carries when the root has
	// no rpm-ostree.json and more than one ref.
	OstreeRef string
	// ContainersList, when set, is the precache list; else it is read from
	// ContainersListFile, else from the root's container store.
	ContainersList []string
	// ContainersListFile is a precache list file: one image a line, with
	// blank lines and # comments.
	ContainersListFile string
	// Kargs are added after the MachineConfig kernel arguments.
	Kargs []string
	// Timestamp, when set, clamps every mtime and dates the image, for
	// reproducible builds.
	Timestamp *time.Time
	// Compression of the new layers. Default Gzip.
	Compression Compression
	// AllowCredentials lets registry credentials into the seed.
	AllowCredentials bool
	// AllowRunning lets a live root with kubelet or crio running be captured.
	AllowRunning bool
	// Destinations receive the finished image. At least one is required.
	Destinations []types.ImageReference
	// Store is the local containers-storage that destinations named in it
	// (--tag) are in. When every destination is there, and so is the
	// base, a native seed is committed straight into it.
	Store storage.Store
	// SystemContext and Policy are used to read the base and write the
	// destinations.
	SystemContext *types.SystemContext
	Policy        *signature.PolicyContext
	// Retry applies to reading the base and writing destinations.
	Retry imageref.Retry
	// TempDir holds the staging folder. Default /var/tmp. On a host seen
	// through a folder, the classic layout stages under the host's root,
	// where the host's ostree can write.
	TempDir string
	// Host is the node whose root is captured: the zero Host is the one
	// seedbuild runs on; another (--host-root) has its own tools run in
	// its mount namespace. A Rootfs that is the host's root is live.
	Host hostroot.Host
	// Progress receives progress lines; nil for none.
	Progress io.Writer
}

func (o *Options) validate() error {
	if o.Rootfs == "" {
		o.Rootfs = o.Host.Root()
	}
	if o.Layout == labels.NotASeed {
		o.Layout = labels.Native
	}
	if o.Compression == "" {
		o.Compression = Gzip
	}
	if o.TempDir == "" {
		o.TempDir = "/var/tmp"
	}
	if o.Layout == labels.Classic && !o.Host.Local() && o.Host.HostPath(o.TempDir) == o.TempDir {
		o.TempDir = o.Host.Path("/var/tmp")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Destinations) == 0 {
		return errors.New("no destination: give at least one --tag or --output")
	}
	if o.Layout != labels.Classic && o.Base == nil {
		if err := o.baseFromMachineConfig(); err != nil {
			return err
		}
	}
	if o.ContainersList == nil && o.ContainersListFile != "" {
		list, err := ReadContainersList(o.ContainersListFile)
		if err != nil {
			return err
		}
		o.ContainersList = list
	}
	if o.Policy == nil {
		return errors.New("no signature policy")
	}
	abs, err := filepath.Abs(o.Rootfs)
	if err != nil {
		return fmt.Errorf("reading root %q: %w", o.Rootfs, err)
	}
	o.Rootfs = abs
	for _, d := range []string{"etc", "var"} {
		if fi, err := os.Stat(filepath.Join(o.Rootfs, d)); err != nil || !fi.IsDir() {
			return fmt.Errorf("root %q has no %s/ folder: is it a host root?", o.Rootfs, d)
		}
	}
	if o.Layout == labels.Classic {
		if fi, err := os.Stat(filepath.Join(o.Rootfs, "ostree/repo")); err != nil || !fi.IsDir() {
			return fmt.Errorf("root %q has no ostree/repo, which a classic seed carries", o.Rootfs)
		}
	}
	return nil
}

// LayerReport describes one layer of the seed.
type LayerReport struct {
	Name         string `json:"name"`
	Digest       string `json:"digest"`
	DiffID       string `json:"diff_id,omitempty"`
	MediaType    string `json:"media_type"`
	Size         int64  `json:"size"`
	Uncompressed int64  `json:"uncompressed_size,omitempty"`
}

// Phase is how long one stage of the build took.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Report is what a build did. Its JSON form is `create --json`.
type Report struct {
	Layout         string        `json:"layout"`
	FormatVersion  int           `json:"format_version"`
	ImageID        string        `json:"image_id"`
	ManifestDigest string        `json:"manifest_digest"`
	Base           string        `json:"base,omitempty"`
	BaseDigest     string        `json:"base_digest,omitempty"`
	Destinations   []string      `json:"destinations"`
	Layers         []LayerReport `json:"layers"`
	Files          int64         `json:"files"`
	Bytes          int64         `json:"bytes"`
	EtcChanged     int           `json:"etc_changed"`
	EtcDeleted     int           `json:"etc_deleted"`
	// Deployment is the id of the deployment the node runs
	// (<osname>-<checksum>.<serial>), where the root tells it.
	Deployment string `json:"deployment,omitempty"`
	// Origin says where the seed's copy of the node's .origin came from:
	// the file, or how it was made.
	Origin  string    `json:"origin,omitempty"`
	Skipped []Skipped `json:"skipped"`
	Phases  []Phase   `json:"phases"`
}

// NonUTF8Error lists captured paths whose names are not UTF-8.
type NonUTF8Error struct{ Paths []string }

func (e *NonUTF8Error) Error() string {
	return fmt.Sprintf("refusing %d path(s) with non-UTF-8 names, which bootc cannot lint: %s", len(e.Paths), quoteList(e.Paths))
}

// CredentialsError lists captured auth files holding real registry
// credentials. It never carries their content.
type CredentialsError struct{ Paths []string }

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("refusing to capture registry credentials in %s: replace them with the dummy pull secret, exclude the file, or pass --allow-credentials", quoteList(e.Paths))
}

// ErrNodeRunning is returned for a live root with kubelet or crio running.
var ErrNodeRunning = errors.New("kubelet or crio is running on this node: stop them first (the upstream agent does) or pass --allow-running")

func quoteList(paths []string) string {
	const max = 20
	q := make([]string, 0, len(paths))
	for i, p := range paths {
		if i == max {
			q = append(q, fmt.Sprintf("and %d more", len(paths)-max))
			break
		}
		q = append(q, fmt.Sprintf("%q", p))
	}
	return strings.Join(q, ", ")
}

// phaseTimer records phase durations.
type phaseTimer struct {
	phases []Phase
	start  time.Time
}

func (p *phaseTimer) begin() { p.start = time.Now() }

func (p *phaseTimer) end(name string) {
	p.phases = append(p.phases, Phase{Name: name, Seconds: time.Since(p.start).Round(time.Millisecond).Seconds()})
	p.start = time.Now()
}

// checkRunning refuses a live root with kubelet or crio running.
func checkRunning(host hostroot.Host, root string) error {
	if !host.IsRoot(root) {
		return nil
	}
	// A /proc that cannot be read says nothing either way: the capture goes
	// on, as it always has.
	names, err := runningServices(host.Proc())
	if err != nil || len(names) == 0 {
		return nil
	}
	return ErrNodeRunning
}

// nodeServices are the processes that make a root a live node.
var nodeServices = map[string]bool{"kubelet": true, "crio": true}

// runningServices lists, sorted and once each, the node services that have
// a process in the proc tree at procRoot ("/proc" on a host). Entries
// without a readable comm file, which go away or are not processes, are
// skipped. The error is for a procRoot that cannot be listed.
func runningServices(procRoot string) ([]string, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes in %q: %w", procRoot, err)
	}
	found := map[string]bool{}
	for _, e := range entries {
		comm, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
		if err != nil {
			continue
		}
		if name := strings.TrimSpace(string(comm)); nodeServices[name] {
			found[name] = true
		}
	}
	names := make([]string, 0, len(found))
	for name := range found {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// ctxWriter fails writes once ctx is done, so a cancelled build stops
// inside a long layer.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// baseFromMachineConfig names the base after the root's MachineConfig.
func (o *Options) baseFromMachineConfig() error {
	mc, err := machineconfig.Read(o.Rootfs)
	if err != nil {
		return err
	}
	if mc.OSImageURL == "" {
		return fmt.Errorf("no base image: give --base, or a root whose %s has spec.osImageURL", machineconfig.Path)
	}
	if o.ParseImage == nil {
		return errors.New("no base image for a " + o.Layout.String() + " seed")
	}
	ref, err := o.ParseImage(mc.OSImageURL)
	if err != nil {
		return fmt.Errorf("naming the base image %q of the root's MachineConfig: %w", mc.OSImageURL, err)
	}
	o.Base = ref
	return nil
}

// ReadContainersList reads a precache list file: one image a line, blank
// lines and # comments left out.
func ReadContainersList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading containers list %q: %w", path, err)
	}
	list := []string{}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			list = append(list, l)
		}
	}
	return list, nil
}
