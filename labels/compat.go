package labels

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// Target is what a target node can tell about itself: the facts a seed's
// cluster info must match. A nil or empty field is unknown and not checked.
// Its JSON form is the `seedbuild facts` document.
type Target struct {
	// OCPVersion is the OpenShift version the node is to run.
	OCPVersion string `json:"ocp_version,omitempty"`
	// RunningOCPVersion is the OpenShift version the node runs now: the
	// seed's must be newer, as the agent requires of the version it is
	// asked for (controllers/prep_handlers.go, validateSeedOcpVersion:
	// semver, strictly higher).
	RunningOCPVersion string `json:"running_ocp_version,omitempty"`
	// Architecture is the node's GOARCH-style architecture (amd64, arm64).
	Architecture string `json:"architecture,omitempty"`
	// FIPS is whether the node runs in FIPS mode.
	FIPS *bool `json:"fips,omitempty"`
	// Proxy is whether the node has a cluster-wide proxy.
	Proxy *bool `json:"proxy,omitempty"`
	// UserCABundle is whether the node has a user CA bundle.
	UserCABundle *bool `json:"user_ca_bundle,omitempty"`
	// ProxyConfigmapName is the name of the node's trust-bundle config map.
	ProxyConfigmapName *string `json:"proxy_configmap_name,omitempty"`
	// ContainerStorageMountpointTarget is where the node mounts a separate
	// container storage (var-lib-containers.mount), or "" for none.
	ContainerStorageMountpointTarget *string `json:"container_storage_mountpoint_target,omitempty"`
	// NodeIPs are the node's IPs, primary first: the seed's node_ips must
	// have the same IP families in the same order, as the agent checks
	// after the pivot (lca-cli/postpivot, validateIPAndMachineNetworkConsistency).
	NodeIPs []string `json:"node_ips,omitempty"`
	// MachineNetworks are the cluster's machine network CIDRs, primary
	// first, checked as NodeIPs are where the seed names its own.
	MachineNetworks []string `json:"machine_networks,omitempty"`
	// MirrorRegistryConfigured is whether the node pulls through a mirror
	// registry: the agent's documentation requires a seed from a node that
	// does too, and one that does not when the target does not.
	MirrorRegistryConfigured *bool `json:"mirror_registry_configured,omitempty"`
}

// ParseTarget reads a facts document. Unknown keys are refused, naming
// the known ones: a misspelt key would otherwise leave its check undone
// without a word.
func ParseTarget(data []byte) (Target, error) {
	var t Target
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		if key, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return t, fmt.Errorf("unknown key %s; the keys are %s", key, strings.Join(targetKeys(), ", "))
		}
		return t, err
	}
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		return t, fmt.Errorf("more than one JSON value")
	}
	return t, nil
}

func targetKeys() []string {
	var keys []string
	rt := reflect.TypeOf(Target{})
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}

// Mismatch is one difference between a seed and a target.
type Mismatch struct {
	Field  string `json:"field"`
	Seed   string `json:"seed"`
	Target string `json:"target"`
	// Want says what would match, where that is not equality.
	Want string `json:"want,omitempty"`
}

func (m Mismatch) String() string {
	s := fmt.Sprintf("%s: seed has %q, target has %q", m.Field, m.Seed, m.Target)
	if m.Want != "" {
		s += "; want " + m.Want
	}
	return s
}

// CompatibleImage returns every mismatch between a seed, whose image is
// for arch (GOARCH style), and the target: the cluster info's (see
// Compatible), then the architecture's when both are known.
func CompatibleImage(c ClusterInfo, arch string, t Target) []Mismatch {
	out := c.Compatible(t)
	if t.Architecture != "" && arch != "" && t.Architecture != arch {
		out = append(out, Mismatch{Field: "architecture", Seed: arch, Target: t.Architecture})
	}
	return out
}

