package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/seedbuild/seedbuild/labels"
)

// nodeDeployment is the ostree deployment the seed node runs, and its
// .origin: what the upstream agent's prep needs to deploy a tarball seed
// and to give the new deployment the seed node's origin, and what a native
// seed carries so that every deploy route can do the same.
type nodeDeployment struct {
	// dep is the booted deployment; known says it was found.
	dep   labels.Deployment
	known bool
	// origin is the deployment's .origin as the node has it, or one made
	// (see originFrom); nil when there is none to read or make.
	origin []byte
	// originFrom says where origin came from, for the report: the file's
	// root-relative path, or how it was made.
	originFrom string
}

// findNodeDeployment finds the booted deployment of root: the booted one
// of rpm-ostree status (a captured rpm-ostree.json, or rpm-ostree on a
// live /); else, on a live /, the deployment the kernel's ostree= argument
// names; else the root's only deployment under ostree/deploy. Its origin
// is read from ostree/deploy/<osname>/deploy/<checksum>.<serial>.origin,
// or, where the root has none, made from the MachineConfig's osImageURL
// (what RHCOS's origin names). An rpm-ostree document without a usable
// booted deployment is an error: the agent's prep would fail on it.
func findNodeDeployment(root string, rpmOstree []byte, cmdline string, live bool, osImageURL string) (nodeDeployment, error) {
	var n nodeDeployment
	switch {
	case rpmOstree != nil:
		d, err := labels.BootedDeployment(rpmOstree)
		if err != nil {
			return n, err
		}
		n.dep, n.known = d, true
	case live:
		n.dep, n.known = cmdlineDeployment(root, cmdline)
	default:
		n.dep, n.known = onlyDeployment(root)
	}
	if n.known {
		rel := filepath.Join("ostree/deploy", n.dep.OSName, "deploy", n.dep.Name()+".origin")
		data, err := os.ReadFile(filepath.Join(root, rel))
		switch {
		case err == nil:
			n.origin, n.originFrom = data, "/"+rel
			return n, nil
		case !errors.Is(err, os.ErrNotExist):
			return n, fmt.Errorf("reading the booted deployment's origin: %w", err)
		}
	}
	if osImageURL != "" {
		n.origin = []byte(labels.ImageOrigin(osImageURL))
		n.originFrom = "made from the MachineConfig's osImageURL"
	}
	return n, nil
}

// withCommit is n for a node known only by the commit it runs (a root with
// an ostree repo and no deployment): its deployment is named
// rhcos-<commit>.0, as on RHCOS, and its origin, where none could be
// made, is the one ostree writes for a deployment of a bare commit.
func (n nodeDeployment) withCommit(commit string) nodeDeployment {
	if n.known {
		return n
	}
	n.dep, n.known = labels.Deployment{OSName: "rhcos", Checksum: commit}, true
	if n.origin == nil {
		n.origin = []byte("[origin]\nrefspec=" + commit + "\n")
		n.originFrom = "made from the commit (the root has no deployment and its MachineConfig no osImageURL)"
	}
	return n
}

// cmdlineDeployment follows the ostree= kernel argument, a link such as
// /ostree/boot.1/rhcos/<boot checksum>/0 under root, to the deployment
// folder ostree/deploy/<osname>/deploy/<checksum>.<serial>.
func cmdlineDeployment(root, cmdline string) (labels.Deployment, bool) {
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, "ostree=")
		if !ok {
			continue
		}
		dep, err := filepath.EvalSymlinks(filepath.Join(root, v))
		if err != nil {
			return labels.Deployment{}, false
		}
		return deploymentAt(dep)
	}
	return labels.Deployment{}, false
}

// onlyDeployment is the root's deployment when it has exactly one.
func onlyDeployment(root string) (labels.Deployment, bool) {
	dirs, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/*/deploy/*.*"))
	var found []labels.Deployment
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if dep, ok := deploymentAt(d); ok {
			found = append(found, dep)
		}
	}
	if len(found) != 1 {
		return labels.Deployment{}, false
	}
	return found[0], true
}

// deploymentAt names the deployment whose folder is dir,
// .../ostree/deploy/<osname>/deploy/<checksum>.<serial>.
func deploymentAt(dir string) (labels.Deployment, bool) {
	checksum, serial, ok := strings.Cut(filepath.Base(dir), ".")
	n, err := strconv.Atoi(serial)
	parent := filepath.Dir(dir)
	if !ok || err != nil || len(checksum) != 64 || strings.Trim(checksum, "0123456789abcdef") != "" || filepath.Base(parent) != "deploy" {
		return labels.Deployment{}, false
	}
	return labels.Deployment{OSName: filepath.Base(filepath.Dir(parent)), Checksum: checksum, Serial: n}, true
}
