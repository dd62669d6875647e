package wetix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The golden entries in testdata/v0.1.0 were written by the v0.1.0 plugin
// (commit ebbc2ae) with the harness clock at 2026-11-26T12:00:00Z: 1h access
// tokens, 24h refresh tokens, ttl 10m (config.json) or 1h.

// loadGolden puts v0.1.0 entries into h's storage. base_url is pointed at
// this test's emulator, as if the same WeTix had moved port.
func (h *harness) loadGolden(configFile, tokensFile string) map[string]any {
	h.t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "v0.1.0", configFile))
	if err != nil {
		h.t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		h.t.Fatal(err)
	}
	cfg["base_url"] = h.wetix.URL()
	raw, _ = json.Marshal(cfg)
	h.put(configStoragePath, raw)
	if tokensFile == "" {
		return nil
	}
	raw, err = os.ReadFile(filepath.Join("testdata", "v0.1.0", tokensFile))
	if err != nil {
		h.t.Fatal(err)
	}
	h.put(tokensStoragePath, raw)
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) put(key string, value []byte) {
	h.t.Helper()
	if err := h.storage.Storage.Put(context.Background(), &logical.StorageEntry{Key: key, Value: bytes.TrimSpace(value)}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) rawEntry(key string) map[string]any {
	h.t.Helper()
	e, err := h.storage.Storage.Get(context.Background(), key)
	if err != nil || e == nil {
		h.t.Fatalf("entry %s: %v", key, err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		h.t.Fatal(err)
	}
	return m
}

func TestV010EntriesAreServedWithoutCallingWeTix(t *testing.T) {
	for _, c := range []struct{ config, tokens string }{
		{"config.json", "tokens.json"},
		{"config-seeded.json", "tokens-seeded.json"},
		{"config.json", "tokens-sent.json"},
	} {
		t.Run(c.tokens, func(t *testing.T) {
			h := newHarness(t)
			golden := h.loadGolden(c.config, c.tokens)
			h.clock.Advance(30 * time.Second)
			resp := h.readToken()
			if resp.Data["access_token"] != golden["access_token"] {
				t.Fatal("the v0.1.0 access token was not served")
			}
			if resp.Data["expires_at"] != golden["access_expires_at"] {
				t.Fatalf("expires_at %v, stored %v", resp.Data["expires_at"], golden["access_expires_at"])
			}
			h.wantCalls(0, 0)
			status := h.status()
			if status["healthy"] != true || fmt.Sprint(status["refreshes"]) != fmt.Sprint(golden["stats"].(map[string]any)["refreshes"]) {
				t.Fatalf("status from v0.1.0 entries: %v", status)
			}
			if sent, _ := golden["refresh_sent"].(bool); status["refresh_token_usable"] == sent {
				t.Fatalf("refresh_token_usable=%v for a stored sent mark of %v", status["refresh_token_usable"], sent)
			}
		})
	}
}

func TestV010SentMarkStillPreventsTheRefreshGrant(t *testing.T) {
	h := newHarness(t)
	h.loadGolden("config.json", "tokens-sent.json")
	h.clock.Advance(55 * time.Minute) // due: 10% of 1h left
	h.readToken()
	h.wantCalls(1, 0)
}

func TestV010EntriesAreStampedOnTheirNextWrite(t *testing.T) {
	h := newHarness(t)
	golden := h.loadGolden("config.json", "tokens.json")
	if _, ok := h.rawEntry(configStoragePath)["schema_version"]; ok {
		t.Fatal("setup: golden entries carry a version")
	}
	// Reading changes nothing in storage.
	h.readToken()
	if _, ok := h.rawEntry(tokensStoragePath)["schema_version"]; ok {
		t.Fatal("a read rewrote the tokens entry")
	}
	// A ttl change keeps the generation and so the tokens.
	if resp, err := h.request(logical.UpdateOperation, "config", map[string]any{"ttl": "5m"}); err != nil || resp.IsError() {
		t.Fatalf("config update: %v", errText(resp, err))
	}
	cfg := h.rawEntry(configStoragePath)
	if cfg["schema_version"] != float64(configSchema) || cfg["generation"] != "c5f5ee60cd7520d2f2a711c9" || cfg["client_secret"] != "s3cret-client-secret-value" {
		t.Fatalf("config after its first write: %v", cfg)
	}
	h.clock.Advance(55 * time.Minute)
	h.readToken()
	st := h.rawEntry(tokensStoragePath)
	if st["schema_version"] != float64(tokensSchema) || st["generation"] != golden["generation"] {
		t.Fatalf("tokens after their first write: version %v generation %v", st["schema_version"], st["generation"])
	}
	// The v0.1.0 refresh token was signed by another emulator instance, so
	// WeTix rejects it and the client-credentials grant takes over.
	stats := st["stats"].(map[string]any)
	if stats["refreshes"] != float64(2) || stats["client_credentials_grants"] != float64(2) {
		t.Fatalf("the v0.1.0 history was lost: %v", stats)
	}
}

func TestEntriesFromANewerPluginAreRefusedNotMisread(t *testing.T) {
	for _, key := range []string{configStoragePath, tokensStoragePath} {
		t.Run(key, func(t *testing.T) {
			h := newHarness(t)
			h.loadGolden("config.json", "tokens.json")
			entry := h.rawEntry(key)
			entry["schema_version"] = 99
			entry["a_field_from_the_future"] = "x"
			raw, _ := json.Marshal(entry)
			h.put(key, raw)
			h.clock.Advance(55 * time.Minute) // due, so the tokens entry is read too

			resp, err := h.request(logical.ReadOperation, "token", nil)
			if msg := errText(resp, err); !strings.Contains(msg, "newer version of this plugin") || !strings.Contains(msg, "schema version 99") {
				t.Fatalf("token read: %q", msg)
			}
			if key == configStoragePath {
				resp, err = h.request(logical.UpdateOperation, "config", map[string]any{"ttl": "5m"})
				if !strings.Contains(errText(resp, err), "newer version") {
					t.Fatalf("config write over a newer entry: %q", errText(resp, err))
				}
			}
			if got, _ := json.Marshal(h.rawEntry(key)); !bytes.Equal(got, raw) {
				t.Fatalf("the newer entry was rewritten:\n%s\n%s", got, raw)
			}
			h.wantCalls(0, 0)
		})
	}
}
