package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/kargsd"
	"github.com/seedbuild/seedbuild/internal/machineconfig"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"github.com/seedbuild/seedbuild/labels"
	"go.podman.io/image/v5/types"
)

// Create builds a seed from opts.Rootfs and writes it to every destination.
// On failure or cancellation it leaves no staging files behind.
func Create(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if !opts.AllowRunning {
		if err := checkRunning(opts.Host, opts.Rootfs); err != nil {
			return nil, err
		}
	}
	scratch.RemoveStale(opts.TempDir, opts.Progress)
	stage, err := scratch.New(opts.TempDir, "create")
	if err != nil {
		return nil, err
	}
	defer stage.Remove()
	b := &build{opts: opts, stage: stage, tally: &tally{}, creds: &credentialScan{}}
	return b.run(ctx)
}

type build struct {
	opts   Options
	stage  *scratch.Dir
	layout *stagingImages
	tally  *tally
	creds  *credentialScan
	timer  phaseTimer
	report Report
	mc     machineconfig.Config
	// rpmOstree is the root's rpm-ostree status JSON, or nil.
	rpmOstree []byte
	// node is the deployment the node runs, and its origin.
	node nodeDeployment
	info labels.ClusterInfo
	// precache is the containers.list, or nil for none.
	precache []string
	// dest is where the seed goes (newDestination): it takes the new
	// layers as they are made.
	dest destination
}

// run is the build: read the root, choose the destination (and start
// opening the base), capture the root into layers the destination takes
// as they are made, assemble the seed on the base, and finish the
// destination with it.
func (b *build) run(ctx context.Context) (*Report, error) {
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	c, err := b.newCapture()
	if err != nil {
		return nil, err
	}
	dest, base, err := b.newDestination(ctx)
	if err != nil {
		return nil, err
	}
	defer base.close()
	defer dest.discard()
	b.dest = dest
	layers, img, err := b.captureSeed(ctx, c, base)
	if err != nil {
		return nil, err
	}
	b.timer.end("capture")
	seed, err := b.assemble(img, layers)
	if err != nil {
		return nil, err
	}
	b.timer.end("commit")
	written, err := dest.finish(ctx, seed, layers)
	if err != nil {
		return nil, err
	}
	b.report.Destinations = append(b.report.Destinations, written...)
	b.timer.end("write")
	return b.finalReport(), nil
}

// prepare reads what the build needs of the root before the capture: its
// MachineConfig, rpm-ostree status, cluster facts, the deployment it runs
// and its precache list; and makes the staging folder.
func (b *build) prepare(ctx context.Context) error {
	o := &b.opts
	b.report = Report{Layout: o.Layout.String(), Destinations: []string{}, Layers: []LayerReport{}, Skipped: []Skipped{}}
	var err error
	if b.layout, err = newStagingImages(filepath.Join(b.stage.Path, "image")); err != nil {
		return err
	}
	if b.mc, err = machineconfig.Read(o.Rootfs); err != nil {
		return err
	}
	b.rpmOstree = rpmOstreeStatus(ctx, o.Host, o.Rootfs)
	b.info = b.clusterInfo()
	if err := b.readNode(); err != nil {
		return err
	}
	b.timer.begin()
	if b.precache = o.ContainersList; b.precache == nil {
		if b.precache, err = readContainersList(o.Rootfs, filepath.Join(b.stage.Path, "node-store")); err != nil {
			return err
		}
	}
	return nil
}

// captureSeed captures the root into the seed's layers (b.dest takes them
// as they are made) while the base is opened, and returns both, once the
// capture found nothing to refuse.
func (b *build) captureSeed(ctx context.Context, c *capture, base *pendingBase) ([]namedLayer, *baseImage, error) {
	stop := b.progress(c)
	layers, err := b.captureLayers(ctx, c)
	stop()
	if err != nil {
		// No need to wait for the base's layers to be written.
		base.stop()
	}
	img, baseErr := base.wait()
	if err != nil {
		return nil, nil, err
	}
	if baseErr != nil {
		return nil, nil, baseErr
	}
	if err := b.refusals(); err != nil {
		return nil, nil, err
	}
	return layers, img, nil
}

