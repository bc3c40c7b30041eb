package tests

// seedbuild precache against a real registry (Debian's docker-registry on
// 127.0.0.1), through a proxy that counts the bytes it serves.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingProxy serves a registry and counts the blob bytes it sends.
type countingProxy struct {
	addr      string
	blobBytes atomic.Int64
	manifests atomic.Int64
	mu        sync.Mutex
	// byBlob is the bytes served of each blob, by digest.
	byBlob map[string]int64
	// delay, when set, slows every blob read of 64 KiB by that much.
	delay atomic.Int64
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	p := &countingProxy{byBlob: map[string]int64{}}
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		switch {
		case strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.Request.Method == http.MethodGet:
			resp.Body = &countingBody{ReadCloser: resp.Body, p: p, digest: resp.Request.URL.Path[strings.LastIndex(resp.Request.URL.Path, "/")+1:]}
		case strings.Contains(resp.Request.URL.Path, "/manifests/") && resp.Request.Method == http.MethodGet:
			p.manifests.Add(1)
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	p.addr = l.Addr().String()
	return p
}

type countingBody struct {
	io.ReadCloser
	p      *countingProxy
	digest string
}

// served is the bytes served of the blob of digest d.
func (p *countingProxy) served(d string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byBlob[d]
}

func (b *countingBody) Read(buf []byte) (int, error) {
	if d := time.Duration(b.p.delay.Load()); d > 0 {
		if len(buf) > 64<<10 {
			buf = buf[:64<<10]
		}
		time.Sleep(d)
	}
	n, err := b.ReadCloser.Read(buf)
	b.p.blobBytes.Add(int64(n))
	b.p.mu.Lock()
	b.p.byBlob[b.digest] += int64(n)
	b.p.mu.Unlock()
	return n, err
}

// testImage is an image made of layers of noise.
type testImage struct {
	name   string
	arch   string
	layers [][]byte // gzip blobs
}

// noiseLayer is a gzip tar layer holding one file of n bytes of noise,
// the same for the same seed.
func noiseLayer(t *testing.T, name string, n int, seed int64) []byte {
	t.Helper()
	data := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(data)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)})
	tw.Write(data)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

// pushTestImage writes img as an OCI layout and pushes it with skopeo to
// the registry at addr.
func pushTestImage(t *testing.T, addr string, img testImage, skopeoArgs ...string) {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs/sha256")
	os.MkdirAll(blobs, 0o755)
	put := func(b []byte) string {
		d := sha(b)
		os.WriteFile(filepath.Join(blobs, strings.TrimPrefix(d, "sha256:")), b, 0o644)
		return d
	}
	var diffIDs []string
	var layers []map[string]any
	for _, l := range img.layers {
		zr, err := gzip.NewReader(bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		diffIDs = append(diffIDs, sha(plain))
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(l), "size": len(l)})
	}
	arch := img.arch
	if arch == "" {
		arch = "amd64"
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}, "config": map[string]any{}})
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)}, "layers": layers})
	md := put(man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man)}}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	if len(skopeoArgs) == 0 {
		skopeoArgs = []string{"--dest-tls-verify=false"}
	}
	sh(t, nil, "skopeo", append(append([]string{"copy", "-q"}, skopeoArgs...), "oci:"+dir, "docker://"+addr+"/"+img.name)...)
}

// sharedImages are n images that share two base layers and each add one
// of their own; it returns them and the bytes of their unique blobs.
func sharedImages(t *testing.T, n, baseKiB, ownKiB int) ([]testImage, int64) {
	base1 := noiseLayer(t, "base1", baseKiB<<10, 1)
	base2 := noiseLayer(t, "base2", baseKiB<<10, 2)
	unique := int64(len(base1) + len(base2))
	var imgs []testImage
	for i := range n {
		own := noiseLayer(t, fmt.Sprintf("own%d", i), ownKiB<<10, int64(100+i))
		unique += int64(len(own))
		imgs = append(imgs, testImage{name: fmt.Sprintf("workload/app-%d:v1", i), layers: [][]byte{base1, base2, own}})
	}
	return imgs, unique
}

func writeList(t *testing.T, lines ...string) string {
	return writeTemp(t, strings.Join(lines, "\n")+"\n")
}

// storeImages lists the names in the store.
func storeImages(t *testing.T, st store) string {
	return st.buildah(t, "images", "--format", "{{.Name}}:{{.Tag}}")
}

