package main

import "encoding/json"

// writeJSON writes v as indented JSON, the --json output of every command.
func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
