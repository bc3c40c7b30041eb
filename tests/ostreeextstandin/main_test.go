package main

import "testing"

// TestDeployOrigin: the origin's container-image-reference is
// --target-imgref when given, else the source, as ostree-ext writes it.
func TestDeployOrigin(t *testing.T) {
	src := "ostree-unverified-image:containers-storage:0123"
	for _, tt := range []struct{ target, want string }{
		{"", "[origin]\ncontainer-image-reference=" + src + "\n"},
		{"ostree-unverified-registry:example.org/os:1", "[origin]\ncontainer-image-reference=ostree-unverified-registry:example.org/os:1\n"},
	} {
		if got := deployOrigin(record{Imgref: src, TargetImgref: tt.target}); got != tt.want {
			t.Errorf("deployOrigin(target %q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
