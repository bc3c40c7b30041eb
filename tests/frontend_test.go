package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// busyboxExtra is a folder with Debian's static busybox as the image's
// shell and tar, laid over a stand-in base with MKBASE_EXTRA.
func busyboxExtra(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "usr/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, nil, "cp", "/bin/busybox", filepath.Join(bin, "busybox"))
	for _, tool := range []string{"sh", "tar", "mkdir", "touch", "cat", "echo", "rm", "ls", "gzip", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildStore is a store holding a stand-in base with busybox, shared by
// the frontend tests.
var (
	buildStoreOnce sync.Once
	buildStoreVal  store
	buildStoreErr  string
)

func busyboxBase(t *testing.T) store {
	t.Helper()
	f := getFixtures(t)
	buildStoreOnce.Do(func() {
		dir := filepath.Join(work, "build-store")
		run, _ := os.MkdirTemp("/tmp", "sbrun")
		st := store{root: filepath.Join(dir, "root"), runroot: run}
		env := append(st.buildahEnv(), "MKBASE_EXTRA="+busyboxExtra(t))
		if out, err := command(hackScript("mkbase.sh"), f.root, "localhost/busybase:latest").CombinedOutputEnv(env); err != nil {
			buildStoreErr = string(out) + err.Error()
		}
		buildStoreVal = st
	})
	if buildStoreErr != "" {
		t.Fatalf("making the busybox base: %s", buildStoreErr)
	}
	return buildStoreVal
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	writeFilesMode(t, dir, files, 0o644)
}

// writeFilesMode writes each file (name relative to dir) with mode,
// making the folders above it.
func writeFilesMode(t *testing.T, dir string, files map[string]string, mode os.FileMode) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// lastLayers merges the members of the image's layers after skip.
func layersAfter(t *testing.T, img *ociImage, skip int) map[string]entry {
	out := map[string]entry{}
	for i := skip; i < len(img.manifest.Layers); i++ {
		for k, v := range img.layer(t, i) {
			out[k] = v
		}
	}
	return out
}

func TestBuildRunArgLabelCopy(t *testing.T) {
	st := busyboxBase(t)
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{
		"Containerfile": `FROM localhost/busybase:latest
ARG GREETING=hello
LABEL org.example.test=yes
COPY data/ /usr/share/test/
RUN echo "$GREETING" > /usr/share/test/greeting
RUN mkdir -p /usr/share/test/made && touch /usr/share/test/made/x
`,
		".containerignore": "data/secret.txt\n",
		"data/kept.txt":    "kept\n",
		"data/secret.txt":  "must not be sent\n",
	})
	dir := t.TempDir()
	var digests []string
	for i, name := range []string{"a.tar", "b.tar"} {
		out := filepath.Join(dir, name)
		args := st.flags("build", "--timestamp", "1700000000", "--build-arg", "GREETING=hi there", "-t", "built:"+string(rune('a'+i)), "-o", "oci-archive:"+out, ctx)
		r := mustSeedbuild(t, args...)
		if id := strings.TrimSpace(r.stdout); len(id) != 64 {
			t.Errorf("build printed %q, want an image ID", r.stdout)
		}
		img := readArchive(t, out)
		digests = append(digests, img.manifest.Config.Digest.String())
		if img.config.Config.Labels["org.example.test"] != "yes" || img.config.Config.Labels["containers.bootc"] != "1" {
			t.Errorf("labels = %v", img.config.Config.Labels)
		}
		files := layersAfter(t, img, 1)
		if got := string(files["usr/share/test/greeting"].data); got != "hi there\n" {
			t.Errorf("greeting = %q, want the build arg", got)
		}
		if _, ok := files["usr/share/test/kept.txt"]; !ok {
			t.Errorf("COPY lost data/kept.txt")
		}
		if _, ok := files["usr/share/test/secret.txt"]; ok {
			t.Errorf("COPY sent data/secret.txt, which .containerignore excludes")
		}
		if _, ok := files["usr/share/test/made/x"]; !ok {
			t.Errorf("the second RUN's file is missing")
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds with --timestamp gave configs %s and %s, want the same", digests[0], digests[1])
	}
}

func TestBuildStopsOnLint(t *testing.T) {
	st := busyboxBase(t)
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{"Containerfile": "FROM localhost/busybase:latest\nLABEL com.openshift.lifecycle-agent.seed_format_version=5\n"})
	r := seedbuild(t, nil, st.flags("build", ctx)...)
	if r.code != 1 || !strings.Contains(r.stderr, "SB011") || !strings.Contains(r.stderr, "--no-lint") {
		t.Errorf("build of a bad Containerfile: %s\nwant exit 1 with SB011", r)
	}
}

func TestLintCommand(t *testing.T) {
	f := getFixtures(t)
	st := busyboxBase(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"bad":  "FROM localhost/busybase:latest\nCOPY x /var/lib/x\nLABEL ostree.commit=1\n",
		"warn": "FROM localhost/busybase:latest\nCOPY x /var/lib/x\n",
		"good": "FROM localhost/busybase:latest\nCOPY x /usr/share/x\n",
		"bin":  "FROM x\n\x00\x01\x02\xff",
	})
	tests := []struct {
		name  string
		args  []string
		code  int
		rules []string
	}{
		{"errors", []string{"-f", filepath.Join(dir, "bad")}, 1, []string{"SB013", "SB012"}},
		{"warning only", []string{"-f", filepath.Join(dir, "warn")}, 0, []string{"SB013"}},
		{"strict warning", []string{"--strict", "-f", filepath.Join(dir, "warn")}, 1, []string{"SB013"}},
		{"good", []string{"-f", filepath.Join(dir, "good")}, 0, nil},
		{"binary", []string{"-f", filepath.Join(dir, "bin")}, 1, []string{"SB001"}},
		{"image", []string{"--image", "oci-archive:" + f.base}, 1, []string{"IM006"}},
		{"missing file", []string{"-f", filepath.Join(dir, "nope")}, 1, nil},
		{"both", []string{"-f", "x", "--image", "y"}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seedbuild(t, nil, st.flags(append([]string{"lint", "--json"}, tt.args...)...)...)
			if r.code != tt.code {
				t.Fatalf("lint %v: %s\nwant exit %d", tt.args, r, tt.code)
			}
			if tt.rules == nil {
				return
			}
			var findings []struct {
				Rule, Severity, File, Message, Hint string
				Line                                int
			}
			if err := json.Unmarshal([]byte(r.stdout), &findings); err != nil {
				t.Fatalf("lint --json: %v\n%s", err, r.stdout)
			}
			var got []string
			for _, f := range findings {
				got = append(got, f.Rule)
			}
			for _, want := range tt.rules {
				if !containsString(got, want) {
					t.Errorf("lint %v rules = %v, want %s", tt.args, got, want)
				}
			}
		})
	}
}

