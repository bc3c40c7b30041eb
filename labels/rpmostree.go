package labels

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Deployment names an ostree deployment as rpm-ostree does: its stateroot
// (osname), commit checksum and serial.
type Deployment struct {
	OSName   string
	Checksum string
	Serial   int
}

// ID is rpm-ostree's id of the deployment, <osname>-<checksum>.<serial>.
func (d Deployment) ID() string { return d.OSName + "-" + d.Name() }

// Name is the deployment's folder name, <checksum>.<serial>.
func (d Deployment) Name() string { return d.Checksum + "." + strconv.Itoa(d.Serial) }

// AgentOriginFile is the name, in a tarball-layout seed, of the booted
// deployment's .origin: ostree-<checksum>.<serial>.origin. The upstream
// agent's seed creator writes it (lca-cli/seedcreator, backupOstreeOrigin)
// and its prep copies it over the new deployment's .origin, failing when
// it is missing (internal/prep, SetupStateroot).
func AgentOriginFile(d Deployment) string { return "ostree-" + d.Name() + ".origin" }

// BootedDeployment reads the booted deployment from rpm-ostree status
// --json output, as the upstream agent's prep does
// (internal/prep, getBootedStaterootIDFromRPMOstreeJson and
// getDeploymentFromDeploymentID): the deployment with "booted": true; its
// "id" must hold a "-", and what follows the last one is
// <checksum>.<serial>. Where the document also gives "checksum" and
// "serial", they must agree with the id.
func BootedDeployment(data []byte) (Deployment, error) {
	var doc struct {
		Deployments []struct {
			ID       string `json:"id"`
			OSName   string `json:"osname"`
			Checksum string `json:"checksum"`
			Serial   *int   `json:"serial"`
			Booted   bool   `json:"booted"`
		} `json:"deployments"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return Deployment{}, fmt.Errorf("parsing %s: %w", RpmOstreeFile, err)
	}
	for _, d := range doc.Deployments {
		if !d.Booted {
			continue
		}
		i := strings.LastIndex(d.ID, "-")
		if i < 0 {
			return Deployment{}, fmt.Errorf("%s: the booted deployment's id %q has no '-': want <osname>-<checksum>.<serial>", RpmOstreeFile, d.ID)
		}
		checksum, serial, ok := strings.Cut(d.ID[i+1:], ".")
		n, err := strconv.Atoi(serial)
		if !ok || err != nil || n < 0 || !isChecksum(checksum) {
			return Deployment{}, fmt.Errorf("%s: the booted deployment's id %q does not end in <checksum>.<serial>", RpmOstreeFile, d.ID)
		}
		if d.Checksum != "" && d.Checksum != checksum {
			return Deployment{}, fmt.Errorf("%s: the booted deployment's id %q names commit %s, its checksum is %s", RpmOstreeFile, d.ID, checksum, d.Checksum)
		}
		if d.Serial != nil && *d.Serial != n {
			return Deployment{}, fmt.Errorf("%s: the booted deployment's id %q has serial %d, its serial is %d", RpmOstreeFile, d.ID, n, *d.Serial)
		}
		osname := d.OSName
		if osname == "" {
			osname = d.ID[:i]
		}
		return Deployment{OSName: osname, Checksum: checksum, Serial: n}, nil
	}
	return Deployment{}, fmt.Errorf("%s lists no booted deployment", RpmOstreeFile)
}

// RpmOstreeStatus is the rpm-ostree status document of a node whose only
// deployment is d, booted, for a node without rpm-ostree: the fields the
// upstream agent reads (id, booted) and those rpm-ostree gives beside them
// (osname, checksum, serial, origin or container-image-reference, read
// from the origin file's text).
func RpmOstreeStatus(d Deployment, origin string) []byte {
	entry := map[string]any{"id": d.ID(), "osname": d.OSName, "checksum": d.Checksum, "serial": d.Serial, "booted": true}
	if ref := OriginValue(origin, "container-image-reference"); ref != "" {
		entry["container-image-reference"] = ref
	} else if ref := OriginValue(origin, "refspec"); ref != "" {
		entry["origin"] = ref
	}
	data, _ := json.MarshalIndent(map[string]any{"deployments": []any{entry}}, "", "  ")
	return append(data, '\n')
}

// OriginValue reads key of the [origin] group of an ostree .origin file
// (a GKeyFile), or "".
func OriginValue(origin, key string) string {
	group := ""
	for _, line := range strings.Split(origin, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			group = line[1 : len(line)-1]
		case group == "origin":
			if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

// ImageOrigin is the .origin ostree-ext and rpm-ostree write for a node
// that runs the container image ref, unverified, as on RHCOS:
// container-image-reference=ostree-unverified-registry:<ref>.
func ImageOrigin(ref string) string {
	return "[origin]\ncontainer-image-reference=ostree-unverified-registry:" + ref + "\n"
}

func isChecksum(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}
