package wetix

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// writeConfig writes config fields and fails the test on an error; it waits
// for the background refresh a credential change starts.
func (h *harness) writeConfig(data map[string]interface{}) *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.UpdateOperation, "config", data)
	if err != nil || resp.IsError() {
		h.t.Fatalf("config write: %s", errText(resp, err))
	}
	h.b.tokens.background.Wait()
	return resp
}

func TestWrongNewSecretNeverFailsAReadWhileTheOldTokenIsValid(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "5m"})
	old := h.readToken().Data["access_token"]
	before := h.stored()

	// A typo: WeTix rejects the new secret.
	h.writeConfig(map[string]interface{}{"client_secret": "mistyped-secret"})
	for i := 0; i < 50; i++ { // 50 minutes of 1h tokens: always servable with ttl=5m
		resp := h.readToken()
		if resp.Data["access_token"] != old {
			t.Fatalf("minute %d: the previous token was not served", i)
		}
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "client_secret written at") || !strings.Contains(resp.Warnings[0], "rejected") {
			t.Fatalf("minute %d: warnings %v, want one naming the pending secret change", i, resp.Warnings)
		}
		if resp.Secret.TTL != 5*time.Minute {
			t.Fatalf("minute %d: lease %s", i, resp.Secret.TTL)
		}
		h.clock.Advance(time.Minute)
	}
	status := h.status()
	if status["healthy"] != false || status["secret_change_pending"] != true || !strings.Contains(status["advice"].(string), "client_secret=") {
		t.Fatalf("status during a rejected secret change: %v", status)
	}
	// Nothing was lost: the previous refresh token was never sent.
	if st := h.stored(); st.RefreshToken != before.RefreshToken || st.RefreshSent || st.AccessToken != old {
		t.Fatal("the previous secret's tokens were changed")
	}
	if n := h.wetix.Calls(wetixtest.GrantRefresh); n != 0 {
		t.Fatalf("%d refresh calls with an unproven secret", n)
	}
	// Once the token can no longer carry a lease, the rejection is the
	// answer.
	h.clock.Advance(9 * time.Minute)
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if !strings.Contains(errText(resp, err), "rejected the client credentials") {
		t.Fatalf("read once the previous token is spent: %q", errText(resp, err))
	}
}

func TestSecretWrittenBeforeWeTixActivatesItCompletesOnceItWorks(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "5m"})
	old := h.readToken().Data["access_token"]
	h.wetix.ResetCounts()

	h.writeConfig(map[string]interface{}{"client_secret": "next-secret"})
	if resp := h.readToken(); resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
		t.Fatal("before WeTix activates the secret, the previous token is served with a warning")
	}
	// WeTix switches over; the next tick (or read) completes the change.
	h.wetix.SetClientSecret("next-secret")
	h.clock.Advance(time.Minute)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	h.b.tokens.background.Wait()
	resp := h.readToken()
	if resp.Data["access_token"] == old || len(resp.Warnings) != 0 {
		t.Fatalf("after the switch: same token or warnings %v", resp.Warnings)
	}
	if !h.wetix.IsAccessTokenValid(resp.Data["access_token"].(string)) {
		t.Fatal("the new token is not valid")
	}
	status := h.status()
	if status["healthy"] != true || status["secret_change_pending"] != false || status["advice"] != "" {
		t.Fatalf("status after the change completed: %v", status)
	}
	// The previous secret's refresh token was retired with it, unsent.
	if n := h.wetix.Calls(wetixtest.GrantRefresh); n != 0 {
		t.Fatalf("%d refresh calls during a secret change", n)
	}
	if st := h.stored(); st.RefreshToken == "" || !h.wetix.IsRefreshTokenLive(st.RefreshToken) {
		t.Fatal("the new pair's refresh token is not stored")
	}
}

func TestPendingSecretChangeSurvivesARestart(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "5m"})
	old := h.readToken().Data["access_token"]
	h.writeConfig(map[string]interface{}{"client_secret": "mistyped-secret"})
	h.restart()
	if resp := h.readToken(); resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
		t.Fatal("after a restart the pending change was forgotten")
	}
	h.writeConfig(map[string]interface{}{"client_secret": "s3cret-client-secret-value"})
	if resp := h.readToken(); resp.Data["access_token"] == old || len(resp.Warnings) != 0 {
		t.Fatal("writing the right secret did not complete the change")
	}
}

func TestVerifyRefusesRejectedCredentialsAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	old := h.readToken().Data["access_token"]
	cfgBefore, tokensBefore := h.rawEntry(configStoragePath), h.rawEntry(tokensStoragePath)

	for _, fields := range []map[string]interface{}{
		{"client_secret": "mistyped-secret", "verify": true},
		{"client_id": "client-2", "verify": true},
	} {
		resp, err := h.request(logical.UpdateOperation, "config", fields)
		msg := errText(resp, err)
		if !strings.Contains(msg, "WeTix refused the new credentials") || !strings.Contains(msg, "invalid_client") || !strings.Contains(msg, "Nothing was changed") {
			t.Fatalf("verify with %v: %q", fields, msg)
		}
		if strings.Contains(msg, "mistyped-secret") {
			t.Fatal("the refused secret is echoed")
		}
		if fmt.Sprint(h.rawEntry(configStoragePath)) != fmt.Sprint(cfgBefore) || fmt.Sprint(h.rawEntry(tokensStoragePath)) != fmt.Sprint(tokensBefore) {
			t.Fatal("a refused verify changed storage")
		}
	}
	if resp := h.readToken(); resp.Data["access_token"] != old || len(resp.Warnings) != 0 {
		t.Fatal("reads changed after refused writes")
	}

	// A working secret with verify: the pair it brought is served at once.
	h.wetix.SetClientSecret("next-secret")
	h.wetix.ResetCounts()
	h.writeConfig(map[string]interface{}{"client_secret": "next-secret", "verify": true})
	h.wantCalls(1, 0)
	resp := h.readToken()
	if resp.Data["access_token"] == old || resp.Data["access_token"] != h.wetix.LastIssued().AccessToken {
		t.Fatal("the verified pair is not the one served")
	}
	h.wantCalls(1, 0)

	// verify would spend a new seed before the config is stored.
	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"refresh_token": h.wetix.SeedRefreshToken(), "verify": true})
	if !strings.Contains(errText(resp, err), "cannot be combined") {
		t.Fatalf("verify with a seed: %q", errText(resp, err))
	}
}

func TestVerifyWhileWeTixIsDownRefusesWithATransientReason(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.wetix.Fault(wetixtest.FaultStatus(503, ""))
	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"client_secret": "next-secret", "verify": true})
	if msg := errText(resp, err); !strings.Contains(msg, "could not be reached") || !strings.Contains(msg, "without verify=true") {
		t.Fatalf("verify during an outage: %q", msg)
	}
	if c := h.rawEntry(configStoragePath); c["client_secret"] != "s3cret-client-secret-value" {
		t.Fatal("the secret changed although verify failed")
	}
}
