package tests

// SELinux on the booted nodes: the node OS is labelled by its own policy
// (hack/mknode.sh) and boots with SELinux on, in permissive mode. These are
// the stage fragments and checks the booted tests use to prove that a
// deployed seed's files carry the labels the image's policy gives them,
// that the seed node's labels survive capture and deploy, and that a boot
// of the seed's stateroot brings no AVC denial and no unlabeled file that
// a boot of the target's original OS does not.

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// selinuxKargs turn SELinux on, permissive. The nodes are installed with
// them, and the seed node's MachineConfig carries them, so they reach the
// seed's stateroot through deploy (the running kernel's are not carried).
var selinuxKargs = []string{"security=selinux", "selinux=1", "enforcing=0"}

// labelDump is a stage fragment: every path under /etc and /var with its
// label, but for the node's own store, journal and temporary files.
const labelDump = `find /etc /var -xdev \( -path /var/lib/containers -o -path /var/tmp -o -path /var/log/journal -o -path /var/cache \) -prune -o -printf '%p\t%Z\n'`

// seedNodeLabelStage labels the state the harness laid onto the seed node,
// as an autorelabel at its first boot would, and gives two files labels of
// the node's own, which no policy rule gives them: the seed must carry
// those as they are. It records every label of /etc and /var.
const seedNodeLabelStage = `
getenforce >$O/getenforce
restorecon -R /etc /var
# The stand-in kubelet, installed by hand, labelled as a program.
chcon -t bin_t /etc/kubernetes/standin/kubelet
mkdir -p /var/lib/seedbuild-vm-custom
echo custom >/var/lib/seedbuild-vm-custom/label.txt
chcon -t user_home_t /var/lib/seedbuild-vm-custom/label.txt
` + labelDump + ` >$O/labels-seed-node
`

// customLabels are the labels seedNodeLabelStage gives by hand.
var customLabels = map[string]string{
	"/etc/kubernetes/standin/kubelet":        "bin_t",
	"/var/lib/seedbuild-vm-custom/label.txt": "user_home_t",
}

// avcStage records the AVC denials of this boot so far: run first in a
// stage, before the stage's own work adds any.
const avcStage = `
dmesg | grep -F 'avc:  denied' >$O/avc || true
`

// selinuxStage checks a booted system's labels with its own tools and
// policy: setfiles in no-change mode over the deployment's /usr, /etc and
// the stateroot's /var, against the deployment's own file_contexts; every
// unlabeled_t file of the booted deployment and its /var; and every label
// of /etc and /var.
//
// /usr/etc is left out of setfiles: it holds the /etc defaults, labelled as
// the /etc they become (as rpm-ostree labels them, and ostree with
// --selinux-labeling-epoch=1), where the policy's rule for the path
// /usr/etc says etc_t. The live /etc is checked. The unlabeled_t search
// leaves out /sysroot (the other stateroots and the ostree folders the
// installer made) and /boot.
const selinuxStage = avcStage + `
getenforce >$O/getenforce
. /etc/selinux/config
fc=/etc/selinux/$SELINUXTYPE/contexts/files/file_contexts
start=$(date +%s)
rc=0; setfiles -n -v -e /usr/etc $fc /usr /etc /var >$O/setfiles 2>&1 || rc=$?; echo $rc >$O/setfiles.rc
find / -xdev \( -path /sysroot -o -path /boot \) -prune -o -context '*:unlabeled_t:*' -print >$O/unlabeled 2>$O/unlabeled.err
` + labelDump + ` >$O/labels
echo $(( $(date +%s) - start )) >$O/selinux-seconds
`

// labelExceptions are the paths setfiles would relabel on a booted seed,
// each with why that is right.
var labelExceptions = map[string]string{
	"/etc/kubernetes/standin/kubelet":        "labelled bin_t by hand on the seed node; the seed carries the node's own label",
	"/var/lib/seedbuild-vm-custom/label.txt": "labelled user_home_t by hand on the seed node; the seed carries the node's own label",
}

// seedEtcRecord is where a native seed keeps the seed node's /etc changes:
// setfiles would label that record as /usr/lib (lib_t), but it carries the
// labels the seed node gave the files, which the /etc apply reads from the
// seed's layers. A known exception, by prefix.
const seedEtcRecord = "/usr/lib/openshift/seed/etc"

// knownException says why setfiles may relabel p, or "".
func knownException(p string) string {
	if why, ok := labelExceptions[p]; ok {
		return why
	}
	if p == seedEtcRecord || strings.HasPrefix(p, seedEtcRecord+"/") {
		return "the native seed's record of the seed node's /etc, with the node's labels"
	}
	if p == "/var/roothome/.ssh" {
		// Made on the seed node while it ran podman, after the native seed
		// was taken, so only the tarball seeds carry it.
		return "made on the seed node as ssh_home_t by the policy's type transition for a home's .ssh; Debian's file_contexts has no rule for RHCOS's /var/roothome (it knows /root), so setfiles says var_t"
	}
	return ""
}

