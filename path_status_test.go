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
