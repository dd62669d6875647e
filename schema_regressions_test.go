package wetix

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// putNewer replaces key with a copy of its current value stamped with a
// schema version this code does not know, changed by edit; it returns the
// raw bytes stored.
func (h *harness) putNewer(key string, edit func(map[string]any)) []byte {
	h.t.Helper()
	entry := h.rawEntry(key)
	entry["schema_version"] = 99
	entry["a_field_from_the_future"] = "x"
	if edit != nil {
		edit(entry)
	}
	raw, _ := json.Marshal(entry)
	h.put(key, raw)
	// As after a downgrade (a new plugin process) or a write by another node.
	h.b.invalidate(context.Background(), key)
	return raw
}

func (h *harness) rawBytes(key string) []byte {
	h.t.Helper()
	e, err := h.storage.Storage.Get(context.Background(), key)
	if err != nil {
		h.t.Fatal(err)
	}
	if e == nil {
		return nil
	}
	return e.Value
}

// Scenario: a newer plugin changed the type of a field it already had (the
// whole point of bumping a schema version), e.g. ttl became "10m", stats
// became a list, a key slot became a list; the mount is then served by this
// (older) plugin.
// Expected: the read is refused with the clear "written by a newer version of
// this plugin ... schema version 99" error, as for any newer entry. The
// version must be checked before the body is decoded with this version's
// layout; decoding first answers with a Go JSON type error that names a
// struct field and tells the operator nothing about the version.
func TestNewerEntryWithChangedLayoutIsRefusedAsNewer(t *testing.T) {
	for _, c := range []struct {
		key  string
		path string
		edit func(map[string]any)
	}{
		{configStoragePath, "token", func(m map[string]any) { m["ttl"] = "10m" }},
		{tokensStoragePath, "token", func(m map[string]any) { m["stats"] = []any{m["stats"]} }},
		{signingKeysStoragePath, "signing-key", func(m map[string]any) { m["current"] = []any{m["current"]} }},
	} {
		t.Run(c.key, func(t *testing.T) {
			h := newHarness(t)
			h.loadGolden("config.json", "tokens.json")
			if c.key == signingKeysStoragePath {
				h.mustWrite("signing-key", nil)
			}
			raw := h.putNewer(c.key, c.edit)
			h.clock.Advance(55 * time.Minute) // due, so the tokens entry is read too
			resp, err := h.request(logical.ReadOperation, c.path, nil)
			msg := errText(resp, err)
			if !strings.Contains(msg, "newer version of this plugin") || !strings.Contains(msg, "schema version 99") {
				t.Errorf("read of %s over a newer %s entry: %q; want the newer-version refusal", c.path, c.key, msg)
			}
			if !bytes.Equal(h.rawBytes(c.key), raw) {
				t.Errorf("the newer %s entry was rewritten", c.key)
			}
		})
	}
}

// Scenario: the tokens entry was written by a newer plugin (schema 99), the
// config by one this code knows (versions count per entry). The operator,
// on this older plugin, writes new credentials (a new client_id, or a new
// client secret, or the same credentials with verify=true).
// Expected: the write is refused with the newer-version error and nothing
// changes, as a config write over a newer config is. Observed: the config
// is written and the write answers OK (the tokens entry is read by
// retireLocked/forgetFailureLocked, whose error is ignored), so the mount
// now holds credentials it can never serve from (every token read fails on
// the tokens entry); with verify=true a pair is even obtained from WeTix and
// thrown away.
func TestCredentialChangeOverNewerTokensIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		data map[string]any
	}{
		{"new-client-id", map[string]any{"client_id": "client-2"}},
		{"new-secret", map[string]any{"client_secret": "another-secret-value"}},
		// The same credentials, verified: WeTix is asked, then the pair is
		// to replace the (unreadable) tokens.
		{"verify", map[string]any{"ttl": "5m", "verify": true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.loadGolden("config.json", "tokens.json")
			rawTokens := h.putNewer(tokensStoragePath, nil)
			cfgBefore := h.rawBytes(configStoragePath)

			resp, err := h.request(logical.UpdateOperation, "config", c.data)
			msg := errText(resp, err)
			if !strings.Contains(msg, "newer version") {
				t.Errorf("config write %v over a newer tokens entry answered %q (warnings %v); want the newer-version refusal", c.data, msg, warningsOf(resp))
			}
			if !bytes.Equal(h.rawBytes(configStoragePath), cfgBefore) {
				t.Errorf("the config was changed although the tokens entry it retires cannot be read:\n%s", h.rawBytes(configStoragePath))
			}
			if !bytes.Equal(h.rawBytes(tokensStoragePath), rawTokens) {
				t.Error("the newer tokens entry was rewritten")
			}
			h.b.tokens.background.Wait()
			if cc, rf := h.calls(); cc+rf != 0 {
				t.Errorf("a refused write called WeTix %d times", cc+rf)
			}
		})
	}
}

func warningsOf(resp *logical.Response) []string {
	if resp == nil {
		return nil
	}
	return resp.Warnings
}