// relabelLine is setfiles' line for a file it would relabel.
var relabelLine = regexp.MustCompile(`(?:Would relabel|Relabeled) (\S+) from (\S+) to (\S+)`)

// avcKey reduces an AVC denial to what it denied: the permissions, the
// source and target types and the class. Pids, inodes, names and the
// command vary between boots (a child of udev is logged as "(spawn)" or as
// "systemd-udevd", by when it is caught).
var (
	avcPerms = regexp.MustCompile(`denied\s+\{([^}]*)\}`)
	avcField = regexp.MustCompile(`\b(scontext|tcontext|tclass)=("[^"]*"|\S+)`)
)

func avcKey(line string) string {
	m := avcPerms.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	key := []string{strings.Join(strings.Fields(m[1]), ",")}
	for _, f := range avcField.FindAllStringSubmatch(line, -1) {
		v := strings.Trim(f[2], `"`)
		if f[1] == "scontext" || f[1] == "tcontext" {
			v = labelType(v)
		}
		key = append(key, f[1]+"="+v)
	}
	return strings.Join(key, " ")
}

// avcSet is the set of AVC keys in a stage's avc file.
func avcSet(t *testing.T, b boot) map[string]bool {
	set := map[string]bool{}
	for _, l := range strings.Split(b.file(t, "avc"), "\n") {
		if k := avcKey(l); k != "" {
			set[k] = true
		}
	}
	return set
}

// labelType is the type of an SELinux context user:role:type:level.
func labelType(ctx string) string {
	f := strings.Split(strings.TrimRight(ctx, "\x00"), ":")
	if len(f) < 3 {
		return ctx
	}
	return f[2]
}

// readLabelDump reads a labelDump by path.
func readLabelDump(t *testing.T, b boot, name string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(b.file(t, name), "\n") {
		p, label, ok := strings.Cut(l, "\t")
		if ok {
			out[p] = label
		}
	}
	return out
}

// checkSELinuxBoot checks a booted seed's stateroot (a boot that ran
// selinuxStage) against the boot of the target's original OS (one that
// ran avcStage first) and the seed node's labels.
func checkSELinuxBoot(t *testing.T, s seeds, b, original boot) {
	t.Helper()
	if got := b.file(t, "getenforce"); got != "Permissive" {
		t.Errorf("getenforce on the booted seed: %q, want Permissive", got)
	}
	// 1. Labels as the deployment's own policy gives them.
	bad := 0
	defer func() {
		if bad == 0 {
			t.Logf("SELinux on the booted seed: setfiles -n would relabel known exceptions only; the seed node's labels all kept; no unlabeled_t file; no AVC denial the original OS's boot lacks (%d at boot); checks took %ss",
				len(avcSet(t, b)), b.file(t, "selinux-seconds"))
		}
	}()
	var unexpected []string
	excepted, record := 0, 0
	for _, m := range relabelLine.FindAllStringSubmatch(b.file(t, "setfiles"), -1) {
		if _, ok := labelExceptions[m[1]]; ok {
			excepted++
			continue
		}
		if knownException(m[1]) != "" {
			record++
			continue
		}
		unexpected = append(unexpected, fmt.Sprintf("%s: %s, policy says %s", m[1], m[2], m[3]))
	}
	if rc := b.file(t, "setfiles.rc"); rc != "0" {
		bad++
		t.Errorf("setfiles -n over the booted seed exited %s:\n%s", rc, tail(b.file(t, "setfiles"), 20))
	}
	if excepted != len(labelExceptions) {
		bad++
		t.Errorf("setfiles -n reported %d of the %d hand-labelled files: the check did not see them", excepted, len(labelExceptions))
	}
	if len(unexpected) > 0 {
		bad++
		t.Errorf("setfiles -n: %d file(s) of the booted seed are not labelled as its policy says:\n%s", len(unexpected), strings.Join(head(unexpected, 40), "\n"))
	}
	// The seed node's labels, kept, the hand-made ones among them.
	node := readLabelDump(t, b, "labels")
	seedNode := s.labels
	same, differ := 0, []string{}
	for p, want := range seedNode {
		got, ok := node[p]
		if !ok || !carriedPath(p) {
			continue
		}
		if labelType(got) != labelType(want) {
			differ = append(differ, fmt.Sprintf("%s: %s, on the seed node %s", p, got, want))
			continue
		}
		same++
	}
	sort.Strings(differ)
	if same < 100 {
		bad++
		t.Errorf("only %d of the seed node's labels found on the booted seed", same)
	}
	if len(differ) > 0 {
		bad++
		t.Errorf("%d of the seed node's files have another label on the booted seed:\n%s", len(differ), strings.Join(head(differ, 40), "\n"))
	}
	for p, typ := range customLabels {
		if got := labelType(node[p]); got != typ {
			bad++
			t.Errorf("%s, labelled %s by hand on the seed node, is %q on the booted seed", p, typ, node[p])
		}
	}
	// 2. No unlabeled_t file, no AVC denial the original OS does not have.
	if got := b.file(t, "unlabeled.err"); got != "" {
		bad++
		t.Errorf("the search for unlabeled_t files failed: %s", got)
	}
	if got := b.file(t, "unlabeled"); got != "" {
		bad++
		t.Errorf("unlabeled_t files on the booted seed:\n%s", tail(got, 20))
	}
	base := avcSet(t, original)
	var fresh []string
	for k := range avcSet(t, b) {
		if !base[k] {
			fresh = append(fresh, k)
		}
	}
	sort.Strings(fresh)
	if len(fresh) > 0 {
		bad++
		t.Errorf("the booted seed has %d AVC denial(s) a boot of the original OS does not:\n%s", len(fresh), strings.Join(fresh, "\n"))
	}
	t.Logf("SELinux on the booted seed: setfiles -n would relabel %d hand-labelled file(s) and %d other known exception(s) (the seed's /etc record, /var/roothome/.ssh); %d of the seed node's labels compared; %d AVC denial(s) at boot, %d on the original OS's boot",
		excepted, record, same, len(avcSet(t, b)), len(base))
}

