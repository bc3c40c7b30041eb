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
// can signal it at a known point) and SEEDBUILD_INJECT_PAUSE=DIR (the run
// waits before each step N until the file DIR/N exists, so a test can take
// the machine's state at every step boundary of one run).
func failpoints() (failAt, hangAt int, pauseDir string) {
	failAt, _ = strconv.Atoi(os.Getenv("SEEDBUILD_INJECT_FAILURE"))
	hangAt, _ = strconv.Atoi(os.Getenv("SEEDBUILD_INJECT_HANG"))
	return failAt, hangAt, os.Getenv("SEEDBUILD_INJECT_PAUSE")
}
