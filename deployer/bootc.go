package deployer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/seedbuild/seedbuild/internal/hostroot"
)

// DefaultPodmanURL is the podman service of a root node.
const DefaultPodmanURL = "unix:///run/podman/podman.sock"

// HostPodmanURL is the podman service of host: its socket under its root.
func HostPodmanURL(host hostroot.Host) string {
	return "unix://" + host.Path(strings.TrimPrefix(DefaultPodmanURL, "unix://"))
}

// podmanTimeout bounds the first answer of the podman service.
var podmanTimeout = 5 * time.Second

// podmanConn connects to the podman service at url. The service must
// answer a ping within podmanTimeout: a socket that accepts and never
// answers is an error, not a hang. The connection itself outlives ctx's
// deadline, for the calls made on it later.
func podmanConn(ctx context.Context, url string) (context.Context, error) {
	if err := pingPodman(ctx, url); err != nil {
		return nil, fmt.Errorf("connecting to the podman service at %q: %w", url, err)
	}
	conn, err := bindings.NewConnection(context.WithoutCancel(ctx), url)
	if err != nil {
		return nil, fmt.Errorf("connecting to the podman service at %q: %w", url, err)
	}
	return conn, nil
}

// pingPodman asks the service at url (unix:// or tcp://) for /_ping.
func pingPodman(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, podmanTimeout)
	defer cancel()
	network, addr := "unix", strings.TrimPrefix(url, "unix://")
	if rest, ok := strings.CutPrefix(url, "tcp://"); ok {
		network, addr = "tcp", rest
	} else if !strings.HasPrefix(url, "unix://") {
		return fmt.Errorf("unsupported podman URL %q: want unix:// or tcp://", url)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://d/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("no answer to a ping within %s: %w", podmanTimeout, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping answered %s", resp.Status)
	}
	return nil
}

// PodmanPinger returns a check that the podman service at url answers.
func PodmanPinger(url string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		_, err := podmanConn(ctx, url)
		return err == nil
	}
}

// bootcContainerSpec is the container bootc install to-existing-root runs
// in: privileged, in the host's pid namespace, with the target root at
// /target, /dev and the container store, and SELinux unconfined. It has
// no network: bootc installs the image it runs from, read from the host's
// store, and checks no registry unless asked (install.rs,
// InstallTargetOpts: the fetch check is off by default), so the install
// does not depend on the node's container networking (a bridge, which a
// trimmed kernel may lack).
func bootcContainerSpec(name, imageID, target, graphRoot string, argv []string) *specgen.SpecGenerator {
	s := specgen.NewSpecGenerator(imageID, false)
	s.Name = name
	s.Command = argv
	privileged := true
	s.Privileged = &privileged
	s.PidNS = specgen.Namespace{NSMode: specgen.Host}
	s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	s.SelinuxOpts = []string{"type:unconfined_t"}
	s.Mounts = []spec.Mount{
		{Destination: "/target", Source: target, Type: "bind", Options: []string{"rbind", "rw"}},
		{Destination: "/dev", Source: "/dev", Type: "bind", Options: []string{"rbind", "rw"}},
		{Destination: "/var/lib/containers/storage", Source: graphRoot, Type: "bind", Options: []string{"rbind", "rw"}},
	}
	s.Env = map[string]string{"RUST_LOG": "warn"}
	return s
}

// bootcInstall runs the step's argv in a privileged container from the
// seed through the podman service, streams its output and fails with its
// exit code.
func (e *executor) bootcInstall(ctx context.Context, st Step, a map[string]string) (string, error) {
	conn, err := podmanConn(ctx, e.podmanURL)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("seedbuild-bootc-%d", time.Now().UnixNano())
	// The podman service is the host's: it sees the host's paths.
	s := bootcContainerSpec(name, a[argImage], e.host.HostPath(a[argTarget]), e.host.HostPath(e.graphRoot), st.Argv)
	created, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		return "", fmt.Errorf("creating the bootc container: %w", err)
	}
	defer func() {
		force := true
		containers.Remove(context.WithoutCancel(conn), created.ID, &containers.RemoveOptions{Force: &force})
	}()
	if err := containers.Start(conn, created.ID, nil); err != nil {
		return "", fmt.Errorf("starting the bootc container: %w", err)
	}
	// bootc's output streams to the log while it runs.
	logs := make(chan string, 1)
	go func() { logs <- e.containerLogs(conn, created.ID) }()
	code, err := containers.Wait(conn, created.ID, nil)
	if err != nil {
		return "", fmt.Errorf("waiting for the bootc container: %w", err)
	}
	tail := <-logs
	if code != 0 {
		return "", fmt.Errorf("bootc exited %d: %s", code, oneLine(strings.TrimSpace(tail)))
	}
	return "", nil
}

// containerLogs follows the container's output to the log writer until
// the container exits, and returns its tail.
func (e *executor) containerLogs(conn context.Context, id string) string {
	// stdout and stderr share one channel: both go to the same log.
	lines := make(chan string, 64)
	yes := true
	done := make(chan struct{})
	tail := &tailBuffer{max: 4096}
	go func() {
		defer close(done)
		for l := range lines {
			io.WriteString(e.log, l)
			tail.Write([]byte(l))
		}
	}()
	containers.Logs(conn, id, &containers.LogOptions{Stdout: &yes, Stderr: &yes, Follow: &yes}, lines, lines)
	close(lines)
	<-done
	return tail.String()
}
