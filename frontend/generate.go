package frontend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/seedbuild/seedbuild/labels"
)

// Where a configured seed keeps its cluster configuration.
const (
	ClusterConfigDir    = "/usr/opt/openshift/cluster-configuration"
	ClusterConfigVarDir = "/var/opt/openshift/cluster-configuration"
	tmpfilesName        = "seedbuild-cluster-configuration.conf"
)

// ConfiguredSeed describes the build context of a configured seed.
type ConfiguredSeed struct {
	// Seed is the seed image, as FROM names it.
	Seed string
	// Kind is the seed's kind; tarball seeds get the untar steps.
	Kind labels.Kind
	// ClusterConfig is the cluster configuration JSON.
	ClusterConfig []byte
	// ExtraManifests is a folder of manifests to add, or "".
	ExtraManifests string
}

// WriteContext writes the Containerfile and build context of a configured
// seed into dir, which must not exist or be empty. It writes into a
// temporary sibling and renames it, so nothing is half-written. It returns
// warnings for the user.
func WriteContext(dir string, c ConfiguredSeed) ([]string, error) {
	if c.Kind == labels.NotASeed {
		return nil, errors.New("the image is not a seed")
	}
	if !json.Valid(c.ClusterConfig) {
		var v any
		err := json.Unmarshal(c.ClusterConfig, &v)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("the cluster configuration is not valid JSON at byte %d: %w", syn.Offset, err)
		}
		return nil, fmt.Errorf("the cluster configuration is not valid JSON: %w", err)
	}
	if trimmed := bytes.TrimSpace(c.ClusterConfig); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("the cluster configuration must be a JSON object")
	}
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("output %q exists and is not a folder", dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("output folder %q is not empty", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".seedbuild-context-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := writeContextFiles(tmp, c); err != nil {
		return nil, err
	}
	os.Remove(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("writing %q: %w", dir, err)
	}
	var warnings []string
	if hasPullSecret(c.ClusterConfig) {
		warnings = append(warnings, "the cluster configuration holds a pull secret, which ends up in the configured seed image: push it only to a registry you trust")
	}
	return warnings, nil
}

func writeContextFiles(dir string, c ConfiguredSeed) error {
	cfgDir := filepath.Join(dir, "cluster-configuration")
	if err := os.MkdirAll(filepath.Join(cfgDir, "manifests"), 0o755); err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, c.ClusterConfig, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	if err := os.WriteFile(filepath.Join(cfgDir, labels.ClusterInfoFile), pretty.Bytes(), 0o600); err != nil {
		return err
	}
	if c.ExtraManifests != "" {
		if err := copyManifests(c.ExtraManifests, filepath.Join(cfgDir, "manifests")); err != nil {
			return err
		}
	}
	tmpfiles := "# seedbuild: the cluster configuration of this configured seed, seen under /var.\n" +
		"d /var/opt/openshift 0755 root root -\n" +
		"L+ " + ClusterConfigVarDir + " - - - - " + ClusterConfigDir + "\n"
	if err := os.WriteFile(filepath.Join(dir, tmpfilesName), []byte(tmpfiles), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(Containerfile(c)), 0o644)
}

// Containerfile renders the Containerfile of a configured seed.
func Containerfile(c ConfiguredSeed) string {
	var b strings.Builder
	b.WriteString("# A configured seed, written by seedbuild containerfile.\n")
	b.WriteString("# The configuration goes under /usr, never into the image's /etc: that\n")
	b.WriteString("# becomes the node's /usr/etc defaults.\n")
	fmt.Fprintf(&b, "FROM %s\n", c.Seed)
	fmt.Fprintf(&b, "COPY cluster-configuration/ %s/\n", ClusterConfigDir)
	fmt.Fprintf(&b, "COPY %s /usr/lib/tmpfiles.d/%s\n", tmpfilesName, tmpfilesName)
	if c.Kind == labels.BootcTarball {
		b.WriteString("# Tarball seed: lay its /etc and /var onto the image, as the installer does.\n")
		fmt.Fprintf(&b, "RUN tar -xzf %s/etc.tgz -C / && tar -xzf %s/var.tgz -C /\n", labels.SeedDir, labels.SeedDir)
	}
	return b.String()
}

// copyManifests copies the regular files of src (flat) into dst.
func copyManifests(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading extra manifests %q: %w", src, err)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %q: %w", p, err)
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
}

// hasPullSecret reports whether a JSON document holds a non-empty pull
// secret anywhere.
func hasPullSecret(data []byte) bool {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				key := strings.ToLower(strings.ReplaceAll(k, "_", ""))
				if key == "pullsecret" {
					if s, ok := x.(string); !ok || s != "" {
						return true
					}
				}
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range t {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
