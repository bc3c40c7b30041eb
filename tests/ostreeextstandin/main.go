// Command ostreeextstandin is a STAND-IN for ostree-ext's `ostree
// container image deploy`, used only by seedbuild's tests: Debian 12's
// ostree has no `ostree container`. The tests put it first on PATH under
// the name ostree. Every other ostree command it hands to the real
// /usr/bin/ostree.
//
// It accepts the command line of `ostree container image deploy` as
// ostree-ext (in bootc's tree) defines it, rejects anything else the way
// clap would (exit 2), and records what it was asked in
// <sysroot>/ostree-ext-standin.json. Then it installs the image as
// ostree-ext does on a sysroot that is not booted: the image is imported
// into the repo under an ostree/container/image/ ref and deployed into the
// stateroot as its default, with exactly the --karg values (ostree-ext
// ignores kargs.d). Only the containers-storage transport is known; the
// image is mounted from the store the reference names, and copied, its
// /etc as /usr/etc.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	for i := 3; i < len(args); i++ {
		a := args[i]
		if a == "--help" || a == "-h" {
			fmt.Print(usage)
			return
		}
		name, value, hasValue := strings.Cut(a, "=")
		takes, known := flags[name]
		switch {
		case !known:
			fail(2, "error: unexpected argument '%s' found", a)
		case takes && !hasValue:
			if i+1 >= len(args) {
				fail(2, "error: a value is required for '%s <%s>' but none was supplied", name, strings.ToUpper(strings.TrimPrefix(name, "--")))
			}
			i++
			value = args[i]
		case !takes && hasValue:
			fail(2, "error: unexpected value '%s' for '%s' found; no more were expected", value, name)
		}
		switch name {
		case "--sysroot":
			rec.Sysroot = value
		case "--stateroot":
			rec.Stateroot = value
		case "--imgref":
			rec.Imgref = value
		case "--image", "--transport":
			fail(2, "error: this stand-in takes the image as --imgref only")
		case "--karg":
			rec.Kargs = append(rec.Kargs, value)
		case "--target-imgref":
			rec.TargetImgref = value
		}
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
	// Its /var starts as the image's, as ostree fills a new stateroot's
	// (seedbuild's plan makes the stateroot just before).
	return standin.Install(runOstree, rec.Sysroot, rec.Sysroot, tree, "ostree/container/image/"+escapeRef(ref),
		rec.Stateroot, deployOrigin(rec), rec.Kargs, func(varDir string) error { return standin.CopyVar(root, varDir, nil) })
}

// escapeRef makes s one ostree ref component: a byte other than a letter,
// a digit, '.' or '-' becomes _XX_ (its hex code). ostree-ext's own
// escaping differs in details (it keeps some slashes); nothing here
// depends on the exact name.
func escapeRef(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02X_", c)
		}
	}
	return b.String()
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

// deployOrigin is the origin ostree-ext gives the new deployment: its
// container-image-reference (ORIGIN_CONTAINER) is --target-imgref, else
// the source --imgref (crates/ostree-ext/src/container/deploy.rs, deploy:
// DeployOpts.target_imgref, "as distinct from the source").
func deployOrigin(rec record) string {
	ref := rec.Imgref
	if rec.TargetImgref != "" {
		ref = rec.TargetImgref
	}
	return "[origin]\ncontainer-image-reference=" + ref + "\n"
}
