package standin

// What ostree-ext (and bootc, which imports images with it) does, as the
// stand-ins model it. Each rule is a fact read in the upstream source,
// cited with its file, function and version; spec_test.go asserts each.
//
// Sources: bootc-dev/bootc at v1.16.9 (commit 534c76ea), where ostree-ext
// lives under crates/ostree-ext/src; ostreedev/ostree at v2022.7 and
// v2025.2.
//
// Not modelled, and why:
//   - ostree-ext's layer-by-layer import (one commit per layer under
//     ostree/container/blob/ refs, then a merge commit): the stand-ins
//     commit the image's merged root once. seedbuild reads no blob ref and
//     removes the refs by prefix; the ref names are modelled (BlobRef).
//   - Signature policies and registry transports: seedbuild gives both
//     tools a containers-storage image only.
//   - bootc's bound images, composefs backend, bootupd and the ESP: not on
//     the paths seedbuild drives (to-existing-root of an ostree node).

import (
	"fmt"
	"strconv"
	"strings"
)

// EscapeRef makes s a part of an ostree ref as ostree-ext does
// (crates/ostree-ext/src/refescape.rs, escape_for_ref): ASCII letters,
// digits and '-' stay; '/' stays after a letter or digit unless it ends s;
// '_' becomes "__"; any other character c becomes _XX_, its code in
// upper-case hex.
func EscapeRef(s string) string {
	var b strings.Builder
	runes := []rune(s)
	for i, c := range runes {
		alnum := func(r rune) bool {
			return r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}
		switch {
		case alnum(c) || c == '-':
			b.WriteRune(c)
		case c == '/' && i > 0 && alnum(runes[i-1]) && i < len(runes)-1:
			b.WriteRune(c)
		case c == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%02X_", c)
		}
	}
	return b.String()
}

// The ref prefixes of an imported image (container/store.rs, IMAGE_PREFIX
// and LAYER_PREFIX).
const (
	ImageRefPrefix = "ostree/container/image"
	BlobRefPrefix  = "ostree/container/blob"
)

// ImageRef is the ref an image is kept under: the prefix and the escaped
// image reference (container/store.rs, ref_for_image, through
// refescape.rs prefix_escape_for_ref).
func ImageRef(imgref string) string { return ImageRefPrefix + "/" + EscapeRef(imgref) }

// BlobRef is the ref a layer is kept under, by its digest
// (container/store.rs, ref_for_blob_digest).
func BlobRef(digest string) string { return BlobRefPrefix + "/" + EscapeRef(digest) }

// ParseOstreeVersion reads the year and release of a libostree version
// ("2022.7"); ok is false for anything else.
func ParseOstreeVersion(v string) (year, release int, ok bool) {
	y, r, found := strings.Cut(strings.TrimSpace(v), ".")
	year, err1 := strconv.Atoi(y)
	release, err2 := strconv.Atoi(r)
	return year, release, found && err1 == nil && err2 == nil
}

// atLeast2024_3 says whether the libostree version v is 2024.3 or later.
func atLeast2024_3(v string) bool {
	year, release, ok := ParseOstreeVersion(v)
	return ok && (year > 2024 || year == 2024 && release >= 3)
}

// RetainsVar says whether ostree-ext keeps an image's /var in the commit
// as /var: with libostree 2024.3 or later; before, it writes the image's
// /var to usr/share/factory/var (container/store.rs, ImageImporter::new,
// ostree_v2024_3 = ostree::check_version(2024, 3); tar/write.rs,
// normalize_validate_path, remap_factory_var).
func RetainsVar(libostree string) bool { return atLeast2024_3(libostree) }

// FillsVar says whether libostree copies a deployment's /var into its
// stateroot's var: from 2024.3 on, and only into an empty var, with no
// merge (ostree-sysroot-deploy.c, prepare_deployment_var, commit f81b9fa1,
// first in v2024.3). Before, os-init makes var/{tmp,lib,log,run,lock} and
// the commit's /var is ignored.
func FillsVar(libostree string, varEmpty bool) bool { return atLeast2024_3(libostree) && varEmpty }

// The labels that make an image bootable to ostree-ext
// (container/store.rs: ostree.bootable; bootc's BOOTC_LABEL).
const (
	LabelOstreeBootable = "ostree.bootable"
	LabelBootc          = "containers.bootc"
)

// CheckBootable refuses an image as ostree-ext's import does when it must
// be bootable (container/store.rs, ImageImporter::create_prepared_import,
// require_bootable, set by deploy.rs and bootc): neither label, or an
// architecture other than the host's (GOARCH spelling).
func CheckBootable(labels map[string]string, arch, hostArch string) error {
	_, bootable := labels[LabelOstreeBootable]
	_, bootc := labels[LabelBootc]
	if !bootable && !bootc {
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return fmt.Errorf("Target image does not have %s label", LabelOstreeBootable)
	}
	if arch != "" && arch != hostArch {
		//lint:ignore ST1005 the upstream tool's own message, word for word
		return fmt.Errorf("Image has architecture %s; expected %s", arch, hostArch)
	}
	return nil
}

// Stages says whether ostree-ext stages the deployment (written at the next
// shutdown by ostree-finalize-staged, /etc merged then) rather than writing
// it at once: on a sysroot with a booted deployment
// (container/deploy.rs, deploy: stage_tree_with_options when
// sysroot.booted_deployment() is some). bootc install to-existing-root
// opens the physical root from its container, where libostree sees no
// booted deployment (ostree-sysroot.c, ostree_sysroot_initialize:
// root_is_ostree_booted needs the sysroot to be the process's /), so bootc
// never stages.
func Stages(booted bool) bool { return booted }

// Relabels says whether ostree-ext relabels an imported image's merged
// tree by the image's own SELinux policy: when the image has layers
// derived from its ostree base and the policy read from the merged root
// has a name (container/store.rs, write_merge_commit_impl:
// should_relabel). The labels a derived layer carried are then replaced.
func Relabels(derivedLayers bool, policyName string) bool {
	return derivedLayers && policyName != ""
}

// OriginFor is the origin ostree-ext gives a deployment: its
// container-image-reference is target, else the source imgref
// (container/deploy.rs, deploy, ORIGIN_CONTAINER).
func OriginFor(imgref, target string) string {
	if target != "" {
		imgref = target
	}
	return "[origin]\ncontainer-image-reference=" + imgref + "\n"
}
