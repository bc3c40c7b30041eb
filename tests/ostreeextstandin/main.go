// Command ostreeextstandin is a STAND-IN for ostree-ext's `ostree
// container image deploy`, used only by seedbuild's tests: Debian's ostree
// has no `ostree container`. The tests put it first on PATH under the name
// ostree. Every other ostree command it hands to the real /usr/bin/ostree.
//
// It is an executable specification: each behaviour it models is a fact
// of ostree-ext (bootc-dev/bootc at v1.16.9, crates/ostree-ext), cited
// where it is coded (here and in tests/internal/standin/spec.go) and
// asserted by a unit test:
//   - the command line of `ostree container image deploy` (cli.rs,
//     ContainerImageOpts::Deploy), anything else refused as clap does
//     (exit 2);
//   - the image refused without containers.bootc or ostree.bootable, or
//     for another architecture (CheckBootable);
//   - its /var kept in the commit with libostree 2024.3 or later, else
//     moved to usr/share/factory/var (VarPlace); the real ostree then
//     fills the stateroot's var, or not (FillsVar);
//   - the image kept under ostree/container/image/<escaped target
//     imgref> (ImageRef, EscapeRef);
//   - staged on a booted sysroot, written at once on another (Stages);
//   - exactly the --karg values on the entry: ostree-ext reads no kargs.d;
//   - the origin's container-image-reference from --target-imgref, else
//     the source (OriginFor);
//   - a merged tree with derived layers relabelled by the image's own
//     SELinux policy (Relabels), the labels the layers carried replaced.
//
// Not modelled, and why: the transports other than containers-storage and
// signature policies (seedbuild passes a local image, unverified); the
// per-layer import and its blob refs (the merged root is committed once;
// seedbuild reads no blob ref). The relabel of a merged tree with derived
// layers by the image's policy (Relabels) is modelled with the host's
// ostree commit --selinux-policy, whose labelling of /usr/etc follows the
// host's ostree (see --selinux-labeling-epoch), not the image's. It records what it was asked in
// <sysroot>/ostree-ext-standin.json.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"go.podman.io/storage"
	"go.podman.io/storage/types"

	"github.com/seedbuild/seedbuild/tests/internal/standin"
)

const realOstree = "/usr/bin/ostree"

// Flags of `ostree container image deploy`: true when they take a value.
var flags = map[string]bool{
	"--sysroot": true, "--stateroot": true, "--imgref": true, "--image": true,
	"--transport": true, "--no-signature-verification": false,
	"--enforce-container-sigpolicy": false, "--ostree-remote": true,
	"--auth-anonymous": false, "--authfile": true, "--cert-dir": true,
	"--insecure-skip-tls-verification": false, "--target-imgref": true,
	"--no-imgref": false, "--karg": true, "--write-commitid-to": true,
}

const usage = `Perform initial deployment for a container image (seedbuild's test STAND-IN)

Usage: ostree container image deploy [OPTIONS] --stateroot <STATEROOT> <--imgref <IMGREF>|--image <IMAGE>>

Options:
      --sysroot <SYSROOT>      Path to the system root
      --stateroot <STATEROOT>  Name for the state directory, also known as "osname"
      --imgref <IMGREF>        Source image reference
      --image <IMAGE>          Name of the container image
      --transport <TRANSPORT>  The transport
      --target-imgref <TARGET_IMGREF>
      --no-imgref
      --karg <KARG>            Add a kernel argument
      --write-commitid-to <WRITE_COMMITID_TO>
  -h, --help                   Print help
`

type record struct {
	Argv      []string `json:"argv"`
	Sysroot   string   `json:"sysroot"`
	Stateroot string   `json:"stateroot"`
	Imgref    string   `json:"imgref"`
	Kargs     []string `json:"kargs"`
	// TargetImgref is --target-imgref, "" when not given.
	TargetImgref string `json:"target_imgref,omitempty"`
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] != "container" {
		err := syscall.Exec(realOstree, append([]string{"ostree"}, args...), os.Environ())
		fail(1, "error: running %s: %v", realOstree, err)
	}
	if len(args) < 3 || args[1] != "image" || args[2] != "deploy" {
		fail(2, "error: this stand-in only knows `container image deploy`, got %q", args)
	}
	rec := record{Argv: os.Args, Sysroot: "/", Kargs: []string{}}
	err := standin.ParseFlags(args[3:], flags, func(name, value string) error {
		switch name {
		case "--sysroot":
			rec.Sysroot = value
		case "--stateroot":
			rec.Stateroot = value
		case "--imgref":
			rec.Imgref = value
		case "--image", "--transport":
			return errors.New("this stand-in takes the image as --imgref only")
		case "--karg":
			rec.Kargs = append(rec.Kargs, value)
		case "--target-imgref":
			rec.TargetImgref = value
		}
		return nil
	}, func(arg string) error { return fmt.Errorf("unexpected argument '%s' found", arg) })
	if errors.Is(err, standin.ErrHelp) {
		fmt.Print(usage)
		return
	}
	if err != nil {
		fail(2, "error: %v", err)
	}
	if rec.Imgref == "" {
		fail(2, "error: the following required arguments were not provided:\n  --imgref <IMGREF>")
	}
	if rec.Stateroot == "" {
		rec.Stateroot = "default"
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(filepath.Join(rec.Sysroot, "ostree-ext-standin.json"), data, 0o644); err != nil {
		fail(1, "error: recording: %v", err)
	}
	if err := deploy(rec); err != nil {
		fail(1, "error: Performing deployment (stand-in): %v", err)
	}
	fmt.Printf("ostree-ext stand-in: deployed %s into stateroot %s\n", rec.Imgref, rec.Stateroot)
}