// Compatible returns every mismatch between the cluster info and the
// target, in a fixed order, or nil when they are compatible. The image's
// architecture is not cluster info: CompatibleImage checks it too.
func (c ClusterInfo) Compatible(t Target) []Mismatch {
	var out []Mismatch
	add := func(field, seed, target string) {
		if seed != target {
			out = append(out, Mismatch{Field: field, Seed: seed, Target: target})
		}
	}
	if t.OCPVersion != "" {
		add("seed_cluster_ocp_version", c.SeedClusterOCPVersion, t.OCPVersion)
	}
	if t.RunningOCPVersion != "" && !newerVersion(c.SeedClusterOCPVersion, t.RunningOCPVersion) {
		out = append(out, Mismatch{Field: "seed_cluster_ocp_version", Seed: c.SeedClusterOCPVersion, Target: t.RunningOCPVersion,
			Want: "a seed of a version newer than the one the target runs (running_ocp_version)"})
	}
	seedIPs := c.NodeIPs
	if len(seedIPs) == 0 && c.NodeIP != "" {
		seedIPs = []string{c.NodeIP}
	}
	if len(seedIPs) > 0 && len(t.NodeIPs) > 0 {
		if a, b := ipFamilies(seedIPs), ipFamilies(t.NodeIPs); a != b {
			out = append(out, Mismatch{Field: "node_ips", Seed: a, Target: b, Want: "the same IP families in the same order (the first is the primary)"})
		}
	}
	if len(c.MachineNetworks) > 0 && len(t.MachineNetworks) > 0 {
		if a, b := ipFamilies(c.MachineNetworks), ipFamilies(t.MachineNetworks); a != b {
			out = append(out, Mismatch{Field: "machine_networks", Seed: a, Target: b, Want: "the same IP families in the same order (the first is the primary)"})
		}
	}
	if t.MirrorRegistryConfigured != nil {
		add("mirror_registry_configured", strconv.FormatBool(c.MirrorRegistryConfigured), strconv.FormatBool(*t.MirrorRegistryConfigured))
	}
	if t.Proxy != nil {
		add("has_proxy", strconv.FormatBool(c.HasProxy), strconv.FormatBool(*t.Proxy))
	}
	if t.FIPS != nil {
		add("has_fips", strconv.FormatBool(c.HasFIPS), strconv.FormatBool(*t.FIPS))
	}
	tb := TrustBundle{}
	if c.AdditionalTrustBundle != nil {
		tb = *c.AdditionalTrustBundle
	}
	if t.UserCABundle != nil {
		add("additionalTrustBundle.hasUserCaBundle", strconv.FormatBool(tb.HasUserCaBundle), strconv.FormatBool(*t.UserCABundle))
	}
	if t.ProxyConfigmapName != nil {
		add("additionalTrustBundle.proxyConfigmapName", tb.ProxyConfigmapName, *t.ProxyConfigmapName)
	}
	if t.ContainerStorageMountpointTarget != nil && (c.ContainerStorageMountpointTarget != "" || *t.ContainerStorageMountpointTarget != "") {
		add("container_storage_mountpoint_target", c.ContainerStorageMountpointTarget, *t.ContainerStorageMountpointTarget)
	}
	return out
}

// newerVersion says whether the OpenShift version seed is newer than
// running, by semver (pre-releases before their release), as the agent
// compares them. A version that is not semver is not newer.
func newerVersion(seed, running string) bool {
	a, b := "v"+seed, "v"+running
	return semver.IsValid(a) && semver.IsValid(b) && semver.Compare(a, b) > 0
}

// ipFamilies lists the family of each address or CIDR, in order:
// "ipv4,ipv6" for a dual-stack node whose primary is IPv4. One that is
// neither is "unknown".
func ipFamilies(addrs []string) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		a, _, _ = strings.Cut(strings.TrimSpace(a), "/")
		switch ip, err := netip.ParseAddr(a); {
		case err != nil:
			out[i] = "unknown"
		case ip.Unmap().Is4():
			out[i] = "ipv4"
		default:
			out[i] = "ipv6"
		}
	}
	return strings.Join(out, ",")
}