// TestPrecacheFetchesEachBlobOnce: images that share base layers, pulled
// at the same time, fetch each blob once; a second run fetches nothing;
// digest references are pulled and named so; the status is the agent's.
func TestPrecacheFetchesEachBlobOnce(t *testing.T) {
	reg := startRegistry(t, registryOptions{})
	imgs, unique := sharedImages(t, 8, 3072, 512)
	for _, img := range imgs {
		pushTestImage(t, reg.addr, img)
	}
	proxy := startCountingProxy(t, reg.addr)
	var names []string
	for _, img := range imgs {
		names = append(names, proxy.addr+"/"+img.name)
	}
	list := writeList(t, append([]string{"# a comment", ""}, names...)...)
	st := newStore(t)
	r := seedbuild(t, nil, st.flags("precache", "--containers-list", list, "--tls-verify=false", "--jobs", "8", "--json")...)
	if r.code != 0 {
		t.Fatalf("precache: %s", r)
	}
	var status struct {
		Total, Pulled, Present, Failed, Skipped int
	}
	if err := json.Unmarshal([]byte(r.stdout), &status); err != nil || status.Total != 8 || status.Pulled != 8 {
		t.Errorf("precache --json = %s (%v), want 8 pulled of 8", r.stdout, err)
	}
	served := proxy.blobBytes.Load()
	if limit := unique + unique/100; served > limit {
		t.Errorf("the registry served %d blob bytes for %d unique ones (%.2fx), want at most 1.01x", served, unique, float64(served)/float64(unique))
	}
	t.Logf("served %d blob bytes for %d unique (%.3fx)", served, unique, float64(served)/float64(unique))
	got := storeImages(t, st)
	for _, img := range imgs {
		if !strings.Contains(got, img.name) {
			t.Errorf("the store lacks %s:\n%s", img.name, got)
		}
	}
	// Again: every image is there, nothing is fetched.
	before := proxy.blobBytes.Load()
	r = seedbuild(t, nil, st.flags("precache", "--containers-list", list, "--tls-verify=false", "--json")...)
	if r.code != 0 || !strings.Contains(r.stdout, `"present": 8`) || proxy.blobBytes.Load() != before {
		t.Errorf("a second precache: %s\nfetched %d bytes; want all 8 present and nothing fetched", r, proxy.blobBytes.Load()-before)
	}
}

// TestPrecacheFailures: an image that is not there (manifest unknown, not
// tried again) stops the run without --best-effort, exit 1, what was
// pulled kept; with it the run goes on and exits 0. An image for another
// architecture is skipped. A store without room is refused before any
// blob is fetched.
func TestPrecacheFailures(t *testing.T) {
	reg := startRegistry(t, registryOptions{})
	imgs, _ := sharedImages(t, 2, 256, 128)
	arm := testImage{name: "workload/arm-only:v1", arch: "arm64", layers: [][]byte{noiseLayer(t, "arm", 128<<10, 9)}}
	for _, img := range append(imgs, arm) {
		pushTestImage(t, reg.addr, img)
	}
	proxy := startCountingProxy(t, reg.addr)
	missing := proxy.addr + "/workload/missing:v1"
	list := writeList(t, proxy.addr+"/"+imgs[0].name, missing, proxy.addr+"/"+arm.name, proxy.addr+"/"+imgs[1].name)

	st := newStore(t)
	start := time.Now()
	r := seedbuild(t, nil, st.flags("precache", "--containers-list", list, "--tls-verify=false", "--jobs", "1")...)
	if r.code != 1 || !strings.Contains(r.stderr, "workload/missing:v1") || !strings.Contains(r.stderr, "manifest unknown") {
		t.Errorf("precache with a missing image: %s\nwant exit 1 naming it, manifest unknown", r)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("precache with a missing image took %s: a manifest unknown is not to be tried again", el)
	}

	st = newStore(t)
	r = seedbuild(t, nil, st.flags("precache", "--containers-list", list, "--tls-verify=false", "--best-effort", "--json")...)
	var status struct {
		Total, Pulled, Failed, Skipped int
		Images                         []struct{ Image, Status, Reason string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &status); r.code != 0 || err != nil || status.Pulled != 2 || status.Failed != 1 || status.Skipped != 1 {
		t.Errorf("precache --best-effort: %s\nwant exit 0: 2 pulled, 1 failed, 1 skipped", r)
	}
	for _, im := range status.Images {
		if strings.HasSuffix(im.Image, arm.name) && (im.Status != "skipped" || !strings.Contains(im.Reason, "arm64")) {
			t.Errorf("the arm64 image: %+v, want skipped for its architecture", im)
		}
	}
	if got := storeImages(t, st); strings.Contains(got, "arm-only") {
		t.Errorf("the arm64 image was pulled:\n%s", got)
	}

	// A store of 1 MiB cannot take 2 MiB of blobs: refused before any.
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs for the space check: %v %s", err, out)
	}
	defer syscall.Unmount(small, syscall.MNT_DETACH)
	big := testImage{name: "workload/big:v1", layers: [][]byte{noiseLayer(t, "big", 2<<20, 11)}}
	pushTestImage(t, reg.addr, big)
	r = seedbuild(t, nil, "--root", filepath.Join(small, "root"), "--runroot", st.runroot+"-small", "--storage-driver", "vfs",
		"precache", "--containers-list", writeList(t, proxy.addr+"/"+big.name), "--tls-verify=false")
	if got := proxy.served(sha(big.layers[0])); r.code != 1 || !strings.Contains(r.stderr, "nothing was fetched") || got != 0 {
		t.Errorf("precache into a 1 MiB store: %s\nfetched %d bytes of its layer; want exit 1, refused before any", r, got)
	}
}

