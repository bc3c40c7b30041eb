package standin

import (
	"strings"
	"testing"
)

func TestEscapeRef(t *testing.T) {
	tests := []struct{ in, want string }{
		// The example in refescape.rs's own tests.
		{"registry:quay.io/coreos/fedora:latest", "registry_3A_quay_2E_io/coreos/fedora_3A_latest"},
		{"a_b", "a__b"},
		{"/lead", "_2F_lead"},
		{"trail/", "trail_2F_"},
		{"a//b", "a/_2F_b"},
		{"sha256:0a", "sha256_3A_0a"},
	}
	for _, tt := range tests {
		if got := EscapeRef(tt.in); got != tt.want {
			t.Errorf("EscapeRef(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := ImageRef("ostree-unverified-image:containers-storage:ab"); got != "ostree/container/image/ostree-unverified-image_3A_containers-storage_3A_ab" {
		t.Errorf("ImageRef = %q", got)
	}
	if got := BlobRef("sha256:0a"); got != "ostree/container/blob/sha256_3A_0a" {
		t.Errorf("BlobRef = %q", got)
	}
}

func TestVarRules(t *testing.T) {
	tests := []struct {
		version       string
		retains       bool
		fillsEmpty    bool
		fillsNonEmpty bool
		parses        bool
	}{
		{"2022.7", false, false, false, true},
		{"2024.2", false, false, false, true},
		{"2024.3", true, true, false, true},
		{"2025.2", true, true, false, true},
		{"garbage", false, false, false, false},
	}
	for _, tt := range tests {
		if _, _, ok := ParseOstreeVersion(tt.version); ok != tt.parses {
			t.Errorf("ParseOstreeVersion(%q) ok = %v", tt.version, ok)
		}
		if got := RetainsVar(tt.version); got != tt.retains {
			t.Errorf("RetainsVar(%s) = %v, want %v", tt.version, got, tt.retains)
		}
		if got := FillsVar(tt.version, true); got != tt.fillsEmpty {
			t.Errorf("FillsVar(%s, empty) = %v, want %v", tt.version, got, tt.fillsEmpty)
		}
		if got := FillsVar(tt.version, false); got != tt.fillsNonEmpty {
			t.Errorf("FillsVar(%s, not empty) = %v, want %v", tt.version, got, tt.fillsNonEmpty)
		}
	}
}

func TestCheckBootable(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		arch   string
		err    string
	}{
		{"containers.bootc", map[string]string{"containers.bootc": "1"}, "amd64", ""},
		{"ostree.bootable", map[string]string{"ostree.bootable": "true"}, "amd64", ""},
		{"no label", map[string]string{"other": "1"}, "amd64", "does not have ostree.bootable label"},
		{"another architecture", map[string]string{"containers.bootc": "1"}, "arm64", "Image has architecture arm64; expected amd64"},
	}
	for _, tt := range tests {
		err := CheckBootable(tt.labels, tt.arch, "amd64")
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: CheckBootable = %v, want %q", tt.name, err, tt.err)
		}
	}
}

func TestStagesAndRelabels(t *testing.T) {
	if !Stages(true) || Stages(false) {
		t.Errorf("Stages: want staging on a booted sysroot only")
	}
	for _, tt := range []struct {
		derived bool
		policy  string
		want    bool
	}{{true, "targeted", true}, {true, "", false}, {false, "targeted", false}} {
		if got := Relabels(tt.derived, tt.policy); got != tt.want {
			t.Errorf("Relabels(%v, %q) = %v, want %v", tt.derived, tt.policy, got, tt.want)
		}
	}
}

func TestOriginFor(t *testing.T) {
	src := "ostree-unverified-image:containers-storage:0123"
	for _, tt := range []struct{ target, want string }{
		{"", "[origin]\ncontainer-image-reference=" + src + "\n"},
		{"ostree-unverified-registry:example.org/os:1", "[origin]\ncontainer-image-reference=ostree-unverified-registry:example.org/os:1\n"},
	} {
		if got := OriginFor(src, tt.target); got != tt.want {
			t.Errorf("OriginFor(target %q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
