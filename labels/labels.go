// Package labels is the seed image label and annotation contract: the keys,
// the seed kinds they describe, and the cluster facts a consumer checks
// before deploying. It does no I/O.
package labels

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Label and annotation keys of the contract.
const (
	// FormatVersionLabel holds the seed layout version.
	FormatVersionLabel = "com.openshift.lifecycle-agent.seed_format_version"
	// ClusterInfoLabel holds the seed cluster's facts as compact JSON.
	ClusterInfoLabel = "com.openshift.lifecycle-agent.seed_cluster_info"
	// BootcSeedLabel is "true" on seeds built FROM a bootable OS image.
	BootcSeedLabel = "com.openshift.lifecycle-agent.bootc_seed"
	// ContainersBootcLabel marks an image bootc accepts.
	ContainersBootcLabel = "containers.bootc"
	// OstreeBootableLabel marks an image older ostree-ext clients accept.
	OstreeBootableLabel = "ostree.bootable"
	// BaseNameAnnotation names the OS image the seed was built on.
	BaseNameAnnotation = "org.opencontainers.image.base.name"
	// BaseDigestAnnotation is the manifest digest of that OS image.
	BaseDigestAnnotation = "org.opencontainers.image.base.digest"
)

// Seed format versions.
const (
	// FormatTarball is the upstream layout: var.tgz, etc.tgz and friends.
	FormatTarball = 4
	// FormatNative is seedbuild's layout: the node state as native layers.
	FormatNative = 5
)

// The seed layout: where a seed's files live inside its image. create
// (builder) writes them and deploy (deployer) reads them; both take the
// names from here.
const (
	// SeedDir is where a seed's metadata files live in every layout.
	SeedDir = "/usr/lib/openshift/seed"
	// SeedEtcDir holds the seed node's /etc changes as real files (native
	// layout).
	SeedEtcDir = SeedDir + "/etc"
	// DeletionsFile, under SeedDir, lists the /etc defaults the seed node
	// removed, one absolute path a line.
	DeletionsFile = "etc.deletions"
	// MachineConfigFile, under SeedDir, is the seed node's rendered
	// MachineConfig.
	MachineConfigFile = "mco-currentconfig.json"
	// ClusterInfoFile, under SeedDir, is the seed cluster's facts.
	ClusterInfoFile = "manifest.json"
	// RpmOstreeFile, under SeedDir, is `rpm-ostree status -v --json` of
	// the seed node: the upstream agent's prep reads the booted
	// deployment's id from it (see BootedDeployment).
	RpmOstreeFile = "rpm-ostree.json"
	// ContainersListFile, under SeedDir, lists the seed node's workload
	// images, one a line: the agent precaches them, and its prep copies
	// the file (and fails when it is missing).
	ContainersListFile = "containers.list"
	// OriginFile, under SeedDir (native layout), is the seed node's booted
	// deployment's .origin: every deploy route leaves it as the new
	// deployment's origin, as the agent does, so rpm-ostree and the
	// machine-config daemon see the OS image the node runs. The tarball
	// layouts carry it under the agent's name, AgentOriginFile.
	OriginFile = "origin"
	// VarArchive, under SeedDir (tarball layouts), is the node's /var.
	VarArchive = "var.tgz"
	// EtcArchive, under SeedDir (tarball layouts), is the node's /etc
	// changes.
	EtcArchive = "etc.tgz"
	// OstreeArchive, at a classic seed's root, is the repo holding the
	// commit the node runs.
	OstreeArchive = "ostree.tgz"
	// KargsDir holds bootc's kernel argument files, *.toml; bootc reads
	// them, ostree-ext does not.
	KargsDir = "/usr/lib/bootc/kargs.d"
	// KargsFile holds the seed's kernel arguments for bootc (native layout).
	KargsFile = KargsDir + "/50-seed.toml"
	// ApplyEtcUnit lays SeedEtcDir and DeletionsFile into /etc on first
	// boot, unless EtcStamp says it was done (by deploy, or an earlier boot).
	ApplyEtcUnit = "seedbuild-apply-etc.service"
	// ApplyEtcScript is the program ApplyEtcUnit runs.
	ApplyEtcScript = SeedDir + "/apply-etc"
	// EtcStamp marks a deployment's /etc state applied.
	EtcStamp = "/etc/.seedbuild-etc-applied"
	// LayerHistory starts the image history's created_by of each layer
	// create adds; the layer's name follows (VarLayer, "etc", "seed").
	LayerHistory = "seedbuild create: "
	// VarLayer names the native layer that holds the node's /var, and
	// nothing outside it: deploy may unpack it beside the others.
	VarLayer = "var"
)

// Kind tells how a seed image is laid out and so how it is deployed.
type Kind int

