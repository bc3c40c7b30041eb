package builder

import "testing"

func TestMatchTarPattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"var/tmp/*", "var/tmp", false},
		{"var/tmp/*", "var/tmp/a", true},
		{"var/tmp/*", "var/tmp/a/b", true},
		{"var/lib/lca", "var/lib/lca", true},
		{"var/lib/lca", "var/lib/lca/workspace/x", true},
		{"var/lib/lca", "var/lib/lcax", false},
		{"*/.bash_history", "var/home/core/.bash_history", true},
		{"*/.bash_history", "var/home/core/.bash_history_not", false},
		{"var/lib/containers/*", "var/lib/containers", false},
		{"var/lib/containers/*", "var/lib/containers/storage/overlay/x", true},
		{"etc/hostname", "etc/hostname", true},
		{"etc/hostname", "etc/hostname2", false},
		{"etc/NetworkManager/system-connections", "etc/NetworkManager/system-connections/enp1s0.nmconnection", true},
		{"*cni/multus*", "etc/cni/multus/net.d/x", true},
		{"*cni/multus*", "etc/cni/net.d/x", false},
		{"a?c", "x/abc", true},
		{"var/lib/misc/d0*", "var/lib/misc/d01/f", true},
		{"var/lib/misc/d0*", "var/lib/misc/e01/f", false},
	}
	for _, tt := range tests {
		if got := matchTarPattern(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchTarPattern(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestExcluderKeeps(t *testing.T) {
	e := newExcluder(DefaultVarExcludes)
	e.keep("var/lib/kubelet/pods/mcd/managed.conf")
	tests := []struct {
		rel  string
		want bool
	}{
		{"var/lib/kubelet/pods/mcd/managed.conf", false},
		{"var/lib/kubelet/pods/mcd", false},
		{"var/lib/kubelet/pods/mcd/other", true},
		{"var/lib/kubelet/pods/other", true},
		{"var/log/x", true},
	}
	for _, tt := range tests {
		if got := e.match(tt.rel); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.rel, got, tt.want)
		}
	}
}

func TestExcluderDefaults(t *testing.T) {
	e := newExcluder(append(append([]string{}, DefaultVarExcludes...), DefaultEtcExcludes...))
	e.excludePath("/var/lib/seedbuild-stage/")
	tests := []struct {
		rel  string
		want bool
	}{
		// Folders whose contents are left out are themselves captured.
		{"var/tmp", false},
		{"var/log", false},
		{"var/log/journal/abc/system.journal", true},
		{"var/lib/log/x", true},
		{"var/lib/cni/bin", false},
		{"var/lib/cni/bin/bridge", true},
		{"var/lib/cni/networks/ovn-k/10.0.0.2", false},
		{"var/lib/containers", false},
		{"var/lib/kubelet/pods", false},
		{"var/lib/kubelet/pods/uid/volumes/x", true},
		{"var/lib/kubelet/config.json", false},
		{"var/lib/ovn-ic/etc", false},
		{"var/lib/ovn-ic/etc/ovnnb_db.db", true},
		{"var/lib/ovn-ic/data", false},
		{"var/roothome/.bash_history", true},
		{"var/home/core/.bashrc", false},
		{"var/lib/etcd/member/snap/db", false},
		{"var/lib/seedbuild-stage", true},
		{"var/lib/seedbuild-stage2", false},
		// The /etc paths a seed never carries.
		{"etc/hosts", false},
		{"etc/NetworkManager/conf.d", false},
		{"etc/openvswitch/conf.db", true},
		{"etc/openvswitch/.conf.db.~lock~", true},
		{"etc/openvswitch/system-id.conf", false},
		{"etc/machine-config-daemon/orig/var/lib/kubelet/config.json", true},
		{"etc/machine-config-daemon/orig/etc/chrony.conf", false},
		{"etc/cni/multus/certs/x.pem", true},
		{"etc/cni/multus", true},
		{"etc/kubernetes/cni/net.d/00-ovn.conf", false},
	}
	for _, tt := range tests {
		if got := e.match(tt.rel); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.rel, got, tt.want)
		}
	}
}
