package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// selfSigned makes a CA-less self-signed certificate for 127.0.0.1 in dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, "domain.crt"), filepath.Join(dir, "domain.key")
	sh(t, nil, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
		"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
	return cert, key
}

// certDir is a --cert-dir folder trusting cert.
func certDir(t *testing.T, cert string) string {
	t.Helper()
	dir := t.TempDir()
	sh(t, nil, "cp", cert, filepath.Join(dir, "ca.crt"))
	return dir
}

func authFile(t *testing.T, registry, user, pass string) string {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return writeTemp(t, fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, registry, auth))
}

// TestRegistryAuthAndTLS pushes and inspects through a docker-registry
// with htpasswd auth and a self-signed certificate.
func TestRegistryAuthAndTLS(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	const pass = "SEEDBUILD-CANARY-registry-pass"
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(sh(t, nil, "htpasswd", "-Bbn", "seeduser", pass)), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, registryOptions{htpasswd: htpasswd, cert: cert, key: key})
	trust := certDir(t, cert)
	otherCert, _ := selfSigned(t, t.TempDir())
	wrongCA := certDir(t, otherCert)
	good := authFile(t, reg.addr, "seeduser", pass)
	bad := authFile(t, reg.addr, "seeduser", "wrong-password")
	root := smallRoot(t, nil)
	image := reg.ref("seeds/auth:1")

	var outputs []string
	run := func(env []string, args ...string) result {
		r := seedbuild(t, env, args...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	if r := run(nil, "create", "-q", "--rootfs", root, "--base", "oci-archive:"+f.base, "--output", image, "--authfile", good, "--cert-dir", trust); r.code != 0 {
		t.Fatalf("push with good credentials and the right CA: %s", r)
	}
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", root, "--base", "oci-archive:"+f.base, "--tag", "seed:push")...)
	digestFile := filepath.Join(t.TempDir(), "digest")
	if r := run(nil, st.flags("push", "-q", "localhost/seed:push", reg.ref("seeds/pushed:1"), "--authfile", good, "--cert-dir", trust, "--digestfile", digestFile)...); r.code != 0 {
		t.Fatalf("seedbuild push: %s", r)
	}
	if d, err := os.ReadFile(digestFile); err != nil || string(d) != inspect(t, reg.ref("seeds/pushed:1"), "--authfile", good, "--cert-dir", trust).Digest {
		t.Errorf("push --digestfile wrote %q (%v), want the pushed manifest's digest", d, err)
	}
	if r := run(nil, st.flags("push", "-q", "localhost/seed:push", reg.ref("seeds/pushed:2"), "--authfile", bad, "--cert-dir", trust)...); r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Errorf("seedbuild push with bad credentials: %s", r)
	}
	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int
		contains string
	}{
		{"authfile", nil, []string{"--authfile", good, "--cert-dir", trust}, 0, ""},
		{"REGISTRY_AUTH_FILE", []string{"REGISTRY_AUTH_FILE=" + good}, []string{"--cert-dir", trust}, 0, ""},
		{"bad credentials", nil, []string{"--authfile", bad, "--cert-dir", trust}, 1, "unauthorized"},
		{"no credentials", []string{"REGISTRY_AUTH_FILE=" + writeTemp(t, `{"auths":{}}`)}, []string{"--cert-dir", trust}, 1, "unauthorized"},
		{"wrong CA", nil, []string{"--authfile", good, "--cert-dir", wrongCA}, 1, "certificate"},
		{"wrong CA, no verify", nil, []string{"--authfile", good, "--cert-dir", wrongCA, "--tls-verify=false"}, 0, ""},
		{"creds flag", nil, []string{"--creds", "seeduser:" + pass, "--cert-dir", trust}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(tt.env, append([]string{"inspect", image}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("inspect %v: %s\nwant exit %d", tt.args, r, tt.code)
			}
			if tt.code != 0 {
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(lines) != 1 || !strings.Contains(strings.ToLower(lines[0]), tt.contains) {
					t.Errorf("inspect %v stderr = %q, want one line saying %q", tt.args, r.stderr, tt.contains)
				}
			}
		})
	}
	t.Run("no secret in any output", func(t *testing.T) {
		for _, o := range outputs {
			if strings.Contains(o, pass) || strings.Contains(o, base64.StdEncoding.EncodeToString([]byte("seeduser:"+pass))) {
				t.Errorf("an output leaks the registry password:\n%s", o)
			}
		}
	})
}

// TestRegistryUnreachable: a registry that is not there gives one clear
// line after the retries, and nothing is left behind.
func TestRegistryUnreachable(t *testing.T) {
	f := getFixtures(t)
	tmp := t.TempDir()
	dest := fmt.Sprintf("docker://127.0.0.1:%d/seeds/x:1", freePort(t))
	r := seedbuild(t, []string{"TMPDIR=" + tmp}, "create", "-q", "--rootfs", smallRoot(t, nil), "--base", "oci-archive:"+f.base,
		"--output", dest, "--tls-verify=false", "--retry", "2", "--retry-delay", "100ms")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, "connection refused") || strings.Count(r.stderr, "retrying") != 2 {
		t.Errorf("push to a registry that is not there: %s\nwant exit 1, two retries, and a last line saying connection refused", r)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed push left %v behind", left)
	}
}

