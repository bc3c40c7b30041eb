package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// contribImage is the name contrib's Job and Task give seedbuild's image;
// seedbuildImageName is the name `make image` gives it in local storage.
const (
	contribImage       = "registry.example.com/seedbuild/seedbuild:latest"
	seedbuildImageName = "localhost/seedbuild/seedbuild:latest"
)

var (
	imageOnce    sync.Once
	imageArchive string
	imageErr     error
)

// seedbuildImage is the oci-archive `make image` wrote: from
// SEEDBUILD_IMAGE_ARCHIVE (make test sets it), else built once here.
func seedbuildImage(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		if imageArchive = os.Getenv("SEEDBUILD_IMAGE_ARCHIVE"); imageArchive != "" {
			return
		}
		cmd := exec.Command("make", "-C", repoRoot, "image")
		if out, err := cmd.CombinedOutput(); err != nil {
			imageErr = err
			imageArchive = string(out)
			return
		}
		imageArchive = filepath.Join(repoRoot, "bin/seedbuild-image.tar")
	})
	if imageErr != nil {
		t.Fatalf("make image: %v\n%s", imageErr, imageArchive)
	}
	return imageArchive
}

// podmanCLI runs the podman command on a store of its own, with runc,
// cgroupfs and no default ulimits (raising them is not allowed here).
type podmanCLI struct {
	st   store
	conf string
}

func newPodmanCLI(t *testing.T) podmanCLI {
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return podmanCLI{st: newStore(t), conf: conf}
}

func (p podmanCLI) run(t *testing.T, args ...string) string {
	t.Helper()
	return sh(t, []string{"CONTAINERS_CONF=" + p.conf}, "podman", append([]string{"--root", p.st.root, "--runroot", p.st.runroot, "--storage-driver", "overlay"}, args...)...)
}

// loadSeedbuildImage pulls make image's archive into podman's store under
// the name contrib uses.
func (p podmanCLI) loadSeedbuildImage(t *testing.T) {
	t.Helper()
	p.run(t, "pull", "-q", "oci-archive:"+seedbuildImage(t))
	id := strings.TrimSpace(p.run(t, "images", "-q", "--no-trunc", "--filter", "reference="+seedbuildImageName))
	if id == "" {
		id = strings.TrimSpace(strings.Split(p.run(t, "images", "-q", "--no-trunc"), "\n")[0])
	}
	p.run(t, "tag", id, contribImage)
}

// TestSeedbuildImage checks what `make image` built: its labels and
// annotations, the static binary in it, and that it runs.
func TestSeedbuildImage(t *testing.T) {
	archive := seedbuildImage(t)
	var manifest struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(sh(t, nil, "skopeo", "inspect", "--raw", "oci-archive:"+archive)), &manifest); err != nil {
		t.Fatal(err)
	}
	var config struct {
		Labels map[string]string `json:"Labels"`
	}
	if err := json.Unmarshal([]byte(sh(t, nil, "skopeo", "inspect", "oci-archive:"+archive)), &config); err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(mustSeedbuild(t, "version", "--format", "{{.Version}}").stdout)
	for _, k := range []string{"org.opencontainers.image.version", "org.opencontainers.image.title"} {
		if config.Labels[k] == "" || manifest.Annotations[k] == "" {
			t.Errorf("the image lacks label or annotation %s: labels %v, annotations %v", k, config.Labels, manifest.Annotations)
		}
	}
	if manifest.Annotations["org.opencontainers.image.revision"] == "" {
		t.Errorf("the image has no revision annotation: %v", manifest.Annotations)
	}
	st, _ := os.Stat(archive)
	t.Logf("%s: %d bytes, version label %q (the test binary says %q)", archive, st.Size(), config.Labels["org.opencontainers.image.version"], version)

	p := newPodmanCLI(t)
	p.loadSeedbuildImage(t)
	if out := p.run(t, "run", "--rm", "--pull", "never", contribImage, "version", "--format", "{{.Platform}}"); strings.TrimSpace(out) != "linux/amd64" {
		t.Errorf("seedbuild version in its image printed %q", out)
	}
	// The image holds seedbuild and busybox, no ostree, skopeo or podman.
	out := p.run(t, "run", "--rm", "--pull", "never", "--entrypoint", "/bin/sh", contribImage, "-c", "for t in ostree skopeo podman; do command -v $t || true; done; ls /lib /lib64 /usr/lib 2>/dev/null | wc -l")
	if strings.TrimSpace(out) != "0" {
		t.Errorf("the image holds more than seedbuild and busybox: %q", out)
	}
}

