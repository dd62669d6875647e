package acceptance

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// tokenJSON is the part of a token read an app relies on, as JSON (the CLI's
// -format=json and the HTTP API give the same shape).
type tokenJSON struct {
	LeaseID       string `json:"lease_id"`
	LeaseDuration int    `json:"lease_duration"`
	Renewable     bool   `json:"renewable"`
	Data          struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresAt   string `json:"expires_at"`
	} `json:"data"`
}

// TestReadToken reads wetix/token three ways the README shows (official Go
// client, `vault read -format=json`, plain HTTP with X-Vault-Token): each
// gets the token the emulator issued, on a lease that ends no
// later than the configured ttl nor the token's expiry, and all of them
// together cost one call to WeTix.
func TestReadToken(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	// A 2-minute token against a 1h ttl: the lease must be cut to the token.
	const accessTTL = 2 * time.Minute
	s, emu := setup(t, wetixtest.Options{AccessTTL: accessTTL}, map[string]interface{}{"ttl": "1h"})

	// Official client.
	before := time.Now()
	tok, sec := vaulttest.MustReadToken(t, s.Client, "wetix")
	issued := emu.LastIssued()
	if tok != issued.AccessToken {
		t.Fatalf("access_token is not the token the emulator issued last")
	}
	if !emu.IsAccessTokenValid(tok) {
		t.Errorf("WeTix would not accept the token served")
	}
	if !strings.HasPrefix(sec.LeaseID, "wetix/token/") {
		t.Errorf("lease_id = %q, want one under wetix/token/", sec.LeaseID)
	}
	// A lease cut short to its token's end could not be renewed at once, so
	// it is not renewable: Agent would renew it, be refused and re-read
	// within the same second.
	if sec.Renewable {
		t.Errorf("a lease cut to a 2m token (ttl 1h) is renewable, but its renewal would be refused at once")
	}
	if sec.Data["token_type"] != "Bearer" {
		t.Errorf("token_type = %v, want Bearer", sec.Data["token_type"])
	}
	expiresAt, err := time.Parse(time.RFC3339, sec.Data["expires_at"].(string))
	// Never after WeTix's own expiry, and at most the second kept back for
	// expires_in's whole-second rounding (plus RFC 3339's) before it.
	if err != nil || expiresAt.After(issued.AccessExpiresAt) || issued.AccessExpiresAt.Sub(expiresAt) > 2*time.Second {
		t.Errorf("expires_at = %v, want at most 2s before %s", sec.Data["expires_at"], issued.AccessExpiresAt.Format(time.RFC3339))
	}
	leaseEnd := before.Add(time.Duration(sec.LeaseDuration) * time.Second)
	if sec.LeaseDuration <= 0 || sec.LeaseDuration > 3600 || leaseEnd.After(expiresAt) {
		t.Errorf("lease_duration = %ds: the lease would end at %s, after the token expires at %s",
			sec.LeaseDuration, leaseEnd.Format(time.RFC3339), expiresAt.Format(time.RFC3339))
	}
	// Cut short only by the margin, not to some tiny value.
	if sec.LeaseDuration < int((accessTTL - 15*time.Second).Seconds()) {
		t.Errorf("lease_duration = %ds, far shorter than the %s token needs", sec.LeaseDuration, accessTTL)
	}
	t.Logf("lease_duration %ds for a %s token (ttl 1h)", sec.LeaseDuration, accessTTL)

	// Real CLI.
	out := s.MustCLI("read", "-format=json", "wetix/token")
	checkTokenJSON(t, "vault read -format=json wetix/token", []byte(out), issued, expiresAt, false)
	if field := strings.TrimSpace(s.MustCLI("read", "-field=access_token", "wetix/token")); field != issued.AccessToken {
		t.Errorf("vault read -field=access_token wetix/token printed %d bytes, not the issued token", len(field))
	}

	// Plain HTTP, the curl line of the README.
	code, body := rawGet(t, s.Addr, "wetix/token", s.Token)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/wetix/token: %d %s", code, body)
	}
	checkTokenJSON(t, "GET /v1/wetix/token", body, issued, expiresAt, false)

	if n := emu.TotalCalls(); n != 1 {
		t.Errorf("four reads made %d calls to WeTix, want 1: the token is cached", n)
	}

	// A ttl shorter than the token's life is the lease, to the second.
	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"ttl": "30s"}); err != nil {
		t.Fatalf("writing ttl=30s: %v", err)
	}
	tok2, sec := vaulttest.MustReadToken(t, s.Client, "wetix")
	if tok2 != tok {
		t.Errorf("changing only ttl replaced the token")
	}
	if sec.LeaseDuration < 29 || sec.LeaseDuration > 30 {
		t.Errorf("with ttl=30s lease_duration = %ds, want 30", sec.LeaseDuration)
	}
	// A full ttl lease is renewable: Vault Proxy and Agent's cache keep and
	// renew it instead of passing every read through to Vault.
	if !sec.Renewable {
		t.Errorf("with ttl=30s on a 2m token the lease is not renewable")
	}
}

func checkTokenJSON(t *testing.T, how string, raw []byte, issued wetixtest.Pair, expiresAt time.Time, renewable bool) {
	t.Helper()
	var got tokenJSON
	mustJSON(t, raw, &got)
	if got.Data.AccessToken != issued.AccessToken {
		t.Errorf("%s: access_token differs from the cached token", how)
	}
	if got.LeaseID == "" || got.Renewable != renewable {
		t.Errorf("%s: lease_id %q renewable %v; want a lease, renewable %v", how, got.LeaseID, got.Renewable, renewable)
	}
	if end := time.Now().Add(time.Duration(got.LeaseDuration) * time.Second); got.LeaseDuration <= 0 || end.After(expiresAt.Add(time.Second)) {
		t.Errorf("%s: lease_duration %ds ends after the token expires at %s", how, got.LeaseDuration, expiresAt.Format(time.RFC3339))
	}
	if strings.Contains(string(raw), issued.RefreshToken) {
		t.Errorf("%s: the answer carries the refresh token", how)
	}
}
