package wetix

import "fmt"

// Every stored entry carries the version of its layout, so that a later
// plugin can tell an entry it must upgrade from one it must not touch.
// v0.1.0 wrote no version: its entries read as 0 and have the layout of
// version 1 minus the field, so upgrading them is only stamping the version,
// which happens on the entry's next write. Versions count per entry.
const (
	configSchema = 1
	tokensSchema = 1
)

// checkSchema refuses an entry written by a newer plugin: reading it with an
// older layout could drop fields, and writing it back would lose them for
// good (a refresh token among them).
func checkSchema(what string, got, known int) error {
	if got > known {
		return fmt.Errorf("the stored %s was written by a newer version of this plugin (schema version %d; this version reads up to %d). Nothing was changed: register and enable the plugin version that wrote it (vault secrets tune -plugin-version=...), or restore the mount from a backup", what, got, known)
	}
	return nil
}