// TestPrecacheKilledThenRerun: a precache killed while it fetches leaves
// what it finished; the rerun fetches only the rest and removes what the
// killed run left half-fetched.
func TestPrecacheKilledThenRerun(t *testing.T) {
	reg := startRegistry(t, registryOptions{})
	var imgs []testImage
	var unique int64
	for i := range 4 {
		l := noiseLayer(t, fmt.Sprintf("l%d", i), 2<<20, int64(40+i))
		unique += int64(len(l))
		imgs = append(imgs, testImage{name: fmt.Sprintf("workload/k-%d:v1", i), layers: [][]byte{l}})
		pushTestImage(t, reg.addr, imgs[i])
	}
	proxy := startCountingProxy(t, reg.addr)
	var names []string
	for _, img := range imgs {
		names = append(names, proxy.addr+"/"+img.name)
	}
	list := writeList(t, names...)
	st := newStore(t)
	tmp := t.TempDir()
	// Slowed, one image at a time: killed once the first is whole and the
	// second half-fetched.
	proxy.delay.Store(int64(20 * time.Millisecond))
	cmd := exec.Command(bin, st.flags("precache", "--containers-list", list, "--tls-verify=false", "--jobs", "1")...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && proxy.blobBytes.Load() < int64(len(imgs[0].layers[0]))+(1<<20) {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	proxy.delay.Store(0)
	first := proxy.blobBytes.Load()
	firstLayer := proxy.served(sha(imgs[0].layers[0]))
	r := seedbuild(t, []string{"TMPDIR=" + tmp}, st.flags("precache", "--containers-list", list, "--tls-verify=false", "--json")...)
	if r.code != 0 || !strings.Contains(r.stdout, `"present": 1`) {
		t.Fatalf("the rerun: %s\nwant exit 0 with the first image there already", r)
	}
	rest := unique - int64(len(imgs[0].layers[0]))
	if rerun := proxy.blobBytes.Load() - first; rerun > rest+(64<<10) || proxy.served(sha(imgs[0].layers[0])) != firstLayer {
		t.Errorf("the rerun fetched %d bytes of %d unique, the first image's layer again: %v; want only the rest (%d and the configs)",
			rerun, unique, proxy.served(sha(imgs[0].layers[0])) != firstLayer, rest)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "seedbuild-*"))
	if len(left) != 0 {
		t.Errorf("after the rerun, %q are left in the temporary folder", left)
	}
}

// TestPrecacheFromSeedAndDeploy: precache reads the list a native seed
// carries (create --containers-list) without fetching its big layers, and
// deploy --precache pulls the list before it deploys; a failed precache
// deploys nothing.
func TestPrecacheFromSeedAndDeploy(t *testing.T) {
	f := getFixtures(t)
	reg := startRegistry(t, registryOptions{})
	imgs, _ := sharedImages(t, 2, 256, 128)
	for _, img := range imgs {
		pushTestImage(t, reg.addr, img)
	}
	proxy := startCountingProxy(t, reg.addr)
	list := writeList(t, proxy.addr+"/"+imgs[0].name, proxy.addr+"/"+imgs[1].name)
	seedArchive := filepath.Join(t.TempDir(), "seed.tar")
	create(t, "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--containers-list", list, "--output", "oci-archive:"+seedArchive)
	sh(t, nil, "skopeo", "copy", "-q", "--dest-tls-verify=false", "oci-archive:"+seedArchive, "docker://"+proxy.addr+"/seeds/sno:4.20")
	// inspect --containers-list and lint show the list and its images
	// named by tag alone.
	r := seedbuild(t, nil, "inspect", "--containers-list", "--json", "oci-archive:"+seedArchive)
	var lr struct {
		Found  bool
		Images []string
		ByTag  []string `json:"by_tag"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &lr); r.code != 0 || err != nil || !lr.Found || len(lr.Images) != 2 || len(lr.ByTag) != 2 {
		t.Errorf("inspect --containers-list: %s\nwant the 2 images, both by tag", r)
	}
	st0 := newStore(t)
	if r := seedbuild(t, nil, st0.flags("lint", "--image", "oci-archive:"+seedArchive)...); !strings.Contains(r.stdout+r.stderr, "IM007") {
		t.Errorf("lint --image of a seed whose list names images by tag: %s\nwant IM007", r)
	}
	img := readArchive(t, seedArchive)
	var meta int64
	if n := len(img.manifest.Layers); n > 0 {
		meta = img.manifest.Layers[n-1].Size
	}
	before := proxy.blobBytes.Load()
	st := newStore(t)
	r = seedbuild(t, nil, st.flags("precache", "docker://"+proxy.addr+"/seeds/sno:4.20", "--tls-verify=false", "--json")...)
	if r.code != 0 || !strings.Contains(r.stdout, `"pulled": 2`) {
		t.Fatalf("precache of the seed's list: %s", r)
	}
	pulled := int64(0)
	for _, i := range imgs {
		for _, l := range i.layers {
			pulled += int64(len(l))
		}
	}
	if got := proxy.blobBytes.Load() - before; got > pulled+meta+(64<<10) {
		t.Errorf("precache of the seed fetched %d blob bytes; want the images' (%d) and the seed's metadata layer (%d), not its big layers", got, pulled, meta)
	}

	// deploy --precache: a list with a missing image deploys nothing.
	sys := newSysroot(t)
	beforeStatus := status(t, sys)
	bad := writeList(t, proxy.addr+"/workload/missing:v1")
	r = seedbuild(t, nil, st.flags("deploy", "oci-archive:"+seedArchive, "--stateroot", "seed", "--sysroot", sys, "--method", "ostree",
		"--precache", "--precache-containers-list", bad, "--tls-verify=false")...)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing was deployed") || status(t, sys) != beforeStatus {
		t.Errorf("deploy --precache of a missing image: %s\nwant exit 1, nothing deployed", r)
	}
	st2 := newStore(t)
	r = seedbuild(t, nil, st2.flags("deploy", "oci-archive:"+seedArchive, "--stateroot", "seed", "--sysroot", sys, "--method", "ostree",
		"--precache", "--precache-containers-list", list, "--tls-verify=false")...)
	if r.code != 0 || !strings.Contains(storeImages(t, st2), imgs[1].name) {
		t.Errorf("deploy --precache: %s\nwant the images pulled and the seed deployed", r)
	}
}

// TestPrecacheMirrorAndAuth: a mirror that registries.conf names is used
// when the source registry is unreachable; a registry with htpasswd auth
// and TLS is pulled from with --authfile and --cert-dir, and refused
// without the credentials.
func TestPrecacheMirrorAndAuth(t *testing.T) {
	reg := startRegistry(t, registryOptions{})
	imgs, _ := sharedImages(t, 1, 128, 64)
	pushTestImage(t, reg.addr, imgs[0])
	proxy := startCountingProxy(t, reg.addr)
	gone := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := writeTemp(t, fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n", gone, proxy.addr))
	st := newStore(t)
	r := seedbuild(t, []string{"CONTAINERS_REGISTRIES_CONF=" + conf}, st.flags("precache", "--containers-list", writeList(t, gone+"/"+imgs[0].name), "--tries", "1", "--json")...)
	if r.code != 0 || !strings.Contains(r.stdout, `"pulled": 1`) || proxy.served(sha(imgs[0].layers[2])) == 0 {
		t.Errorf("precache from an unreachable registry with a mirror: %s\nwant it pulled through the mirror", r)
	}

	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(sh(t, nil, "htpasswd", "-Bbn", "puller", "SEEDBUILD-CANARY-pull")), 0o644); err != nil {
		t.Fatal(err)
	}
	secure := startRegistry(t, registryOptions{htpasswd: htpasswd, cert: cert, key: key})
	pushTestImage(t, secure.addr, imgs[0], "--dest-cert-dir", certDir(t, cert), "--dest-creds", "puller:SEEDBUILD-CANARY-pull")
	list := writeList(t, secure.addr+"/"+imgs[0].name)
	trust := certDir(t, cert)
	st = newStore(t)
	if r := seedbuild(t, nil, st.flags("precache", "--containers-list", list, "--cert-dir", trust, "--tries", "1")...); r.code != 1 || strings.Contains(r.stdout+r.stderr, "SEEDBUILD-CANARY") {
		t.Errorf("precache from an auth registry without credentials: %s\nwant exit 1, no secret printed", r)
	}
	good := authFile(t, secure.addr, "puller", "SEEDBUILD-CANARY-pull")
	if r := seedbuild(t, nil, st.flags("precache", "--containers-list", list, "--cert-dir", trust, "--authfile", good)...); r.code != 0 || !strings.Contains(storeImages(t, st), imgs[0].name) {
		t.Errorf("precache with --authfile: %s\nwant the image pulled", r)
	}
}
