// Package machineconfig reads the MachineConfig daemon's current config:
// the rendered MachineConfig a node runs, as the daemon keeps it in
// etc/machine-config-daemon/currentconfig (and as a seed carries it in
// mco-currentconfig.json).
package machineconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Path is where a root holds the current config.
const Path = "etc/machine-config-daemon/currentconfig"

// ReleaseVersionAnnotation is where the machine-config controller records
// the OpenShift version on each rendered MachineConfig.
const ReleaseVersionAnnotation = "machineconfiguration.openshift.io/release-image-version"

// Config is the part of a rendered MachineConfig seedbuild uses.
type Config struct {
	OSImageURL      string
	KernelArguments []string
	FIPS            bool
	// Files are the paths the MachineConfig daemon manages
	// (spec.config.storage.files).
	Files []string
	// ReleaseVersion is the OpenShift version the config was rendered for
	// (its release-image-version annotation), or "".
	ReleaseVersion string
	// Raw is the file as read.
	Raw []byte
}

// ReadFile reads and parses a MachineConfig JSON file. A missing file is
// an error that wraps os.ErrNotExist.
func ReadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading %q: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("reading %q: %w", path, err)
	}
	return c, nil
}

// Parse parses a MachineConfig JSON document.
func Parse(data []byte) (Config, error) {
	var doc struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			OSImageURL      string   `json:"osImageURL"`
			KernelArguments []string `json:"kernelArguments"`
			FIPS            bool     `json:"fips"`
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
		return Config{}, fmt.Errorf("parsing the MachineConfig: %w", err)
	}
	c := Config{OSImageURL: doc.Spec.OSImageURL, KernelArguments: doc.Spec.KernelArguments, FIPS: doc.Spec.FIPS,
		ReleaseVersion: doc.Metadata.Annotations[ReleaseVersionAnnotation], Raw: data}
	for _, f := range doc.Spec.Config.Storage.Files {
		if f.Path != "" {
			c.Files = append(c.Files, f.Path)
		}
	}
	return c, nil
}

// Read reads root's current config. A root without one gives an empty
// Config and no error.
func Read(root string) (Config, error) {
	c, err := ReadFile(filepath.Join(root, Path))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, nil
	}
	return c, err
}
