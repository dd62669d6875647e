package wetix

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// Every stored entry carries the version of its layout, so that a later
// plugin can tell an entry it must upgrade from one it must not touch.
// v0.1.0 wrote no version: its entries read as 0 and have the layout of
// version 1 minus the field, so upgrading them is only stamping the version,
// which happens on the entry's next write. Versions count per entry.
const (
	configSchema = 1
	tokensSchema = 1
)

// checkEntrySchema decodes only the entry's schema version and refuses a
// newer one, before anything decodes the rest: a newer layout may have
// changed a field's type, and the answer must be "newer version", not a
// JSON type error.
func checkEntrySchema(what string, entry *logical.StorageEntry, known int) error {
	var v struct {
		SchemaVersion int `json:"schema_version"`
	}
	if err := entry.DecodeJSON(&v); err != nil {
		return fmt.Errorf("decoding the stored %s: %w", what, err)
	}
	return checkSchema(what, v.SchemaVersion, known)
}

// refuseNewerEntry reads only the schema version of the entry at key, if
// there is one: for destructive steps that must not wipe what a newer
// plugin wrote (a refresh token among it) without reading it.
func refuseNewerEntry(ctx context.Context, storage logical.Storage, key, what string, known int) error {
	entry, err := storage.Get(ctx, key)
	if err != nil || entry == nil {
		return err
	}
	var v struct {
		SchemaVersion int `json:"schema_version"`
	}
	if entry.DecodeJSON(&v) != nil {
		// Unreadable: a delete is the way out, not something to refuse.
		return nil
	}
	return checkSchema(what, v.SchemaVersion, known)
}

// checkSchema refuses an entry written by a newer plugin: reading it with an
// older layout could drop fields, and writing it back would lose them for
// good (a refresh token among them).
func checkSchema(what string, got, known int) error {
	if got > known {
		return fmt.Errorf("the stored %s was written by a newer version of this plugin (schema version %d; this version reads up to %d). Nothing was changed: register and enable the plugin version that wrote it (vault secrets tune -plugin-version=...), or restore the mount from a backup", what, got, known)
	}
	return nil
}