// finalReport completes the report: the node's deployment, what the
// capture counted and skipped, and the phases.
func (b *build) finalReport() *Report {
	if b.node.known {
		b.report.Deployment = b.node.dep.ID()
	}
	b.report.Origin = b.node.originFrom
	b.report.Files, b.report.Bytes, _ = b.tally.Snapshot()
	b.report.Skipped = append(b.report.Skipped, b.tally.skipped...)
	b.report.Phases = b.timer.phases
	return &b.report
}

// refusals turns what the capture found into errors.
func (b *build) refusals() error {
	if len(b.tally.badUTF8) > 0 {
		return &NonUTF8Error{Paths: b.tally.badUTF8}
	}
	if len(b.creds.found) > 0 && !b.opts.AllowCredentials {
		return &CredentialsError{Paths: b.creds.found}
	}
	return nil
}

// readNode finds the deployment the node runs and its origin (see
// findNodeDeployment). The tarball layouts need them, and their version:
// the agent's prep deploys the commit rpm-ostree.json names, restores the
// origin, and refuses a seed whose manifest.json names no version or
// another than the one asked for. A native seed needs only the origin,
// which it can make from its base's name.
func (b *build) readNode() error {
	o := &b.opts
	live := o.Host.IsRoot(o.Rootfs)
	cmdline := ""
	if live && b.rpmOstree == nil {
		cmdline = o.Host.KernelCmdline()
	}
	node, err := findNodeDeployment(o.Rootfs, b.rpmOstree, cmdline, live, b.mc.OSImageURL)
	if err != nil {
		if o.Layout != labels.Native {
			return fmt.Errorf("reading the deployment the node runs: %w", err)
		}
		fmt.Fprintf(o.Progress, "Warning: %v; the seed carries no rpm-ostree.json\n", err)
		b.rpmOstree = nil
		node, _ = findNodeDeployment(o.Rootfs, nil, cmdline, live, b.mc.OSImageURL)
	}
	if node.origin == nil && o.Layout == labels.Native && o.Base != nil && o.Base.DockerReference() != nil {
		node.origin = []byte(labels.ImageOrigin(o.Base.DockerReference().String()))
		node.originFrom = "made from the base image's name"
	}
	b.node = node
	if o.Layout != labels.Native && b.info.SeedClusterOCPVersion == "" {
		return fmt.Errorf("cannot tell the seed cluster's OpenShift version (%s of %s has no %s annotation), which the upstream agent's prep checks: give --cluster-info with seed_cluster_ocp_version",
			labels.ClusterInfoFile, machineconfig.Path, machineconfig.ReleaseVersionAnnotation)
	}
	return nil
}

// clusterInfo is --cluster-info, or what the root tells.
func (b *build) clusterInfo() labels.ClusterInfo {
	if b.opts.ClusterInfo != nil {
		return *b.opts.ClusterInfo
	}
	c := labels.ClusterInfo{SeedClusterOCPVersion: b.mc.ReleaseVersion}
	if h, err := os.ReadFile(filepath.Join(b.opts.Rootfs, "etc/hostname")); err == nil {
		c.SNOHostname = strings.TrimSpace(string(h))
	}
	return c
}

type namedLayer struct {
	name string
	layerResult
}

// captureLayers streams the root into the layers of the chosen layout.
// Every layout carries the same /etc changes.
func (b *build) captureLayers(ctx context.Context, c *capture) ([]namedLayer, error) {
	changes, err := diffEtc(b.opts.Rootfs, c.excl.match, keepNativeXattr)
	if err != nil {
		return nil, err
	}
	b.report.EtcChanged, b.report.EtcDeleted = len(changes.changed), len(changes.deleted)
	switch b.opts.Layout {
	case labels.Native:
		return b.nativeLayers(ctx, c, changes)
	default:
		return b.tarballLayers(ctx, c, changes)
	}
}

