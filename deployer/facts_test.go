package deployer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTarget(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	write("etc/machine-config-daemon/currentconfig", `{"metadata":{"annotations":{"machineconfiguration.openshift.io/release-image-version":"4.19.7"}},"spec":{"fips":true}}`)
	write("etc/mco/proxy.env", "HTTPS_PROXY=http://proxy.example.com:3128\nNO_PROXY=.cluster.local\n")
	write("etc/systemd/system/var-lib-containers.mount", "[Mount]\nWhat=/dev/sdb1\nWhere=/var/lib/containers\n")
	write("usr/lib/modules/5.14.0-570.el9_6.aarch64/vmlinuz", "k")
	got, err := ReadTarget(root)
	if err != nil {
		t.Fatal(err)
	}
	if got.FIPS == nil || !*got.FIPS || got.Proxy == nil || !*got.Proxy || got.UserCABundle == nil || *got.UserCABundle ||
		got.ContainerStorageMountpointTarget == nil || *got.ContainerStorageMountpointTarget != "/var/lib/containers" || got.Architecture != "arm64" ||
		got.RunningOCPVersion != "4.19.7" || got.OCPVersion != "" {
		t.Errorf("ReadTarget() = %+v", got)
	}
	empty, err := ReadTarget(t.TempDir())
	if err != nil || empty.FIPS != nil || empty.Proxy != nil || empty.ContainerStorageMountpointTarget != nil {
		t.Errorf("ReadTarget(empty root) = %+v, %v; want unknowns left unset", empty, err)
	}
	for _, bad := range []string{filepath.Join(root, "nonexistent"), filepath.Join(root, "etc/mco/proxy.env")} {
		if _, err := ReadTarget(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ReadTarget(%s) error = %v, want one naming it", bad, err)
		}
	}
}
