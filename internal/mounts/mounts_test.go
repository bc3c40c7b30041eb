package mounts

import (
	"slices"
	"testing"
)

func TestUnder(t *testing.T) {
	table := `22 1 0:21 / / rw - ext4 /dev/vda1 rw
30 22 0:30 / /var/tmp/root rw - tmpfs tmpfs rw
31 30 0:31 / /var/tmp/root/var/lib/containers rw - tmpfs tmpfs rw
32 30 0:32 / /var/tmp/root/with\040space rw - tmpfs tmpfs rw
33 22 0:33 / /var/tmp/rootless rw - tmpfs tmpfs rw
34 22 0:34 / /proc rw - proc proc rw
`
	tests := []struct {
		dir  string
		want []string
	}{
		{"/var/tmp/root", []string{"/var/tmp/root/with space", "/var/tmp/root/var/lib/containers"}},
		{"/var/tmp/root/", []string{"/var/tmp/root/with space", "/var/tmp/root/var/lib/containers"}},
		{"/", []string{"/var/tmp/rootless", "/var/tmp/root/with space", "/var/tmp/root/var/lib/containers", "/var/tmp/root", "/proc"}},
		{"/nowhere", nil},
	}
	for _, tt := range tests {
		if got := under(table, tt.dir); !slices.Equal(got, tt.want) {
			t.Errorf("under(%q) = %q, want %q", tt.dir, got, tt.want)
		}
	}
	for in, want := range map[string]string{`a\040b`: "a b", `a\134b`: `a\b`, `plain`: "plain", `end\04`: `end\04`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
