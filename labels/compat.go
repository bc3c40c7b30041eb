package labels

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// Target is what a target node can tell about itself: the facts a seed's
// cluster info must match. A nil or empty field is unknown and not checked.
// Its JSON form is the `seedbuild facts` document.
type Target struct {
	// OCPVersion is the OpenShift version the node is to run.
	OCPVersion string `json:"ocp_version,omitempty"`
	// RunningOCPVersion is the OpenShift version the node runs now. It is
	// for people to read; nothing is checked against it, as a seed is
	// usually for a newer version.
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
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s: seed has %q, target has %q", m.Field, m.Seed, m.Target)
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
