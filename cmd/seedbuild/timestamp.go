package main

import (
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// timestamp is the --timestamp flag when it was given, else
// $SOURCE_DATE_EPOCH when it is set, else nil. Both must be whole,
// non-negative seconds since the epoch ("123abc" is refused).
func timestamp(cmd *cobra.Command, flag int64) (*time.Time, error) {
	if cmd.Flags().Changed("timestamp") {
		if flag < 0 {
			return nil, usagef("invalid --timestamp %d: want seconds since the epoch", flag)
		}
		t := time.Unix(flag, 0).UTC()
		return &t, nil
	}
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return nil, nil
	}
	n, err := parseEpoch(v)
	if err != nil {
		return nil, usagef("invalid SOURCE_DATE_EPOCH %q: want seconds since the epoch", v)
	}
	return &n, nil
}

// parseEpoch reads whole, non-negative seconds since the epoch.
func parseEpoch(v string) (time.Time, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, usagef("invalid epoch %q", v)
	}
	return time.Unix(n, 0).UTC(), nil
}
