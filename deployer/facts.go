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
		if data, err := os.ReadFile("/proc/sys/crypto/fips_enabled"); err == nil {
			v := strings.TrimSpace(string(data)) == "1"
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
		where := mountWhere(filepath.Join(root, "etc/systemd/system/var-lib-containers.mount"))
		t.ContainerStorageMountpointTarget = &where
	}
	return t, nil
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

// mountWhere reads Where= of a mount unit, or "" when there is none.
func mountWhere(unit string) string {
	f, err := os.Open(unit)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Where="); ok {
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