func TestConfiguredSeed(t *testing.T) {
	f := getFixtures(t)
	st := busyboxBase(t)
	cfg := writeTemp(t, `{"clusterName":"sno","baseDomain":"example.com","pullSecret":"{\"auths\":{}}"}`)
	extra := t.TempDir()
	writeFiles(t, extra, map[string]string{"extra.yaml": "kind: ConfigMap\n"})
	for _, layout := range []string{"native", "bootc-tarball"} {
		t.Run(layout, func(t *testing.T) {
			seed := "localhost/seed:" + layout
			mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "localhost/busybase:latest", "--layout", layout, "--tag", seed)...)
			ctx := filepath.Join(t.TempDir(), "ctx")
			r := mustSeedbuild(t, st.flags("containerfile", "--seed", seed, "--cluster-config", cfg, "--extra-manifests", extra, "-o", ctx, "--json")...)
			if !strings.Contains(r.stderr, "pull secret") {
				t.Errorf("containerfile did not warn about the pull secret: %s", r)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || raw["context"] != ctx || raw["containerfile"] != filepath.Join(ctx, "Containerfile") || raw["seed_kind"] != layout {
				t.Errorf("containerfile --json = %s (%v)", r.stdout, err)
			}
			if w, _ := raw["warnings"].([]any); len(w) != 1 {
				t.Errorf("containerfile --json warnings = %v, want the pull-secret warning", raw["warnings"])
			}
			cf := readFile(t, filepath.Join(ctx, "Containerfile"))
			if strings.Contains(cf, "/etc/") && !strings.Contains(cf, "etc.tgz") {
				t.Errorf("Containerfile writes into /etc:\n%s", cf)
			}
			if got := strings.Contains(cf, "tar -xzf"); got != (layout == "bootc-tarball") {
				t.Errorf("untar steps present = %v for %s:\n%s", got, layout, cf)
			}
			for _, builder := range []string{"seedbuild", "buildah"} {
				out := filepath.Join(t.TempDir(), "configured.tar")
				tag := "localhost/configured:" + layout + "-" + builder
				if builder == "seedbuild" {
					mustSeedbuild(t, st.flags("build", "-t", tag, "-o", "oci-archive:"+out, ctx)...)
				} else {
					// Debian's buildah lowers its own nproc; nofile is what it must keep.
					st.buildah(t, "bud", "-q", "--isolation", "chroot", "--ulimit", "nofile="+ulimit(unix.RLIMIT_NOFILE), "-t", tag, ctx)
					st.buildah(t, "push", "-q", tag, "oci-archive:"+out)
				}
				if d := inspect(t, "oci-archive:"+out); d.Kind != layout {
					t.Errorf("%s-built configured seed inspects as %q, want %s", builder, d.Kind, layout)
				}
				img := readArchive(t, out)
				files := layersAfter(t, img, 1)
				if got := string(files["usr/opt/openshift/cluster-configuration/manifest.json"].data); !strings.Contains(got, `"clusterName": "sno"`) {
					t.Errorf("%s: manifest.json = %q", builder, got)
				}
				if _, ok := files["usr/opt/openshift/cluster-configuration/manifests/extra.yaml"]; !ok {
					t.Errorf("%s: the extra manifest is missing", builder)
				}
				tmpf := string(files["usr/lib/tmpfiles.d/seedbuild-cluster-configuration.conf"].data)
				if !strings.Contains(tmpf, "/var/opt/openshift/cluster-configuration") {
					t.Errorf("%s: tmpfiles.d rule = %q", builder, tmpf)
				}
				if layout == "bootc-tarball" {
					if got := string(files["etc/chrony.conf"].data); got != "server 10.0.0.1 iburst\n" {
						t.Errorf("%s: etc.tgz was not laid onto the image: etc/chrony.conf = %q", builder, got)
					}
				}
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		bad := writeTemp(t, `{"clusterName": `)
		tests := []struct {
			args     []string
			contains string
		}{
			{[]string{"--seed", "oci-archive:" + f.base, "--cluster-config", cfg}, "not a usable seed"},
			{[]string{"--seed", "oci-archive:" + f.bootc, "--cluster-config", bad}, "not valid JSON"},
			{[]string{"--seed", "oci-archive:" + f.bootc, "--cluster-config", filepath.Join(t.TempDir(), "nope.json")}, "nope.json"},
		}
		for _, tt := range tests {
			out := filepath.Join(t.TempDir(), "ctx")
			r := seedbuild(t, nil, st.flags(append([]string{"containerfile", "-o", out}, tt.args...)...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.contains) {
				t.Errorf("containerfile %v: %s\nwant exit 1 naming %q", tt.args, r, tt.contains)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("containerfile %v left %s behind", tt.args, out)
			}
		}
	})
}

// ulimit is the current SOFT:HARD limit, which buildah's RUN must keep:
// raising limits is not permitted here.
func ulimit(resource int) string {
	var r unix.Rlimit
	unix.Getrlimit(resource, &r)
	return fmt.Sprintf("%d:%d", r.Cur, r.Max)
}

// TestBuildInterrupted sends SIGINT during a RUN step: the build stops
// with a non-zero exit and leaves no image or working container behind.
func TestBuildInterrupted(t *testing.T) {
	st := busyboxBase(t)
	ctx := t.TempDir()
	// The RUN prints a line its step's own line cannot hold (the shell
	// joins the two words), then sleeps: the signal comes once the RUN runs.
	writeFiles(t, ctx, map[string]string{"Containerfile": "FROM localhost/busybase:latest\nRUN echo \"run\"\"-started\"; sleep 8\n"})
	images := st.buildah(t, "images", "-a", "-q", "--no-trunc")
	containers := st.buildah(t, "containers", "-a", "-q")
	cmd := exec.Command(bin, st.flags("build", "-t", "interrupted:1", ctx)...)
	start := time.Now()
	out, sent, waitErr := runUntil(t, cmd, "run-started", func() {
		cmd.Process.Signal(syscall.SIGINT)
	})
	if !sent || waitErr == nil {
		t.Fatalf("build after SIGINT: %v\n%s", waitErr, out)
	}
	if time.Since(start) > 60*time.Second {
		t.Errorf("the build took %s to stop", time.Since(start))
	}
	if got := st.buildah(t, "images", "-a", "-q", "--no-trunc"); got != images {
		t.Errorf("images after an interrupted build = %q, want %q", got, images)
	}
	if got := st.buildah(t, "containers", "-a", "-q"); got != containers {
		t.Errorf("containers after an interrupted build = %q, want %q", got, containers)
	}
}
