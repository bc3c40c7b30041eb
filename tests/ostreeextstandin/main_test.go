package main

import "testing"

// TestImageName: the image is kept under the target's reference when one
// is given, without the signature-verification prefix.
func TestImageName(t *testing.T) {
	src := "ostree-unverified-image:containers-storage:0123"
	for _, tt := range []struct{ target, want string }{
		{"", "containers-storage:0123"},
		{"ostree-unverified-registry:example.org/os:1", "registry:example.org/os:1"},
	} {
		if got := imageName(record{Imgref: src, TargetImgref: tt.target}); got != tt.want {
			t.Errorf("imageName(target %q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
