package standin

import (
	"errors"
	"fmt"
	"strings"
)

// ErrHelp is ParseFlags' answer to --help or -h.
var ErrHelp = errors.New("help asked for")

// ParseFlags reads args as clap reads a command's flags: flags says which
// flags there are and which take a value (--name value or --name=value).
// It calls set for each flag and positional for each other argument, and
// fails as clap does on an unknown flag, a missing value, or a value given
// to a switch. --help and -h give ErrHelp.
func ParseFlags(args []string, flags map[string]bool, set func(name, value string) error, positional func(arg string) error) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--help" || a == "-h" {
			return ErrHelp
		}
		if !strings.HasPrefix(a, "-") {
			if err := positional(a); err != nil {
				return err
			}
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		takes, known := flags[name]
		switch {
		case !known:
			return fmt.Errorf("unexpected argument '%s' found", a)
		case takes && !hasValue:
			if i+1 >= len(args) {
				return fmt.Errorf("a value is required for '%s <%s>' but none was supplied", name, strings.ToUpper(strings.TrimPrefix(name, "--")))
			}
			i++
			value = args[i]
		case !takes && hasValue:
			return fmt.Errorf("unexpected value '%s' for '%s' found; no more were expected", value, name)
		}
		if err := set(name, value); err != nil {
			return err
		}
	}
	return nil
}
