package labels

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKind(t *testing.T) {
	info := `{"seed_cluster_ocp_version":"4.20.0","cluster_name":"sno"}`
	tests := []struct {
		name   string
		labels map[string]string
		want   Kind
		err    error
	}{
		{"native", map[string]string{FormatVersionLabel: "5", ClusterInfoLabel: info, ContainersBootcLabel: "1", BootcSeedLabel: "true"}, Native, nil},
		{"bootc tarball", map[string]string{FormatVersionLabel: "4", ClusterInfoLabel: info, BootcSeedLabel: "true"}, BootcTarball, nil},
		{"classic", map[string]string{FormatVersionLabel: "4", ClusterInfoLabel: info}, Classic, nil},
		{"classic bootc false", map[string]string{FormatVersionLabel: "4", BootcSeedLabel: "false"}, Classic, nil},
		{"no labels", nil, NotASeed, ErrNotASeed},
		{"other labels", map[string]string{"containers.bootc": "1"}, NotASeed, ErrNotASeed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.labels, nil)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse() error = %v, want %v", err, tt.err)
			}
			if got := s.Kind(); got != tt.want {
				t.Errorf("Parse().Kind() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name       string
		labels     map[string]string
		wantFormat bool
		wantOffset int64
	}{
		{"version 3", map[string]string{FormatVersionLabel: "3"}, true, -1},
		{"version 6", map[string]string{FormatVersionLabel: "6"}, true, -1},
		{"version text", map[string]string{FormatVersionLabel: "four"}, true, -1},
		{"truncated info", map[string]string{FormatVersionLabel: "4", ClusterInfoLabel: `{"cluster_name":"sno"`}, false, 21},
		{"garbage info", map[string]string{FormatVersionLabel: "5", ClusterInfoLabel: `{"a":1,x}`}, false, 8},
		{"wrong type", map[string]string{FormatVersionLabel: "5", ClusterInfoLabel: `{"has_fips":"yes"}`}, false, 17},
		{"array", map[string]string{FormatVersionLabel: "5", ClusterInfoLabel: `[1]`}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.labels, nil)
			var fe *UnknownFormatError
			var ce *ClusterInfoError
			switch {
			case tt.wantFormat:
				if !errors.As(err, &fe) {
					t.Fatalf("Parse() error = %v, want *UnknownFormatError", err)
				}
			default:
				if !errors.As(err, &ce) {
					t.Fatalf("Parse() error = %v, want *ClusterInfoError", err)
				}
				if ce.Offset != tt.wantOffset {
					t.Errorf("Parse() error offset = %d, want %d (%v)", ce.Offset, tt.wantOffset, err)
				}
			}
		})
	}
}

// fullInfo sets every known key.
const fullInfo = `{"additionalTrustBundle":{"hasUserCaBundle":true,"proxyConfigmapName":"user-ca-bundle"},` +
	`"base_domain":"example.com","cluster_name":"sno","container_storage_mountpoint_target":"/var/lib/containers",` +
	`"has_fips":true,"has_proxy":true,"ingress_certificate_cn":"ingress-operator@1","machine_networks":["192.0.2.0/24"],` +
	`"mirror_registry_configured":true,"node_ip":"192.0.2.10","node_ips":["192.0.2.10","2001:db8::10"],` +
	`"recert_image_pull_spec":"quay.io/edge-infrastructure/recert:v0","release_registry":"quay.io",` +
	`"seed_cluster_ocp_version":"4.20.0","sno_hostname":"sno-seed"}`

