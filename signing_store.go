package wetix

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// signingKeysStoragePath holds all three key slots (current, next,
// previous) in one seal-wrapped entry, so that every step of the handover is
// a single Put or Delete, which storage applies whole or not at all: no
// write order of separate entries makes a promote atomic.
//
// No migration: v0.1.0 had no signing keys, and the earlier three-entry
// layout (signing-key/current, /next, /previous) existed only on the
// unreleased signing branch, so no released plugin ever wrote it.
//
// Only the signingStore (signing.go) reads or writes this entry, through the
// two functions below.
const signingKeysStoragePath = "signing-keys"

// signingStoragePaths is read by backend.go: seal-wrapped, and its
// invalidations reach the store.
var signingStoragePaths = []string{signingKeysStoragePath}

const signingKeysSchema = 1

// signingKeysEntry is the stored form of the three slots; nil is an empty
// slot.
type signingKeysEntry struct {
	SchemaVersion int              `json:"schema_version"`
	Current       *signingKeyEntry `json:"current,omitempty"`
	Next          *signingKeyEntry `json:"next,omitempty"`
	Previous      *signingKeyEntry `json:"previous,omitempty"`
}

// signingKeyEntry is one stored key. The private key is PKCS#8 DER in
// base64; it never leaves this entry except to sign.
type signingKeyEntry struct {
	PrivateKey string    `json:"private_key_pkcs8"`
	Source     string    `json:"source"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	// PromotedAt is when the key became the signing key (current or
	// previous slot); RetiredAt when it stopped (previous slot).
	PromotedAt time.Time `json:"promoted_at,omitzero"`
	RetiredAt  time.Time `json:"retired_at,omitzero"`
}

func (e *signingKeyEntry) der() ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(e.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("stored signing key is not base64: %w", err)
	}
	return der, nil
}

func (e *signingKeyEntry) setDER(der []byte) { e.PrivateKey = base64.StdEncoding.EncodeToString(der) }

// readSigningKeys parses the entry; a missing entry is three empty slots.
func readSigningKeys(ctx context.Context, storage logical.Storage) (*signingKeys, error) {
	raw, err := storage.Get(ctx, signingKeysStoragePath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", signingKeysStoragePath, err)
	}
	k := &signingKeys{}
	if raw == nil {
		return k, nil
	}
	if err := checkEntrySchema(signingKeysStoragePath+" entry", raw, signingKeysSchema); err != nil {
		return nil, err
	}
	var e signingKeysEntry
	if err := raw.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", signingKeysStoragePath, err)
	}
	if e.SchemaVersion < 1 {
		// v0.1.0 had no signing keys, so there is no older layout to upgrade.
		return nil, fmt.Errorf("%s has no schema_version; it was not written by this plugin", signingKeysStoragePath)
	}
	for _, s := range []struct {
		from *signingKeyEntry
		to   **signingKey
	}{{e.Current, &k.current}, {e.Next, &k.next}, {e.Previous, &k.previous}} {
		if s.from == nil {
			continue
		}
		if *s.to, err = newSigningKey(*s.from); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// writeSigningKeys stores the three slots in one operation; with all three
// empty it deletes the entry, so no key material is left behind.
func writeSigningKeys(ctx context.Context, storage logical.Storage, e signingKeysEntry) error {
	if e.Current == nil && e.Next == nil && e.Previous == nil {
		return storage.Delete(ctx, signingKeysStoragePath)
	}
	e.SchemaVersion = signingKeysSchema
	entry, err := logical.StorageEntryJSON(signingKeysStoragePath, e)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", signingKeysStoragePath, err)
	}
	return storage.Put(ctx, entry)
}
