package wetix

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

func TestRotateForcesRefreshAndAnswersWithStatus(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	first := h.readToken().Data["access_token"]
	oldRefresh := h.stored().RefreshToken

	resp, err := h.request(logical.UpdateOperation, "rotate", nil)
	if err != nil || resp.IsError() {
		t.Fatalf("rotate: %v %v", resp, err)
	}
	h.wantCalls(1, 1)
	if resp.Data["last_grant"] != "refresh_token" || resp.Data["refreshes"] != uint64(2) {
		t.Fatalf("rotate answer: %v", resp.Data)
	}
	raw, _ := json.Marshal(resp.Data)
	if strings.Contains(string(raw), h.wetix.LastIssued().AccessToken) || strings.Contains(string(raw), h.wetix.LastIssued().RefreshToken) {
		t.Fatal("rotate answer carries a token")
	}
	if h.readToken().Data["access_token"] == first {
		t.Fatal("token not replaced by rotate")
	}
	if h.wetix.IsRefreshTokenLive(oldRefresh) {
		t.Fatal("old refresh token still live after rotate")
	}
}

func TestRotateWithoutConfig(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.UpdateOperation, "rotate", nil)
	if !strings.Contains(errText(resp, err), "not configured") {
		t.Fatalf("rotate without config: %q", errText(resp, err))
	}
}

func TestRotateFailureIsAnErrorNotAStaleToken(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.readToken()
	h.wetix.Fault(wetixtest.FaultStatus(503, ""))
	resp, err := h.request(logical.UpdateOperation, "rotate", nil)
	if !strings.Contains(errText(resp, err), "WeTix is unavailable") {
		t.Fatalf("rotate during an outage: %q; the operator must learn the rotation failed", errText(resp, err))
	}
	// Reads still get the (valid, not due) token.
	h.readToken()
}