func TestClusterInfoEveryKey(t *testing.T) {
	c, err := ParseClusterInfo([]byte(fullInfo))
	if err != nil {
		t.Fatal(err)
	}
	want := ClusterInfo{
		SeedClusterOCPVersion: "4.20.0", BaseDomain: "example.com", ClusterName: "sno", NodeIP: "192.0.2.10",
		NodeIPs: []string{"192.0.2.10", "2001:db8::10"}, ReleaseRegistry: "quay.io", MirrorRegistryConfigured: true,
		SNOHostname: "sno-seed", RecertImagePullSpec: "quay.io/edge-infrastructure/recert:v0", HasProxy: true, HasFIPS: true,
		AdditionalTrustBundle:            &TrustBundle{HasUserCaBundle: true, ProxyConfigmapName: "user-ca-bundle"},
		ContainerStorageMountpointTarget: "/var/lib/containers", IngressCertificateCN: "ingress-operator@1",
		MachineNetworks: []string{"192.0.2.0/24"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseClusterInfo() mismatch (-want +got):\n%s", diff)
	}
	if c.Extra != nil {
		t.Errorf("ParseClusterInfo().Extra = %v, want none", c.Extra)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != fullInfo {
		t.Errorf("round trip = %s, want %s", out, fullInfo)
	}
}

func TestClusterInfoKeepsUnknownKeys(t *testing.T) {
	in := `{"cluster_name":"sno","future_key":{"nested":[1,2]},"has_fips":false,"has_proxy":false,"mirror_registry_configured":false,"z":"last"}`
	c, err := ParseClusterInfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Extra) != 2 {
		t.Fatalf("Extra = %v, want 2 keys", c.Extra)
	}
	s := Seed{FormatVersion: FormatNative, ClusterInfo: c}
	l, err := s.Labels()
	if err != nil {
		t.Fatal(err)
	}
	if got := l[ClusterInfoLabel]; got != in {
		t.Errorf("Labels()[info] = %s, want %s", got, in)
	}
	back, err := Parse(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back.ClusterInfo); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestSeedRoundTrip(t *testing.T) {
	for _, s := range []Seed{
		{FormatVersion: FormatNative, BootcSeed: true, Bootable: true, BaseName: "quay.io/x/rhcos:1", BaseDigest: "sha256:ab"},
		{FormatVersion: FormatTarball, BootcSeed: true},
		{FormatVersion: FormatTarball},
	} {
		t.Run(s.Kind().String(), func(t *testing.T) {
			l, err := s.Labels()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(l, s.Annotations())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("Parse(Labels()) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCompatible(t *testing.T) {
	seed, err := ParseClusterInfo([]byte(fullInfo))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		target Target
		want   []string
	}{
		{"nothing known", Target{}, nil},
		{"all equal", Target{OCPVersion: "4.20.0", FIPS: ptr(true), Proxy: ptr(true), UserCABundle: ptr(true),
			ProxyConfigmapName: ptr("user-ca-bundle"), ContainerStorageMountpointTarget: ptr("/var/lib/containers")}, nil},
		{"ocp version", Target{OCPVersion: "4.19.3"}, []string{"seed_cluster_ocp_version"}},
		{"proxy", Target{Proxy: ptr(false)}, []string{"has_proxy"}},
		{"fips", Target{FIPS: ptr(false)}, []string{"has_fips"}},
		{"ca bundle", Target{UserCABundle: ptr(false)}, []string{"additionalTrustBundle.hasUserCaBundle"}},
		{"configmap", Target{ProxyConfigmapName: ptr("other")}, []string{"additionalTrustBundle.proxyConfigmapName"}},
		{"storage", Target{ContainerStorageMountpointTarget: ptr("")}, []string{"container_storage_mountpoint_target"}},
		{"running an older version", Target{RunningOCPVersion: "4.19.9"}, nil},
		{"running an older release candidate", Target{RunningOCPVersion: "4.20.0-rc.3"}, nil},
		{"running the same version", Target{RunningOCPVersion: "4.20.0"}, []string{"seed_cluster_ocp_version"}},
		{"running a newer version", Target{RunningOCPVersion: "4.20.1"}, []string{"seed_cluster_ocp_version"}},
		{"running a version that is not semver", Target{RunningOCPVersion: "4.20"}, []string{"seed_cluster_ocp_version"}},
		{"dual stack, same order", Target{NodeIPs: []string{"198.51.100.7", "2001:db8::7"}}, nil},
		{"dual stack, IPv6 primary", Target{NodeIPs: []string{"2001:db8::7", "198.51.100.7"}}, []string{"node_ips"}},
		{"single stack IPv4", Target{NodeIPs: []string{"198.51.100.7"}}, []string{"node_ips"}},
		{"machine networks, same family", Target{MachineNetworks: []string{"198.51.100.0/24"}}, nil},
		{"machine networks, IPv6", Target{MachineNetworks: []string{"2001:db8::/64"}}, []string{"machine_networks"}},
		{"mirror on both sides", Target{MirrorRegistryConfigured: ptr(true)}, nil},
		{"mirror on the seed only", Target{MirrorRegistryConfigured: ptr(false)}, []string{"mirror_registry_configured"}},
		{"every one", Target{OCPVersion: "4.18.0", RunningOCPVersion: "4.21.0", FIPS: ptr(false), Proxy: ptr(false), UserCABundle: ptr(false),
			ProxyConfigmapName: ptr(""), ContainerStorageMountpointTarget: ptr("/mnt/c"), NodeIPs: []string{"2001:db8::7"},
			MachineNetworks: []string{"2001:db8::/64"}, MirrorRegistryConfigured: ptr(false)},
			[]string{"seed_cluster_ocp_version", "seed_cluster_ocp_version", "node_ips", "machine_networks", "mirror_registry_configured",
				"has_proxy", "has_fips", "additionalTrustBundle.hasUserCaBundle",
				"additionalTrustBundle.proxyConfigmapName", "container_storage_mountpoint_target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, m := range seed.Compatible(tt.target) {
				got = append(got, m.Field)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Compatible() fields mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCompatibleMirrorOnTargetOnly: a target that pulls through a mirror
// needs a seed from a node that did too.
func TestCompatibleMirrorOnTargetOnly(t *testing.T) {
	if got := (ClusterInfo{}).Compatible(Target{MirrorRegistryConfigured: ptr(true)}); len(got) != 1 || got[0].Field != "mirror_registry_configured" {
		t.Errorf("Compatible() = %v, want the mirror registry mismatch", got)
	}
	// A seed of the agent's older versions names one node_ip.
	if got := (ClusterInfo{NodeIP: "192.0.2.1"}).Compatible(Target{NodeIPs: []string{"2001:db8::1"}}); len(got) != 1 || got[0].Field != "node_ips" {
		t.Errorf("Compatible() = %v, want the node_ips mismatch from node_ip", got)
	}
}

func TestCompatibleEmptySeedStorage(t *testing.T) {
	var c ClusterInfo
	if got := c.Compatible(Target{ContainerStorageMountpointTarget: ptr("")}); got != nil {
		t.Errorf("Compatible() = %v, want none when neither side sets it", got)
	}
	if got := c.Compatible(Target{ContainerStorageMountpointTarget: ptr("/var/lib/containers")}); len(got) != 1 {
		t.Errorf("Compatible() = %v, want one mismatch", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("5", fullInfo)
	f.Add("4", `{"x":`)
	f.Add("x", "")
	f.Fuzz(func(t *testing.T, version, info string) {
		s, err := Parse(map[string]string{FormatVersionLabel: version, ClusterInfoLabel: info}, nil)
		if err != nil {
			return
		}
		l, err := s.Labels()
		if err != nil {
			t.Fatalf("Labels() after a good Parse: %v", err)
		}
		if _, err := Parse(l, nil); err != nil {
			t.Fatalf("Parse(Labels()) = %v", err)
		}
	})
}

func FuzzClusterInfo(f *testing.F) {
	f.Add(fullInfo)
	f.Add(`{"future":{"x":[1,2,{"y":null}]},"has_fips":true}`)
	f.Add(`{"node_ips":"not a list"}`)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseClusterInfo([]byte(in))
		if err != nil {
			var ce *ClusterInfoError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseClusterInfo error %T is not a *ClusterInfoError", err)
			}
			return
		}
		out, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON after a good parse: %v", err)
		}
		back, err := ParseClusterInfo(out)
		if err != nil {
			t.Fatalf("ParseClusterInfo(MarshalJSON()) = %v", err)
		}
		if again, _ := back.MarshalJSON(); string(again) != string(out) {
			t.Fatalf("round trip is not stable: %s then %s", out, again)
		}
	})
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name, doc string
		wantArch  string
		wantErr   string
	}{
		{"facts document", `{"architecture":"arm64","fips":false,"ocp_version":"4.20.0"}`, "arm64", ""},
		{"empty", `{}`, "", ""},
		{"misspelt key", `{"ocp-version":"4.19.0"}`, "", `unknown key "ocp-version"; the keys are ocp_version, running_ocp_version, architecture`},
		{"wrong type", `{"fips":"yes"}`, "", "fips"},
		{"two documents", `{} {}`, "", "more than one"},
		{"trailing brace", `{"fips":true} }`, "", "more than one"},
		{"not JSON", `{"fips":`, "", "unexpected EOF"},
	}
	for _, tt := range tests {
		got, err := ParseTarget([]byte(tt.doc))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want one saying %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Architecture != tt.wantArch {
			t.Errorf("%s: ParseTarget = %+v, %v", tt.name, got, err)
		}
	}
}

func TestIsBootcImage(t *testing.T) {
	tests := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{ContainersBootcLabel: "1"}, true},
		{map[string]string{OstreeBootableLabel: " True "}, true},
		{map[string]string{OstreeBootableLabel: "yes"}, true},
		{map[string]string{ContainersBootcLabel: "0", OstreeBootableLabel: "false"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsBootcImage(tt.labels); got != tt.want {
			t.Errorf("IsBootcImage(%v) = %v, want %v", tt.labels, got, tt.want)
		}
	}
}

func TestCompatibleImage(t *testing.T) {
	for _, tc := range []struct {
		name, arch string
		target     Target
		want       int
	}{
		{"same", "amd64", Target{Architecture: "amd64"}, 0},
		{"other", "amd64", Target{Architecture: "arm64"}, 1},
		{"target unknown", "amd64", Target{}, 0},
		{"seed unknown", "", Target{Architecture: "arm64"}, 0},
		{"with cluster info", "amd64", Target{Architecture: "arm64", FIPS: ptr(true)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CompatibleImage(ClusterInfo{}, tc.arch, tc.target)
			if len(got) != tc.want {
				t.Errorf("CompatibleImage(%q, %+v) = %v, want %d mismatch(es)", tc.arch, tc.target, got, tc.want)
			}
		})
	}
}
