//go:build seedbuild_failpoints

package deployer

import (
	"os"
	"strconv"
)

// FailpointsBuilt says whether this binary reads failpoints: only the test
// build (tag seedbuild_failpoints) does.
const FailpointsBuilt = true

// failpoints reads the test hooks SEEDBUILD_INJECT_FAILURE=N (step N fails
// after it ran, to prove undo on a real sysroot) and SEEDBUILD_INJECT_HANG=N
// (the run waits before step N until it is cancelled or killed, so a test
// can signal it at a known point).
func failpoints() (failAt, hangAt int) {
	failAt, _ = strconv.Atoi(os.Getenv("SEEDBUILD_INJECT_FAILURE"))
	hangAt, _ = strconv.Atoi(os.Getenv("SEEDBUILD_INJECT_HANG"))
	return failAt, hangAt
}
