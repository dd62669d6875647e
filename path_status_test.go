package wetix

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

func (h *harness) status() map[string]interface{} {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, "status", nil)
	if err != nil || resp.IsError() {
		h.t.Fatalf("status: %v %v", resp, err)
	}
	return resp.Data
}

func TestStatusBeforeConfig(t *testing.T) {
	h := newHarness(t)
	st := h.status()
	if st["configured"] != false || st["healthy"] != false || !strings.Contains(st["advice"].(string), "vault write <mount>/config") {
		t.Fatalf("status without config: %v", st)
	}
}

func TestStatusReportsLifecycleWithoutSecrets(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	if st := h.status(); st["healthy"] != true || st["refreshes"] != uint64(0) || st["access_token_expires_at"] != "" {
		t.Fatalf("status before the first read: %v", st)
	}
	h.readToken()
	start := h.clock.Now()

	st := h.status()
	want := map[string]interface{}{
		"configured":                true,
		"healthy":                   true,
		"access_token_expires_at":   start.Add(time.Hour - time.Second).Format(time.RFC3339),
		"refresh_token_expires_at":  start.Add(24*time.Hour - time.Second).Format(time.RFC3339),
		"refresh_token_usable":      true,
		"refresh_due":               false,
		"last_refresh_at":           start.Format(time.RFC3339),
		"last_grant":                "client_credentials",
		"refreshes":                 uint64(1),
		"client_credentials_grants": uint64(1),
		"refresh_grants":            uint64(0),
		"failures":                  uint64(0),
		"stale_serves":              uint64(0),
		"last_error":                "",
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("status %s = %#v, want %#v", k, st[k], v)
		}
	}

	h.clock.Advance(55 * time.Minute)
	if st := h.status(); st["refresh_due"] != true {
		t.Fatal("refresh_due false inside the refresh window")
	}

	// A failure shows up with advice, and no secret in it.
	h.wetix.Fault(wetixtest.FaultInvalidClient())
	h.request(logical.ReadOperation, "token", nil)
	st = h.status()
	if st["healthy"] != false || st["failures"] != uint64(1) || !strings.Contains(st["last_error"].(string), "invalid_client") ||
		!strings.Contains(st["advice"].(string), "client_secret=") || st["last_error_at"] == "" {
		t.Fatalf("status after invalid_client: %v", st)
	}
	raw, _ := json.Marshal(st)
	for _, secret := range []string{"s3cret-client-secret-value", h.wetix.LastIssued().AccessToken, h.wetix.LastIssued().RefreshToken} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("status leaks a secret: %s", raw)
		}
	}

	// Recovery clears the unhealthy state.
	h.wetix.ClearFaults()
	h.readToken()
	if st := h.status(); st["healthy"] != true || st["refreshes"] != uint64(2) {
		t.Fatalf("status after recovery: %v", st)
	}
}

// TestStatusShowsSigningKeys: status names the key that signs and the one
// waiting for WeTix through the handover, before config too, and never
// shows key material.
func TestStatusShowsSigningKeys(t *testing.T) {
	h := newHarness(t)
	want := func(step, signing, next string) {
		t.Helper()
		st := h.status()
		if st["signing_key_fingerprint"] != signing || st["next_signing_key_fingerprint"] != next {
			t.Fatalf("%s: status shows signing %q, next %q; want %q, %q", step, st["signing_key_fingerprint"], st["next_signing_key_fingerprint"], signing, next)
		}
		raw, _ := json.Marshal(st)
		if strings.Contains(string(raw), "PRIVATE") || strings.Contains(string(raw), "PUBLIC KEY") {
			t.Fatalf("%s: status carries key material: %s", step, raw)
		}
	}
	want("no key", "", "")
	a := h.mustWrite("signing-key", nil).Data["fingerprint"].(string)
	want("generated, before config", a, "")
	h.configure(nil)
	b := h.mustWrite("signing-key/next", nil).Data["fingerprint"].(string)
	want("next written", a, b)
	h.mustWrite("signing-key/promote", nil)
	want("promoted", b, "")
	h.mustWrite("signing-key/rollback", nil)
	want("rolled back", a, b)
	h.request(logical.DeleteOperation, "signing-key", nil)
	want("signing key deleted", "", b)
	if rot := h.mustWrite("rotate", nil).Data; rot["signing_key_fingerprint"] != nil {
		t.Errorf("rotate answers with the signing fields too: %v", rot)
	}
}