// carriedPath says whether the seed carries a path of the seed node's
// /etc or /var to the target as it is: not what each boot writes anew.
func carriedPath(p string) bool {
	for _, skip := range []string{"/etc/machine-id", "/var/lib/kubelet-standin", "/var/log", "/var/lib/systemd", "/var/lib/seedbuild-vm-stage"} {
		if p == skip || strings.HasPrefix(p, skip+"/") {
			return false
		}
	}
	return true
}

// checkCaptureLabels checks that every file of the seed node that the
// native seed's own layers carry has the label the node gave it.
func checkCaptureLabels(t *testing.T, archive string, nodeLabels map[string]string) {
	t.Helper()
	img := readArchive(t, archive)
	checked, missing := 0, []string{}
	found := map[string]bool{}
	// The base is one layer: the rest are the seed's.
	for i := 1; i < len(img.manifest.Layers); i++ {
		for name, e := range img.layer(t, i) {
			p := "/" + name
			if rel, ok := strings.CutPrefix(name, "usr/lib/openshift/seed/etc"); ok {
				p = path.Clean("/etc" + rel)
			}
			want, ok := nodeLabels[p]
			if !ok {
				continue
			}
			got, has := e.hdr.PAXRecords["SCHILY.xattr.security.selinux"]
			if !has || strings.TrimRight(got, "\x00") != strings.TrimRight(want, "\x00") {
				missing = append(missing, fmt.Sprintf("%s: %q in the layer, %q on the node", p, got, want))
				continue
			}
			checked++
			found[p] = true
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s: the native seed's layers lost or changed %d label(s) of the seed node:\n%s", filepath.Base(archive), len(missing), strings.Join(head(missing, 40), "\n"))
	}
	for p := range customLabels {
		if !found[p] {
			t.Errorf("%s: the native seed carries no label for %s", filepath.Base(archive), p)
		}
	}
	if checked < 100 {
		t.Errorf("%s: only %d of the seed node's labels found in the seed's layers; want the whole captured state", filepath.Base(archive), checked)
	}
	t.Logf("capture: %d labels of the seed node's /etc and /var in the layers of %s, all as on the node", checked, filepath.Base(archive))
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}

// TestAVCKey: two denials of the same thing on different boots give one
// key; a denial of something else gives another.
func TestAVCKey(t *testing.T) {
	const a = `audit: type=1400 audit(1796084208.596:9): avc:  denied  { search } for  pid=295 comm="systemd-udevd" name="fs" dev="proc" ino=8745 scontext=system_u:system_r:udev_t:s0 tcontext=system_u:object_r:sysctl_fs_t:s0 tclass=dir permissive=1`
	const b = `audit: type=1400 audit(1796084115.364:12): avc:  denied  { search } for  pid=351 comm="(spawn)" name="fs" dev="proc" ino=8111 scontext=system_u:system_r:udev_t:s0 tcontext=system_u:object_r:sysctl_fs_t:s0 tclass=dir permissive=1`
	const c = `audit: type=1400 audit(1796084115.364:13): avc:  denied  { read } for  pid=351 comm="(spawn)" name="nr_open" dev="proc" ino=8746 scontext=system_u:system_r:udev_t:s0 tcontext=system_u:object_r:sysctl_fs_t:s0 tclass=file permissive=1`
	ka, kb, kc := avcKey(a), avcKey(b), avcKey(c)
	if ka == "" || ka != kb {
		t.Errorf("the same denial on two boots: %q and %q, want one key", ka, kb)
	}
	if kc == ka {
		t.Errorf("another denial has the same key %q", kc)
	}
	if avcKey("systemd[1]: Started something.") != "" {
		t.Errorf("a line without a denial has a key")
	}
}
