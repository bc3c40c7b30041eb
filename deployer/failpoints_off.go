//go:build !seedbuild_failpoints

package deployer

// FailpointsBuilt says whether this binary reads failpoints: a release
// build never does, so no variable in a pod or a shell can fail or hang a
// deploy.
const FailpointsBuilt = false

func failpoints() (failAt, hangAt int, pauseDir string) { return 0, 0, "" }
