package labels

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// TrustBundle is the additionalTrustBundle part of the cluster info.
type TrustBundle struct {
	HasUserCaBundle    bool   `json:"hasUserCaBundle"`
	ProxyConfigmapName string `json:"proxyConfigmapName"`
}

// ClusterInfo is the seed cluster's facts, as the upstream agent writes
// them into the seed_cluster_info label. Keys it does not know are kept in
// Extra and written back unchanged.
type ClusterInfo struct {
	SeedClusterOCPVersion            string       `json:"seed_cluster_ocp_version,omitempty"`
	BaseDomain                       string       `json:"base_domain,omitempty"`
	ClusterName                      string       `json:"cluster_name,omitempty"`
	NodeIP                           string       `json:"node_ip,omitempty"`
	NodeIPs                          []string     `json:"node_ips,omitempty"`
	ReleaseRegistry                  string       `json:"release_registry,omitempty"`
	MirrorRegistryConfigured         bool         `json:"mirror_registry_configured"`
	SNOHostname                      string       `json:"sno_hostname,omitempty"`
	RecertImagePullSpec              string       `json:"recert_image_pull_spec,omitempty"`
	HasProxy                         bool         `json:"has_proxy"`
	HasFIPS                          bool         `json:"has_fips"`
	AdditionalTrustBundle            *TrustBundle `json:"additionalTrustBundle,omitempty"`
	ContainerStorageMountpointTarget string       `json:"container_storage_mountpoint_target,omitempty"`
	IngressCertificateCN             string       `json:"ingress_certificate_cn,omitempty"`
	MachineNetworks                  []string     `json:"machine_networks,omitempty"`

	// Extra holds the keys this version does not know, verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// clusterInfoFields is ClusterInfo without its methods, to marshal the
// known keys with the struct tags.
type clusterInfoFields ClusterInfo

// ClusterInfoError is a malformed cluster-info document.
type ClusterInfoError struct {
	// Offset is the byte offset of the error in the JSON, when known.
	Offset int64
	Err    error
}

func (e *ClusterInfoError) Error() string {
	return fmt.Sprintf("parsing seed cluster info at byte %d: %v", e.Offset, e.Err)
}

func (e *ClusterInfoError) Unwrap() error { return e.Err }

// ParseClusterInfo decodes a cluster-info JSON document.
func ParseClusterInfo(data []byte) (ClusterInfo, error) {
	var c ClusterInfo
	err := c.UnmarshalJSON(data)
	return c, err
}

// UnmarshalJSON decodes the known keys and keeps the rest in Extra.
// Errors are *ClusterInfoError with the position of the fault.
func (c *ClusterInfo) UnmarshalJSON(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return &ClusterInfoError{Offset: jsonOffset(err), Err: err}
	}
	if all == nil {
		return &ClusterInfoError{Err: errors.New("want a JSON object, got null")}
	}
	var known clusterInfoFields
	if err := json.Unmarshal(data, &known); err != nil {
		return &ClusterInfoError{Offset: jsonOffset(err), Err: err}
	}
	*c = ClusterInfo(known)
	for _, k := range knownKeys {
		delete(all, k)
	}
	if len(all) > 0 {
		c.Extra = all
	}
	return nil
}

// MarshalJSON writes the known keys and Extra as one compact object with
// sorted keys.
func (c ClusterInfo) MarshalJSON() ([]byte, error) {
	known, err := json.Marshal(clusterInfoFields(c))
	if err != nil {
		return nil, err
	}
	merged := map[string]json.RawMessage{}
	if err := json.Unmarshal(known, &merged); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, dup := merged[k]; !dup {
			merged[k] = v
		}
	}
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var knownKeys = []string{
	"seed_cluster_ocp_version", "base_domain", "cluster_name", "node_ip", "node_ips",
	"release_registry", "mirror_registry_configured", "sno_hostname", "recert_image_pull_spec",
	"has_proxy", "has_fips", "additionalTrustBundle", "container_storage_mountpoint_target",
	"ingress_certificate_cn", "machine_networks",
}

func jsonOffset(err error) int64 {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return syn.Offset
	case errors.As(err, &typ):
		return typ.Offset
	}
	return 0
}