func (b *build) newCapture() (*capture, error) {
	mounts, err := mountPoints(b.opts.Rootfs, "var", "etc")
	if err != nil {
		return nil, err
	}
	patterns := append(append([]string{}, DefaultVarExcludes...), DefaultEtcExcludes...)
	excl := newExcluder(append(patterns, b.opts.Excludes...))
	// Files the MachineConfig daemon manages under /var are always
	// captured: without them the pool degrades after the pivot.
	for _, f := range b.mc.Files {
		if rel := strings.TrimPrefix(filepath.Clean(f), "/"); strings.HasPrefix(rel, "var/") {
			excl.keep(rel)
		}
	}
	// Local destinations and their partials are being written while the
	// root is captured: a seed written under the root never holds itself.
	skip := append([]string{b.stage.Path}, b.opts.ExcludePaths...)
	for _, d := range b.opts.Destinations {
		if p := imageref.LocalPath(d); p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				skip = append(skip, abs, imageref.PartialPath(abs))
			}
		}
	}
	for _, p := range skip {
		if rel, err := filepath.Rel(b.opts.Rootfs, p); err == nil && !strings.HasPrefix(rel, "..") {
			excl.excludePath(filepath.ToSlash(rel))
		}
	}
	return &capture{root: b.opts.Rootfs, excl: excl, mounts: mounts, tally: b.tally, creds: b.creds}, nil
}

func (b *build) clamp() time.Time {
	if b.opts.Timestamp != nil {
		return *b.opts.Timestamp
	}
	return time.Time{}
}

