package deployer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadTarget(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	write("etc/machine-config-daemon/currentconfig", `{"spec":{"fips":true}}`)
	write("etc/mco/proxy.env", "HTTPS_PROXY=http://proxy.example.com:3128\nNO_PROXY=.cluster.local\n")
	write("etc/systemd/system/var-lib-containers.mount", "[Mount]\nWhat=/dev/sdb1\nWhere=/var/lib/containers\n")
	write("usr/lib/modules/5.14.0-570.el9_6.aarch64/vmlinuz", "k")
	got := ReadTarget(root)
	if got.FIPS == nil || !*got.FIPS || got.Proxy == nil || !*got.Proxy || got.UserCABundle == nil || *got.UserCABundle ||
		got.ContainerStorageMountpointTarget == nil || *got.ContainerStorageMountpointTarget != "/var/lib/containers" || got.Architecture != "arm64" {
		t.Errorf("ReadTarget() = %+v", got)
	}
	empty := ReadTarget(t.TempDir())
	if empty.FIPS != nil || empty.Proxy != nil || empty.ContainerStorageMountpointTarget != nil {
		t.Errorf("ReadTarget(empty root) = %+v, want unknowns left unset", empty)
	}
}
