package deployer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/seedbuild/seedbuild/internal/machineconfig"
	"github.com/seedbuild/seedbuild/labels"
)

// ReadTarget reads what a target node can tell about itself from its root
// (a live / or a folder laid out like one). What it cannot read stays
// unset, to be filled by hand. A root that is not a folder is an error:
// empty facts would match any seed.
func ReadTarget(host hostroot.Host, root string) (labels.Target, error) {
	if fi, err := os.Stat(root); err != nil {
		return labels.Target{}, fmt.Errorf("reading the target root: %w", err)
	} else if !fi.IsDir() {
		return labels.Target{}, fmt.Errorf("the target root %q is not a folder", root)
	}
	t := labels.Target{Architecture: runtime.GOARCH}
	live := host.IsRoot(root)
	if !live {
		t.Architecture = rootArch(root)
	}
	if live {
		if v, known := host.FIPSEnabled(); known {
			t.FIPS = &v
		}
	}
	if cfg, err := machineconfig.ReadFile(filepath.Join(root, machineconfig.Path)); err == nil {
		t.RunningOCPVersion = cfg.ReleaseVersion
		if t.FIPS == nil {
			v := cfg.FIPS
			t.FIPS = &v
		}
	}
	// The MachineConfig daemon writes the cluster proxy into this file.
	if data, err := os.ReadFile(filepath.Join(root, "etc/mco/proxy.env")); err == nil {
		v := proxySet(string(data))
		t.Proxy = &v
	} else if os.IsNotExist(err) && dirExists(filepath.Join(root, "etc")) {
		v := false
		t.Proxy = &v
	}
	if dirExists(filepath.Join(root, "etc")) {
		v := fileExists(filepath.Join(root, "etc/pki/ca-trust/source/anchors/openshift-config-user-ca-bundle.crt"))
		t.UserCABundle = &v
		what := mountWhat(filepath.Join(root, "etc/systemd/system/var-lib-containers.mount"))
		t.ContainerStorageMountpointTarget = &what
		mirror := hasMirror(filepath.Join(root, "etc/containers/registries.conf"))
		t.MirrorRegistryConfigured = &mirror
	}
	t.NodeIPs = kubeletNodeIPs(filepath.Join(root, "etc/systemd/system/kubelet.service.d/20-nodenet.conf"))
	return t, nil
}

// hasMirror says whether a registries.conf names a mirror
// ([[registry.mirror]]), as the machine-config operator writes one for
// each ImageDigestMirrorSet or ImageContentSourcePolicy source.
func hasMirror(conf string) bool {
	data, err := os.ReadFile(conf)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.ReplaceAll(strings.TrimSpace(line), " ", "") == "[[registry.mirror]]" {
			return true
		}
	}
	return false
}

// kubeletNodeIPs reads the node's IPs, primary first, from the kubelet
// drop-in the nodeip-configuration service writes (KUBELET_NODE_IPS, else
// KUBELET_NODE_IP), or nil.
func kubeletNodeIPs(dropIn string) []string {
	data, err := os.ReadFile(dropIn)
	if err != nil {
		return nil
	}
	vars := map[string]string{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(data), `"`, " ")) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "KUBELET_NODE_IP") {
			vars[k] = v
		}
	}
	if ips := vars["KUBELET_NODE_IPS"]; ips != "" {
		return strings.Split(ips, ",")
	}
	if ip := vars["KUBELET_NODE_IP"]; ip != "" {
		return []string{ip}
	}
	return nil
}

func proxySet(env string) bool {
	for _, line := range strings.Split(env, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		k = strings.ToUpper(strings.TrimPrefix(k, "export "))
		if ok && (k == "HTTP_PROXY" || k == "HTTPS_PROXY") && strings.Trim(v, `"' `) != "" {
			return true
		}
	}
	return false
}

// mountWhat reads What= of a mount unit, or "" when there is none: the
// agent's container storage mount target is the device the unit mounts
// (lca-cli/ops/ops.go, GetContainerStorageTarget: the What= line of
// `systemctl cat var-lib-containers.mount`).
func mountWhat(unit string) string {
	f, err := os.Open(unit)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "What="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// rootArch tells a root's architecture from its kernel's name
// (5.14.0-570.el9_6.x86_64), GOARCH style, or "" when it has none.
func rootArch(root string) string {
	kernels, _ := filepath.Glob(filepath.Join(root, "usr/lib/modules/*/vmlinuz"))
	for _, k := range kernels {
		name := filepath.Base(filepath.Dir(k))
		for suffix, arch := range map[string]string{".x86_64": "amd64", ".aarch64": "arm64", ".s390x": "s390x", ".ppc64le": "ppc64le"} {
			if strings.HasSuffix(name, suffix) {
				return arch
			}
		}
	}
	return ""
}