// TestRegistryGoesAwayMidPush cuts the push's connection to the registry in
// the middle of an upload, as a registry that goes away does: the push
// retries and succeeds, and the pushed seed is whole. A proxy in front of
// the registry cuts the first connection that has carried 8 MiB, so the cut
// lands in an upload however fast the machine is.
func TestRegistryGoesAwayMidPush(t *testing.T) {
	f := getFixtures(t)
	reg := startRegistry(t, registryOptions{})
	const cutAfter = 8 << 20
	proxy := startCutProxy(t, reg.addr, cutAfter)
	// 32 MiB of noise makes a layer that no compression brings under the cut.
	root := smallRoot(t, map[string]string{"var/lib/noise.bin": noise(32<<20, 2463534242)})
	r := seedbuild(t, nil, "create", "--rootfs", root, "--base", "oci-archive:"+f.base, "--output", "docker://"+proxy.addr+"/seeds/flaky:1",
		"--tls-verify=false", "--retry", "5", "--retry-delay", "1s")
	cut, afterCut := proxy.stats()
	if !cut {
		t.Fatalf("no connection carried %d bytes, so none was cut and the test proves nothing: %s", cutAfter, r)
	}
	if r.code != 0 {
		t.Fatalf("push across a cut connection failed: %s", r)
	}
	if !strings.Contains(r.stderr, "retrying") || afterCut == 0 {
		t.Errorf("the push went on after the cut through %d new connections, output:\n%s\nwant a retry, through new connections", afterCut, r.stderr)
	}
	dest := reg.ref("seeds/flaky:1")
	if d := inspect(t, "--tls-verify=false", dest); d.Kind != "native" {
		t.Errorf("the pushed seed inspects as %q", d.Kind)
	}
	checkWholeImage(t, dest, strings.TrimSpace(r.stdout))
}

// checkWholeImage reads the image at ref, in a plain-HTTP registry, back
// with skopeo: its manifest must have the digest want, and every blob the
// manifest names (config and layers) must come back whole, with that
// digest and size.
func checkWholeImage(t *testing.T, ref, want string) {
	t.Helper()
	raw := sh(t, nil, "skopeo", "inspect", "--raw", "--tls-verify=false", ref)
	if got := digest.FromString(raw).String(); got != want {
		t.Errorf("the manifest at %s has digest %s, want %s", ref, got, want)
	}
	var mf imgspecv1.Manifest
	if err := json.Unmarshal([]byte(raw), &mf); err != nil {
		t.Fatalf("the manifest at %s: %v\n%s", ref, err, raw)
	}
	if len(mf.Layers) == 0 {
		t.Fatalf("the manifest at %s names no layers:\n%s", ref, raw)
	}
	dir := filepath.Join(t.TempDir(), "image")
	sh(t, nil, "skopeo", "copy", "-q", "--src-tls-verify=false", ref, "dir:"+dir)
	for _, d := range append([]imgspecv1.Descriptor{mf.Config}, mf.Layers...) {
		p := filepath.Join(dir, d.Digest.Encoded())
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("blob %s did not arrive: %v", d.Digest, err)
			continue
		}
		if got := "sha256:" + fileSHA(t, p); got != d.Digest.String() || fi.Size() != d.Size {
			t.Errorf("blob %s arrived as %s, %d bytes; want %d bytes", d.Digest, got, fi.Size(), d.Size)
		}
	}
}

// TestPushInterrupted sends SIGINT during a push: exit non-zero, the
// registry has no image, local storage is as it was.
func TestPushInterrupted(t *testing.T) {
	f := getFixtures(t)
	reg := startRegistry(t, registryOptions{})
	st := newStore(t)
	root := smallRoot(t, map[string]string{"var/lib/noise.bin": noise(128<<20, 88172645)})
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", root, "--base", "oci-archive:"+f.base, "--tag", "seed:big")...)
	images := st.buildah(t, "images", "-a", "-q", "--no-trunc")
	dest := reg.ref("seeds/interrupted:1")
	cmd := exec.Command(bin, st.flags("push", "--tls-verify=false", "--retry", "0", "localhost/seed:big", dest)...)
	out, sent, waitErr := runUntil(t, cmd, "Copying blob", func() {
		cmd.Process.Signal(syscall.SIGINT)
	})
	if waitErr == nil || !sent {
		t.Fatalf("push after SIGINT: %v\n%s", waitErr, out)
	}
	if r := seedbuild(t, nil, "inspect", "--tls-verify=false", dest); r.code != 1 {
		t.Errorf("the registry holds the interrupted image: %s", r)
	}
	if got := st.buildah(t, "images", "-a", "-q", "--no-trunc"); got != images {
		t.Errorf("local images changed after an interrupted push")
	}
}

// noise is n incompressible bytes from an xorshift generator started at
// seed: a layer that takes a while to push.
func noise(n int, seed uint32) string {
	b := make([]byte, n)
	x := seed
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}