// The seed kinds.
const (
	// NotASeed is an image without a seed format label.
	NotASeed Kind = iota
	// Classic is the upstream format-4 seed built FROM scratch.
	Classic
	// BootcTarball is the upstream experimental bootc seed: format 4, FROM
	// the OS image, tarballs under SeedDir.
	BootcTarball
	// Native is seedbuild's format-5 seed: node state as native layers.
	Native
)

var kindNames = map[Kind]string{
	NotASeed:     "not-a-seed",
	Classic:      "classic",
	BootcTarball: "bootc-tarball",
	Native:       "native",
}

// String returns the kind's stable name, as used in --json output.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind reads a kind's name (create --layout): native, bootc-tarball
// or classic.
func ParseKind(name string) (Kind, error) {
	for _, k := range []Kind{Native, BootcTarball, Classic} {
		if k.String() == name {
			return k, nil
		}
	}
	return NotASeed, fmt.Errorf("unknown layout %q: want native, bootc-tarball or classic", name)
}

// Bootable reports whether a seed of this kind is itself an OS image.
func (k Kind) Bootable() bool { return k == BootcTarball || k == Native }

// ErrNotASeed is returned by Parse for an image without the seed labels.
var ErrNotASeed = errors.New("not a seed image: no " + FormatVersionLabel + " label")

// UnknownFormatError is returned by Parse for a format version this
// package does not know.
type UnknownFormatError struct {
	Value string
}

func (e *UnknownFormatError) Error() string {
	return fmt.Sprintf("unknown seed format version %q (known: %d, %d)", e.Value, FormatTarball, FormatNative)
}

// Seed is what the labels and annotations of a seed image say.
type Seed struct {
	// FormatVersion is FormatTarball or FormatNative.
	FormatVersion int
	// BootcSeed is true for seeds built FROM the OS image.
	BootcSeed bool
	// Bootable is true when bootc/ostree-ext labels are present.
	Bootable bool
	// ClusterInfo describes the seed cluster.
	ClusterInfo ClusterInfo
	// BaseName and BaseDigest record the OS image the seed was built on.
	BaseName   string
	BaseDigest string
}

// Kind returns the seed's kind.
func (s Seed) Kind() Kind {
	switch {
	case s.FormatVersion == FormatNative:
		return Native
	case s.FormatVersion == FormatTarball && s.BootcSeed:
		return BootcTarball
	case s.FormatVersion == FormatTarball:
		return Classic
	}
	return NotASeed
}

// Labels returns the image labels for the seed.
func (s Seed) Labels() (map[string]string, error) {
	info, err := s.ClusterInfo.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding cluster info: %w", err)
	}
	l := map[string]string{
		FormatVersionLabel: strconv.Itoa(s.FormatVersion),
		ClusterInfoLabel:   string(info),
	}
	if s.BootcSeed {
		l[BootcSeedLabel] = "true"
	}
	if s.Bootable {
		l[ContainersBootcLabel] = "1"
		l[OstreeBootableLabel] = "1"
	}
	return l, nil
}

// Annotations returns the manifest annotations for the seed.
func (s Seed) Annotations() map[string]string {
	a := map[string]string{}
	if s.BaseName != "" {
		a[BaseNameAnnotation] = s.BaseName
	}
	if s.BaseDigest != "" {
		a[BaseDigestAnnotation] = s.BaseDigest
	}
	return a
}

// Parse reads a seed description back from image labels and manifest
// annotations (either may be nil). It returns ErrNotASeed,
// *UnknownFormatError or *ClusterInfoError.
func Parse(labels, annotations map[string]string) (Seed, error) {
	v, ok := labels[FormatVersionLabel]
	if !ok {
		return Seed{}, ErrNotASeed
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || (n != FormatTarball && n != FormatNative) {
		return Seed{}, &UnknownFormatError{Value: v}
	}
	s := Seed{
		FormatVersion: n,
		BootcSeed:     labels[BootcSeedLabel] == "true",
		Bootable:      IsBootcImage(labels),
		BaseName:      annotations[BaseNameAnnotation],
		BaseDigest:    annotations[BaseDigestAnnotation],
	}
	if raw, ok := labels[ClusterInfoLabel]; ok && strings.TrimSpace(raw) != "" {
		if err := s.ClusterInfo.UnmarshalJSON([]byte(raw)); err != nil {
			return Seed{}, err
		}
	}
	return s, nil
}

// IsBootcImage reports whether an image's labels mark it as a bootc image:
// containers.bootc or ostree.bootable set to 1, true or yes.
func IsBootcImage(labels map[string]string) bool {
	return truthy(labels[ContainersBootcLabel]) || truthy(labels[OstreeBootableLabel])
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes":
		return true
	}
	return false
}