// authRegistry is a registry with TLS and htpasswd auth, its CA folder
// and an auth file for it.
type authRegistry struct {
	*registry
	caDir, authfile string
}

func startAuthRegistry(t *testing.T) authRegistry {
	t.Helper()
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(sh(t, nil, "htpasswd", "-Bbn", "seeduser", "seedpass")), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, registryOptions{htpasswd: htpasswd, cert: cert, key: key})
	return authRegistry{registry: reg, caDir: certDir(t, cert), authfile: authFile(t, reg.addr, "seeduser", "seedpass")}
}

// podSpec is what the test takes from a pod's container: its command, env,
// privilege and volume mounts (path: source folder, read-only or not).
type podSpec struct {
	image      string
	entrypoint []string
	env        map[string]string
	privileged bool
	mounts     map[string]string
	readOnly   map[string]bool
}

// runPod runs spec in seedbuild's image with podman as a kubelet would:
// privileged as it says, with its env and volumes, on the host network (to
// reach the test registry on 127.0.0.1) and trusting the registry's CA,
// as the cluster's nodes would.
func runPod(t *testing.T, p podmanCLI, reg authRegistry, spec podSpec) string {
	t.Helper()
	certsD := t.TempDir()
	writeFiles(t, certsD, map[string]string{reg.addr + "/ca.crt": readFile(t, filepath.Join(reg.caDir, "ca.crt"))})
	args := []string{"run", "--rm", "--pull", "never", "--network", "host", "-v", certsD + ":/etc/containers/certs.d:ro"}
	if spec.privileged {
		args = append(args, "--privileged")
	}
	keys := make([]string, 0, len(spec.env))
	for k := range spec.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-e", k+"="+spec.env[k])
	}
	for path, src := range spec.mounts {
		v := src + ":" + path
		if spec.readOnly[path] {
			v += ":ro"
		}
		args = append(args, "-v", v)
	}
	args = append(args, "--entrypoint", spec.entrypoint[0], spec.image)
	return p.run(t, append(args, spec.entrypoint[1:]...)...)
}