func (b *build) created() time.Time {
	if b.opts.Timestamp != nil {
		return b.opts.Timestamp.UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}

func (b *build) nativeLayers(ctx context.Context, c *capture, changes etcChanges) ([]namedLayer, error) {
	varLayer, err := b.dest.layer(ctx, b.opts.Compression, func(w io.Writer) error {
		ew := newEntryWriter(ctxWriter{ctx, w}, b.clamp(), keepNativeXattr, false, b.tally)
		if err := c.tree(ew, "var", func(rel string) string { return rel }); err != nil {
			return err
		}
		return ew.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("capturing /var: %w", err)
	}
	etcLayer, err := b.dest.layer(ctx, b.opts.Compression, func(w io.Writer) error {
		ew := newEntryWriter(ctxWriter{ctx, w}, b.clamp(), keepNativeXattr, false, b.tally)
		if err := b.seedDirs(ew); err != nil {
			return err
		}
		if err := c.etcEntries(ew, changes, seedDir+"/etc/"); err != nil {
			return err
		}
		if err := ew.file(seedDir+"/"+deletionsName, 0o644, b.created(), deletionsList(changes.deleted)); err != nil {
			return err
		}
		return ew.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("capturing /etc changes: %w", err)
	}
	metaLayer, err := b.dest.layer(ctx, b.opts.Compression, func(w io.Writer) error {
		ew := newEntryWriter(w, b.clamp(), keepNativeXattr, false, b.tally)
		if err := b.writeMeta(ew); err != nil {
			return err
		}
		return ew.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("writing seed metadata: %w", err)
	}
	return []namedLayer{{labels.VarLayer, varLayer}, {"etc", etcLayer}, {"seed", metaLayer}}, nil
}

// seedDirs writes the folders above the seed's files.
func (b *build) seedDirs(ew *entryWriter) error {
	for _, d := range []string{"usr/lib/openshift", seedDir} {
		if err := ew.dir(d, 0o755, b.created()); err != nil {
			return err
		}
	}
	return nil
}

// deletionsList is etc.deletions: the removed defaults, a folder's
// entries before the folder. The upstream agent's prep removes each line
// with a plain remove, which fails on a folder that is not empty yet
// (internal/prep, removeETCDeletions); seedbuild's own consumers remove
// whole trees and do not mind the order.
func deletionsList(deleted []string) []byte {
	sorted := slices.Clone(deleted)
	sort.Sort(sort.Reverse(sort.StringSlice(sorted)))
	var sb strings.Builder
	for _, d := range sorted {
		sb.WriteString("/etc/" + d + "\n")
	}
	return []byte(sb.String())
}

// allKargs is the MachineConfig kernel arguments then --karg.
func (b *build) allKargs() []string {
	return append(append([]string{}, b.mc.KernelArguments...), b.opts.Kargs...)
}

// seedJSONFiles are the metadata files every layout carries.
func (b *build) seedJSONFiles() (map[string][]byte, error) {
	info, err := b.info.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding cluster info: %w", err)
	}
	files := map[string][]byte{clusterInfoMan: append(info, '\n')}
	if b.mc.Raw != nil {
		files[labels.MachineConfigFile] = b.mc.Raw
	}
	// The agent's prep copies containers.list whatever it holds, and
	// fails when it is missing: it is there even when empty.
	files[labels.ContainersListFile] = nil
	if len(b.precache) > 0 {
		files[labels.ContainersListFile] = []byte(strings.Join(b.precache, "\n") + "\n")
	}
	if b.node.known {
		files[labels.RpmOstreeFile] = b.rpmOstree
		if d, err := labels.BootedDeployment(b.rpmOstree); err != nil || d != b.node.dep {
			// No rpm-ostree on the node, or --ostree-ref chose another
			// commit: the document is made from the deployment.
			files[labels.RpmOstreeFile] = labels.RpmOstreeStatus(b.node.dep, string(b.node.origin))
		}
	}
	switch {
	case b.node.origin == nil:
	case b.opts.Layout == labels.Native:
		files[labels.OriginFile] = b.node.origin
	case b.node.known:
		files[labels.AgentOriginFile(b.node.dep)] = b.node.origin
	}
	return files, nil
}

func (b *build) writeMeta(ew *entryWriter) error {
	t := b.created()
	if err := b.seedDirs(ew); err != nil {
		return err
	}
	files, err := b.seedJSONFiles()
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		if err := ew.file(seedDir+"/"+name, 0o644, t, files[name]); err != nil {
			return err
		}
	}
	if err := ew.file(applyScript, 0o755, t, []byte(applyEtcScript)); err != nil {
		return err
	}
	for _, d := range []string{"usr/lib/bootc", labels.KargsDir[1:], "usr/lib/systemd", unitDir, unitDir + "/multi-user.target.wants"} {
		if err := ew.dir(d, 0o755, t); err != nil {
			return err
		}
	}
	if err := ew.file(kargsFile, 0o644, t, kargsd.Render("Kernel arguments of the seed node (MachineConfig) and seedbuild --karg.", b.allKargs())); err != nil {
		return err
	}
	if err := ew.file(unitDir+"/"+unitName, 0o644, t, []byte(applyEtcUnit)); err != nil {
		return err
	}
	return ew.symlink(unitDir+"/multi-user.target.wants/"+unitName, "../"+unitName, t)
}

// assemble makes the seed's config and manifest from the base (nil for a
// classic seed) and the new layers, and fills the report.
func (b *build) assemble(base *baseImage, layers []namedLayer) (*seedImage, error) {
	seed := labels.Seed{ClusterInfo: b.info, BootcSeed: b.opts.Layout != labels.Classic, Bootable: b.opts.Layout != labels.Classic}
	seed.FormatVersion = labels.FormatTarball
	if b.opts.Layout == labels.Native {
		seed.FormatVersion = labels.FormatNative
	}
	if b.opts.Base != nil {
		seed.BaseName = baseName(b.opts.Base)
	}
	var baseConfig *imgspecv1.Image
	if base != nil {
		baseConfig = &base.config
		seed.BaseDigest = base.digest.String()
		b.report.Base, b.report.BaseDigest = imageref.Display(b.opts.Base), seed.BaseDigest
	}
	lbls, err := seed.Labels()
	if err != nil {
		return nil, err
	}
	cfg := imageConfig(baseConfig, lbls, layers, b.created(), "seedbuild "+b.opts.Layout.String()+" seed")
	img, err := newSeedImage(cfg, base, layers, seed.Annotations(), b.layout)
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		b.report.Layers = append(b.report.Layers, LayerReport{
			Name: l.name, Digest: l.desc.Digest.String(), DiffID: l.diffID.String(), MediaType: l.desc.MediaType,
			Size: l.desc.Size, Uncompressed: l.uncompressed,
		})
	}
	b.report.ImageID = img.manifest.Config.Digest.String()
	b.report.ManifestDigest = img.manifestDescriptor().Digest.String()
	b.report.FormatVersion = seed.FormatVersion
	return img, nil
}

// baseName is the base image's name for the provenance annotation.
func baseName(ref types.ImageReference) string {
	if named := ref.DockerReference(); named != nil {
		return named.String()
	}
	return imageref.Display(ref)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