// deploy imports the image into the sysroot's repo and deploys it.
func deploy(rec record) error {
	ref, ok := strings.CutPrefix(rec.Imgref, "ostree-unverified-image:")
	if !ok {
		return fmt.Errorf("the stand-in knows only ostree-unverified-image: references, not %q", rec.Imgref)
	}
	spec, ok := strings.CutPrefix(ref, "containers-storage:")
	if !ok {
		return fmt.Errorf("the stand-in knows only the containers-storage transport, not %q", ref)
	}
	opts := types.StoreOptions{GraphDriverName: "overlay", GraphRoot: "/var/lib/containers/storage", RunRoot: "/run/containers/storage"}
	if rest, ok := strings.CutPrefix(spec, "["); ok {
		where, id, ok := strings.Cut(rest, "]")
		if !ok {
			return fmt.Errorf("no ] in %q", spec)
		}
		// [driver@graphroot+runroot:options], each part but the graph
		// root optional, as the transport reads it.
		where, _, _ = strings.Cut(where, ":")
		if driver, roots, ok := strings.Cut(where, "@"); ok {
			opts.GraphDriverName, where = driver, roots
		}
		if graph, run, ok := strings.Cut(where, "+"); ok {
			opts.RunRoot, where = run, graph
		}
		opts.GraphRoot, spec = where, id
	}
	store, err := storage.GetStore(opts)
	if err != nil {
		return fmt.Errorf("opening the store %s: %w", opts.GraphRoot, err)
	}
	defer store.Shutdown(false)
	img, err := store.Image(spec)
	if err != nil {
		return fmt.Errorf("finding image %s: %w", spec, err)
	}
	root, err := store.MountImage(img.ID, nil, "")
	if err != nil {
		return fmt.Errorf("mounting image %s: %w", img.ID, err)
	}
	defer store.UnmountImage(img.ID, false)

	if err := checkBootable(store, img); err != nil {
		return err
	}
	tree, err := os.MkdirTemp(filepath.Join(rec.Sysroot, "ostree"), "ostree-ext-standin-tree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	if err := os.Chmod(tree, 0o755); err != nil {
		return err
	}
	if err := standin.CopyImage(root, tree, nil, ""); err != nil {
		return fmt.Errorf("copying the image: %w", err)
	}
	// ostree-ext runs with the host's libostree: it decides where the
	// image's /var goes, and the real ostree whether the stateroot's var
	// is filled from it.
	if err := standin.CopyImageVar(root, tree, nil, standin.OstreeVersion(runOstree)); err != nil {
		return fmt.Errorf("copying the image's /var: %w", err)
	}
	_, err = os.Stat("/run/ostree-booted")
	booted := rec.Sysroot == "/" && err == nil
	derived, err := derivedLayers(store, img)
	if err != nil {
		return err
	}
	return standin.Install(runOstree, rec.Sysroot, rec.Sysroot, tree, standin.ImageRef(imageName(rec)),
		rec.Stateroot, standin.OriginFor(rec.Imgref, rec.TargetImgref), rec.Kargs, standin.Stages(booted),
		standin.Relabels(derived, standin.PolicyName(tree)))
}

// derivedLayers says whether the image has layers over its base: more than
// one, for the stand-in (ostree-ext tells the base's layers by the
// ostree.final-diffid label or the commit's own; a base of one layer, as
// the tests' are, reads the same).
func derivedLayers(store storage.Store, img *storage.Image) (bool, error) {
	n := 0
	for id := img.TopLayer; id != ""; n++ {
		l, err := store.Layer(id)
		if err != nil {
			return false, fmt.Errorf("reading layer %s of image %s: %w", id, img.ID, err)
		}
		id = l.Parent
	}
	return n > 1, nil
}

// imageName is the image reference ostree-ext keeps the image under: the
// target's, else the source's, without its signature-verification prefix
// (container/store.rs, ref_for_image(&target_imgref.imgref)).
func imageName(rec record) string {
	ref := rec.Imgref
	if rec.TargetImgref != "" {
		ref = rec.TargetImgref
	}
	for prefix, transport := range map[string]string{"ostree-unverified-image:": "", "ostree-unverified-registry:": "registry:", "ostree-image-signed:": ""} {
		if rest, ok := strings.CutPrefix(ref, prefix); ok {
			return transport + rest
		}
	}
	return ref
}

// checkBootable reads the image's configuration from the store and
// refuses it as ostree-ext would (standin.CheckBootable).
func checkBootable(store storage.Store, img *storage.Image) error {
	for _, key := range img.BigDataNames {
		data, err := store.ImageBigData(img.ID, key)
		if err != nil {
			continue
		}
		var config struct {
			Architecture string `json:"architecture"`
			Config       struct {
				Labels map[string]string `json:"Labels"`
			} `json:"config"`
		}
		if json.Unmarshal(data, &config) != nil || config.Architecture == "" {
			continue
		}
		return standin.CheckBootable(config.Config.Labels, config.Architecture, runtime.GOARCH)
	}
	return fmt.Errorf("image %s has no configuration in the store", img.ID)
}

func runOstree(args ...string) (string, error) {
	cmd := exec.Command(realOstree, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ostree %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}
