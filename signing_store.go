package wetix

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The three key entries. Only signing.go reads or writes them (through the
// functions below); all three are seal-wrapped (backend.go).
const (
	signingCurrentStoragePath  = "signing-key/current"
	signingNextStoragePath     = "signing-key/next"
	signingPreviousStoragePath = "signing-key/previous"
)

var signingStoragePaths = []string{signingCurrentStoragePath, signingNextStoragePath, signingPreviousStoragePath}

const signingKeySchemaVersion = 1

// signingKeyEntry is one stored key. The private key is PKCS#8 DER in
// base64; it never leaves this entry except to sign.
type signingKeyEntry struct {
	SchemaVersion int       `json:"schema_version"`
	PrivateKey    string    `json:"private_key_pkcs8"`
	Source        string    `json:"source"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
	// PromotedAt is when the key became the signing key (current or
	// previous entries); RetiredAt when it stopped (previous entry).
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

func readSigningKey(ctx context.Context, storage logical.Storage, path string) (*signingKey, error) {
	raw, err := storage.Get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if raw == nil {
		return nil, nil
	}
	var e signingKeyEntry
	if err := raw.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	switch {
	case e.SchemaVersion > signingKeySchemaVersion:
		return nil, checkSchema(path+" entry", e.SchemaVersion, signingKeySchemaVersion)
	case e.SchemaVersion < 1:
		// v0.1.0 had no signing keys, so there is no older layout to upgrade.
		return nil, fmt.Errorf("%s has no schema_version; it was not written by this plugin", path)
	}
	return newSigningKey(e)
}

func writeSigningKey(ctx context.Context, storage logical.Storage, path string, e signingKeyEntry) error {
	entry, err := logical.StorageEntryJSON(path, e)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return storage.Put(ctx, entry)
}
