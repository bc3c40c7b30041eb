package deployer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/hostroot"
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
	write("etc/systemd/system/kubelet.service.d/20-nodenet.conf", "[Service]\nEnvironment=\"KUBELET_NODE_IP=192.0.2.7\" \"KUBELET_NODE_IPS=192.0.2.7,2001:db8::7\"\n")
	write("etc/containers/registries.conf", "[[registry]]\nlocation = \"quay.io/openshift-release-dev\"\n\n  [[registry.mirror]]\n  location = \"mirror.example.com/ocp\"\n")
	got, err := ReadTarget(hostroot.Host{}, root)
	if err != nil {
		t.Fatal(err)
	}
	if got.FIPS == nil || !*got.FIPS || got.Proxy == nil || !*got.Proxy || got.UserCABundle == nil || *got.UserCABundle ||
		got.ContainerStorageMountpointTarget == nil || *got.ContainerStorageMountpointTarget != "/dev/sdb1" || got.Architecture != "arm64" ||
		got.RunningOCPVersion != "4.19.7" || got.OCPVersion != "" || !slices.Equal(got.NodeIPs, []string{"192.0.2.7", "2001:db8::7"}) ||
		got.MirrorRegistryConfigured == nil || !*got.MirrorRegistryConfigured {
		t.Errorf("ReadTarget(hostroot.Host{}, ) = %+v", got)
	}
	empty, err := ReadTarget(hostroot.Host{}, t.TempDir())
	if err != nil || empty.FIPS != nil || empty.Proxy != nil || empty.ContainerStorageMountpointTarget != nil || empty.NodeIPs != nil || empty.MirrorRegistryConfigured != nil {
		t.Errorf("ReadTarget(hostroot.Host{}, empty root) = %+v, %v; want unknowns left unset", empty, err)
	}
	for _, bad := range []string{filepath.Join(root, "nonexistent"), filepath.Join(root, "etc/mco/proxy.env")} {
		if _, err := ReadTarget(hostroot.Host{}, bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ReadTarget(hostroot.Host{}, %s) error = %v, want one naming it", bad, err)
		}
	}
}

func TestInheritedKargs(t *testing.T) {
	for _, tc := range []struct {
		name, cmdline string
		want          []string
	}{
		{"rhcos", "BOOT_IMAGE=(hd0,gpt3)/ostree/rhcos-abc/vmlinuz-5.14.0 ignition.platform.id=metal ostree=/ostree/boot.1/rhcos/abc/0 root=UUID=1234 rw rootflags=prjquota boot=UUID=5678 console=tty0 console=ttyS0,115200n8 systemd.unified_cgroup_hierarchy=1 ibu=4.19.0",
			[]string{"ignition.platform.id=metal", "root=UUID=1234", "rw", "rootflags=prjquota", "boot=UUID=5678", "console=tty0", "console=ttyS0,115200n8"}},
		{"vm", "root=/dev/vda rw console=ttyS0 ostree=/ostree/boot.1/node/abc/0 psi=0", []string{"root=/dev/vda", "rw", "console=ttyS0"}},
		{"rd and ro", "ro rd.luks.uuid=x rd.break initrd=/x rootwait", []string{"ro", "rd.luks.uuid=x", "rd.break"}},
		{"lookalikes", "rootdelay=5 consoleblank=0 bootdev=x rwx", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inheritedKargs(tc.cmdline); !slices.Equal(got, tc.want) {
				t.Errorf("inheritedKargs(%q) = %q, want %q", tc.cmdline, got, tc.want)
			}
		})
	}
}
