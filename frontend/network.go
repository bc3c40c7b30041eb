package frontend

import (
	"errors"

	nettypes "go.podman.io/common/libnetwork/types"
)

// errNoNetworkSetup is what a build gets when a RUN step asks for a
// network of its own: seedbuild's chroot isolation shares the host's.
var errNoNetworkSetup = errors.New("RUN steps share the host's network under chroot isolation; a network of their own needs --isolation oci and netavark")

// hostNetwork is the network backend of chroot-isolated builds. Such RUN
// steps use the host's network, so buildah never sets one up; giving it
// this backend keeps buildah from looking for netavark, which a minimal
// image such as seedbuild's own does not have. Every call that would make
// or change a network fails and says why.
type hostNetwork struct{}

var _ nettypes.ContainerNetwork = hostNetwork{}

func (hostNetwork) NetworkCreate(nettypes.Network, *nettypes.NetworkCreateOptions) (nettypes.Network, error) {
	return nettypes.Network{}, errNoNetworkSetup
}
func (hostNetwork) NetworkUpdate(string, nettypes.NetworkUpdateOptions) error {
	return errNoNetworkSetup
}
func (hostNetwork) NetworkRemove(string) error { return errNoNetworkSetup }
func (hostNetwork) NetworkList(...nettypes.FilterFunc) ([]nettypes.Network, error) {
	return nil, nil
}
func (hostNetwork) NetworkInspect(string) (nettypes.Network, error) {
	return nettypes.Network{}, errNoNetworkSetup
}
func (hostNetwork) Setup(string, nettypes.SetupOptions) (map[string]nettypes.StatusBlock, error) {
	return nil, errNoNetworkSetup
}
func (hostNetwork) Teardown(string, nettypes.TeardownOptions) error { return nil }
func (hostNetwork) RunInRootlessNetns(func() error) error           { return errNoNetworkSetup }
func (hostNetwork) RootlessNetnsInfo() (*nettypes.RootlessNetnsInfo, error) {
	return nil, errNoNetworkSetup
}
func (hostNetwork) Drivers() []string                 { return nil }
func (hostNetwork) DefaultNetworkName() string        { return "host" }
func (hostNetwork) NetworkInfo() nettypes.NetworkInfo { return nettypes.NetworkInfo{Backend: "none"} }