// Scenario: config and tokens entries written by a newer plugin (schema 99);
// the operator, on this older plugin, runs `vault delete <mount>/config`.
// Expected: refused with the newer-version error, nothing deleted, as every
// other path refuses to touch a newer entry (signing-key delete over a
// newer signing-keys entry is refused). Observed: both entries, with the
// newer plugin's refresh token and whatever else it stored, are deleted
// without being read.
func TestConfigDeleteOverNewerEntriesIsRefused(t *testing.T) {
	for _, key := range []string{configStoragePath, tokensStoragePath} {
		t.Run(key, func(t *testing.T) {
			h := newHarness(t)
			h.loadGolden("config.json", "tokens.json")
			raw := h.putNewer(key, nil)
			resp, err := h.request(logical.DeleteOperation, "config", nil)
			if msg := errText(resp, err); !strings.Contains(msg, "newer version") {
				t.Errorf("config delete over a newer %s entry answered %q; want the newer-version refusal", key, msg)
			}
			if !bytes.Equal(h.rawBytes(key), raw) {
				t.Errorf("the newer %s entry was deleted or rewritten", key)
			}
		})
	}
}

// v0.1.0 entries other than the goldens: each is a state v0.1.0 could leave
// behind. Reads, status, metrics and a tick that finds nothing due must not
// rewrite them; a due read must serve them the way v0.1.0 would.
func TestV010VariantsAreReadNotRewritten(t *testing.T) {
	for _, c := range []struct {
		name     string
		edit     func(m map[string]any)
		wantCC   int
		wantRF   int
		wantSame bool // the stored access token is served
	}{
		// Written by v0.1.0 after a config change: tokens of another generation.
		{"old-generation", func(m map[string]any) { m["generation"] = "0123456789abcdef01234567" }, 1, 0, false},
		// A sent mark whose refresh token was already dropped.
		{"sent-no-refresh", func(m map[string]any) {
			delete(m, "refresh_token")
			delete(m, "refresh_issued_at")
			delete(m, "refresh_expires_at")
		}, 0, 0, true},
		// Retired state: no access token, history only.
		{"retired", func(m map[string]any) {
			for _, k := range []string{"access_token", "access_issued_at", "access_expires_at", "refresh_token", "refresh_issued_at", "refresh_expires_at"} {
				delete(m, k)
			}
		}, 1, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			golden := h.loadGolden("config.json", "tokens.json")
			c.edit(golden)
			raw, _ := json.Marshal(golden)
			h.put(tokensStoragePath, raw)
			h.clock.Advance(30 * time.Second)
			if c.wantSame {
				_ = h.status()
				if _, err := h.request(logical.ReadOperation, "metrics", nil); err != nil {
					t.Fatal(err)
				}
				if err := h.tick(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(h.rawBytes(tokensStoragePath), raw) {
					t.Fatal("status, metrics or a tick rewrote a v0.1.0 tokens entry")
				}
			}
			resp := h.readToken()
			if got := resp.Data["access_token"] == golden["access_token"]; got != c.wantSame {
				t.Fatalf("served the stored token: %v, want %v", got, c.wantSame)
			}
			h.b.tokens.background.Wait()
			h.wantCalls(c.wantCC, c.wantRF)
			if st := h.stored(); !c.wantSame && st.Stats.Refreshes != 2 {
				t.Fatalf("v0.1.0 history lost: %+v", st.Stats)
			}
		})
	}
}

// A newer entry is left byte for byte as it is by every path that could
// write it: config writes that keep the credentials, rotate, a due read,
// status, metrics, the periodic tick, and every signing-key step.
func TestNoPathRewritesANewerEntry(t *testing.T) {
	type op struct {
		op   logical.Operation
		path string
		data map[string]any
	}
	tokenOps := []op{
		{logical.ReadOperation, "token", nil},
		{logical.UpdateOperation, "rotate", nil},
		{logical.ReadOperation, "status", nil},
		{logical.ReadOperation, "metrics", nil},
		{logical.UpdateOperation, "config", map[string]any{"ttl": "5m"}},
		{logical.UpdateOperation, "config", map[string]any{"request_timeout": "20s"}},
	}
	signOps := []op{
		{logical.UpdateOperation, "signing-key", nil},
		{logical.UpdateOperation, "signing-key/next", nil},
		{logical.DeleteOperation, "signing-key", nil},
		{logical.DeleteOperation, "signing-key/next", nil},
		{logical.UpdateOperation, "signing-key/promote", nil},
		{logical.UpdateOperation, "signing-key/rollback", nil},
		{logical.UpdateOperation, "sign", map[string]any{"input": "{}", "mutation": "createMovieOrder"}},
		{logical.ReadOperation, "status", nil},
	}
	for _, key := range []string{configStoragePath, tokensStoragePath, signingKeysStoragePath} {
		ops := tokenOps
		if key == signingKeysStoragePath {
			ops = signOps
		}
		t.Run(key, func(t *testing.T) {
			h := newHarness(t)
			h.loadGolden("config.json", "tokens.json")
			h.mustWrite("signing-key", nil)
			h.mustWrite("signing-key/next", nil)
			h.mustWrite("signing-key/promote", nil)
			raw := h.putNewer(key, nil)
			h.clock.Advance(55 * time.Minute)
			for _, o := range ops {
				resp, err := h.request(o.op, o.path, o.data)
				_ = h.tick()
				h.b.tokens.background.Wait()
				// Config writes that keep the credentials never read the
				// tokens entry, and succeed.
				if keeps := key == tokensStoragePath && o.path == "config"; !keeps && !strings.Contains(errText(resp, err), "newer version") {
					t.Errorf("%s %s over a newer %s entry answered %q; want the newer-version refusal", o.op, o.path, key, errText(resp, err))
				}
				if !bytes.Equal(h.rawBytes(key), raw) {
					t.Fatalf("%s %s (answer %q) rewrote the newer %s entry:\n%s", o.op, o.path, errText(resp, err), key, h.rawBytes(key))
				}
			}
			if key != signingKeysStoragePath {
				h.wantCalls(0, 0)
			}
		})
	}
}
