package builder

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/seedbuild/seedbuild/labels"
)

// Paths inside a seed image.
const (
	seedDir        = "usr/lib/openshift/seed"
	kargsFile      = "usr/lib/bootc/kargs.d/50-seed.toml"
	unitName       = "seedbuild-apply-etc.service"
	unitDir        = "usr/lib/systemd/system"
	applyScript    = seedDir + "/apply-etc"
	etcStamp       = "/etc/.seedbuild-etc-applied"
	currentConfig  = "etc/machine-config-daemon/currentconfig"
	deletionsName  = "etc.deletions"
	clusterInfoMan = "manifest.json"
)

// MachineConfig is the part of the MachineConfig daemon's current config
// that seed creation reads.
type MachineConfig struct {
	OSImageURL      string
	KernelArguments []string
	// Files are the paths the MachineConfig daemon manages
	// (spec.config.storage.files).
	Files []string
	// ReleaseVersion is the OpenShift version the rendered config was made
	// for (its release-image-version annotation), or "".
	ReleaseVersion string
	// Raw is the file as read, for mco-currentconfig.json.
	Raw []byte
}

// ReadMachineConfig reads root/etc/machine-config-daemon/currentconfig. A
// missing file gives an empty config and no error.
func ReadMachineConfig(root string) (MachineConfig, error) {
	p := filepath.Join(root, currentConfig)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return MachineConfig{}, nil
	}
	if err != nil {
		return MachineConfig{}, fmt.Errorf("reading %q: %w", p, err)
	}
	var doc struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			OSImageURL      string   `json:"osImageURL"`
			KernelArguments []string `json:"kernelArguments"`
			Config          struct {
				Storage struct {
					Files []struct {
						Path string `json:"path"`
					} `json:"files"`
				} `json:"storage"`
			} `json:"config"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return MachineConfig{}, fmt.Errorf("parsing %q: %w", p, err)
	}
	mc := MachineConfig{OSImageURL: doc.Spec.OSImageURL, KernelArguments: doc.Spec.KernelArguments,
		ReleaseVersion: doc.Metadata.Annotations[labels.ReleaseVersionAnnotation], Raw: data}
	for _, f := range doc.Spec.Config.Storage.Files {
		if f.Path != "" {
			mc.Files = append(mc.Files, f.Path)
		}
	}
	return mc, nil
}

const applyEtcScript = `#!/bin/sh
# Lays the seed node's /etc state into /etc once, then leaves a stamp.
# Run by ` + unitName + `; seedbuild deploy does the same before reboot.
set -eu
seed=/` + seedDir + `
stamp=` + etcStamp + `
[ -e "$stamp" ] && exit 0
if [ -d "$seed/etc" ]; then
	cp -a "$seed/etc/." /etc/
fi
if [ -f "$seed/` + deletionsName + `" ]; then
	while IFS= read -r p; do
		case "$p" in
		*/../* | */..) ;;
		/etc/?*) rm -rf -- "$p" ;;
		esac
	done <"$seed/` + deletionsName + `"
fi
touch "$stamp"
`

const applyEtcUnit = `[Unit]
Description=Apply the seed node's /etc state (seedbuild)
Documentation=https://github.com/seedbuild/seedbuild
DefaultDependencies=no
After=local-fs.target
Before=crio.service kubelet.service
ConditionPathExists=!` + etcStamp + `

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/` + applyScript + `

[Install]
WantedBy=multi-user.target
`