var imageID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestContribInImage runs the Kubernetes Job's and the Tekton Task's
// containers as their specs say, in seedbuild's image under podman,
// against a registry with TLS and auth, and inspects what they push.
func TestContribInImage(t *testing.T) {
	f := getFixtures(t)
	reg := startAuthRegistry(t)
	p := newPodmanCLI(t)
	p.loadSeedbuildImage(t)
	seed := reg.addr + "/seeds/sno:4.20"
	mustSeedbuild(t, "create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "-o", "docker://"+seed, "--authfile", reg.authfile, "--cert-dir", reg.caDir)
	seedLayers := inspect(t, "--authfile", reg.authfile, "--cert-dir", reg.caDir, "docker://"+seed).LayerCount
	cluster := t.TempDir()
	writeFiles(t, cluster, map[string]string{"cluster.json": `{"clusterName":"pod"}`})
	auth := t.TempDir()
	sh(t, nil, "cp", reg.authfile, filepath.Join(auth, "auth.json"))

	t.Run("kubernetes job", func(t *testing.T) {
		job := parseYAML(t, "kubernetes/configured-seed-job.yaml")
		pod := dig(job.Spec, "template", "spec")
		c := dig(pod, "containers", 0)
		configured := reg.addr + "/seeds/sno-job:4.20"
		spec := podSpec{image: dig(c, "image").(string), env: map[string]string{}, mounts: map[string]string{}, readOnly: map[string]bool{},
			privileged: dig(c, "securityContext", "privileged") == true}
		for _, e := range dig(c, "env").([]any) {
			spec.env[dig(e, "name").(string)] = dig(e, "value").(string)
		}
		spec.env["SEED_IMAGE"], spec.env["CONFIGURED_IMAGE"] = seed, configured
		for _, s := range append(dig(c, "command").([]any), dig(c, "args").([]any)...) {
			spec.entrypoint = append(spec.entrypoint, s.(string))
		}
		volumes := map[string]any{}
		for _, v := range dig(pod, "volumes").([]any) {
			volumes[dig(v, "name").(string)] = v
		}
		for _, m := range dig(c, "volumeMounts").([]any) {
			path, v := dig(m, "mountPath").(string), volumes[dig(m, "name").(string)]
			switch {
			case dig(v, "emptyDir") != nil:
				spec.mounts[path] = t.TempDir()
			case dig(v, "secret") != nil:
				spec.mounts[path] = auth
			case dig(v, "configMap") != nil:
				spec.mounts[path] = cluster
			default:
				t.Fatalf("volume %v of the Job is not one the test can stand in for", v)
			}
			spec.readOnly[path] = dig(m, "readOnly") == true
		}
		if spec.image != contribImage {
			t.Errorf("the Job runs %s, want seedbuild's image %s", spec.image, contribImage)
		}
		runPod(t, p, reg, spec)
		if d := inspect(t, "--authfile", reg.authfile, "--cert-dir", reg.caDir, "docker://"+configured); d.Kind != "native" || d.LayerCount <= seedLayers {
			t.Errorf("the Job's configured seed inspects as %q with %d layers; want native, with more than the seed's %d", d.Kind, d.LayerCount, seedLayers)
		}
	})

	t.Run("tekton task", func(t *testing.T) {
		task := parseYAML(t, "tekton/configured-seed-task.yaml")
		step := dig(task.Spec, "steps", 0)
		configured := reg.addr + "/seeds/sno-tekton:4.20"
		var seedbuildImage string
		for _, prm := range dig(task.Spec, "params").([]any) {
			if dig(prm, "name") == "seedbuild-image" {
				seedbuildImage, _ = dig(prm, "default").(string)
			}
		}
		results := t.TempDir()
		scripts := t.TempDir()
		subst := strings.NewReplacer("$(params.seed)", seed, "$(params.image)", configured, "$(params.seedbuild-image)", seedbuildImage,
			"$(workspaces.config.path)", "/workspace/config", "$(workspaces.registry-auth.path)", "/workspace/registry-auth",
			"$(results.image-id.path)", "/tekton/results/image-id")
		if err := os.WriteFile(filepath.Join(scripts, "build"), []byte(subst.Replace(dig(step, "script").(string))), 0o755); err != nil {
			t.Fatal(err)
		}
		spec := podSpec{image: subst.Replace(dig(step, "image").(string)), env: map[string]string{}, entrypoint: []string{"/tekton/scripts/build"},
			privileged: dig(step, "securityContext", "privileged") == true,
			mounts:     map[string]string{"/workspace/config": cluster, "/workspace/registry-auth": auth, "/tekton/results": results, "/tekton/scripts": scripts},
			readOnly:   map[string]bool{"/workspace/registry-auth": true, "/tekton/scripts": true}}
		for _, e := range dig(step, "env").([]any) {
			spec.env[dig(e, "name").(string)] = subst.Replace(dig(e, "value").(string))
		}
		for _, m := range dig(step, "volumeMounts").([]any) {
			spec.mounts[dig(m, "mountPath").(string)] = t.TempDir()
		}
		if spec.image != contribImage {
			t.Errorf("the Task runs %s, want seedbuild's image %s", spec.image, contribImage)
		}
		runPod(t, p, reg, spec)
		d := inspect(t, "--authfile", reg.authfile, "--cert-dir", reg.caDir, "docker://"+configured)
		if d.Kind != "native" || d.LayerCount <= seedLayers {
			t.Errorf("the Task's configured seed inspects as %q with %d layers; want native, with more than the seed's %d", d.Kind, d.LayerCount, seedLayers)
		}
		if id := strings.TrimSpace(readFile(t, filepath.Join(results, "image-id"))); !imageID.MatchString(id) || !strings.Contains(d.ConfigDigest, id) {
			t.Errorf("the Task's image-id result is %q; the pushed seed's config is %s", id, d.ConfigDigest)
		}
	})
}
