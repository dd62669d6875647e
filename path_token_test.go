package wetix

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestTokenReadNotConfigured(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if err != nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "vault write <mount>/config") {
		t.Fatalf("want an error naming the fix, got %v %v", resp, err)
	}
	h.wantCalls(0, 0)
}

func TestTokenFirstReadUsesClientCredentials(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	resp := h.readToken()
	h.wantCalls(1, 0)

	tok, _ := resp.Data["access_token"].(string)
	if !h.wetix.IsAccessTokenValid(tok) {
		t.Fatal("served token is not one the emulator issued")
	}
	if resp.Data["token_type"] != "Bearer" {
		t.Fatalf("token_type = %v", resp.Data["token_type"])
	}
	exp, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	// expires_in counts whole seconds from WeTix's clock: one second is kept
	// back for the rounding.
	if err != nil || !exp.Equal(h.clock.Now().Add(time.Hour-time.Second)) {
		t.Fatalf("expires_at = %v (%v)", resp.Data["expires_at"], err)
	}
	for k := range resp.Data {
		if k != "access_token" && k != "token_type" && k != "expires_at" {
			t.Errorf("unexpected field %q in token read", k)
		}
	}
	if resp.Secret == nil || !resp.Secret.Renewable || resp.Secret.TTL != defaultTTL || resp.Secret.MaxTTL != 58*time.Minute+59*time.Second {
		// The default ttl; renewable up to the token's remaining 1h-1s less a 1m margin.
		t.Fatalf("lease: %+v", resp.Secret)
	}
	st := h.stored()
	if st.AccessToken != tok || st.RefreshToken != h.wetix.LastIssued().RefreshToken {
		t.Fatal("the pair was not stored before the read was answered")
	}
}

func TestTokenCachedReadMakesNoUpstreamCall(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	first := h.readToken().Data["access_token"]
	for i := 0; i < 50; i++ {
		h.clock.Advance(time.Minute / 2)
		if got := h.readToken().Data["access_token"]; got != first {
			t.Fatalf("read %d returned a new token", i)
		}
	}
	h.wantCalls(1, 0)
}

func TestTokenSeededRefreshTokenIsUsedAndRotated(t *testing.T) {
	h := newHarness(t)
	seed := h.wetix.SeedRefreshToken()
	h.configure(map[string]interface{}{"refresh_token": seed})

	tok := h.readToken().Data["access_token"].(string)
	h.wantCalls(0, 1)
	if !h.wetix.IsAccessTokenValid(tok) {
		t.Fatal("served token invalid")
	}
	if h.wetix.IsRefreshTokenLive(seed) {
		t.Fatal("emulator still accepts the seed: single-use refresh tokens are off")
	}
	st := h.stored()
	if st.RefreshToken == seed || !h.wetix.IsRefreshTokenLive(st.RefreshToken) {
		t.Fatal("the rotated refresh token was not stored")
	}
}

func TestTokenExpiryDrivesRefresh(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	first := h.readToken().Data["access_token"]
	rt := h.stored().RefreshToken

	// 1h tokens, 10% window: at 53 minutes it is not due, at 55 it is.
	h.clock.Advance(53 * time.Minute)
	if h.readToken().Data["access_token"] != first {
		t.Fatal("refreshed before the window")
	}
	h.clock.Advance(2 * time.Minute)
	second := h.readToken().Data["access_token"]
	if second == first {
		t.Fatal("due token was not refreshed")
	}
	h.wantCalls(1, 1)
	if h.wetix.IsRefreshTokenLive(rt) {
		t.Fatal("old refresh token still live")
	}
	if st := h.stored(); st.Stats.RefreshGrants != 1 || st.Stats.CredentialGrants != 1 || st.RefreshSent {
		t.Fatalf("stored stats: %+v", st)
	}
}

func TestTokenLeaseNeverOutlivesToken(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "24h"})
	for i := 0; i < 60; i++ {
		resp := h.readToken()
		exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
		leaseEnd := h.clock.Now().Add(resp.Secret.TTL)
		if !leaseEnd.Before(exp) {
			t.Fatalf("at +%dm the lease ends %s, after the token (%s)", i, leaseEnd, exp)
		}
		if resp.Secret.TTL > 24*time.Hour || resp.Secret.TTL <= 0 {
			t.Fatalf("lease TTL %s", resp.Secret.TTL)
		}
		h.clock.Advance(time.Minute)
	}
}

func TestLeaseTTLIsConfiguredTTLWhenTokenIsYoung(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "5m"})
	if ttl := h.readToken().Secret.TTL; ttl != 5*time.Minute {
		t.Fatalf("lease TTL %s, want 5m", ttl)
	}
}

func TestTokenLeaseRevokeDoesNotTouchToken(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	resp := h.readToken()
	_, err := h.b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.RevokeOperation,
		Storage:   h.storage,
		Secret:    resp.Secret,
		Data:      resp.Data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.readToken().Data["access_token"] != resp.Data["access_token"] {
		t.Fatal("revoking a lease changed the shared token")
	}
	h.wantCalls(1, 0)
}
