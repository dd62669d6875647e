package acceptance

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/metricstest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// metricsPolicy is what the README gives Prometheus's token.
const metricsPolicy = `path "wetix/metrics" { capabilities = ["read"] }`

// scrape is a Prometheus scrape of /v1/wetix/metrics: a GET with the token
// in the header the scrape config names (X-Vault-Token, or Authorization:
// Bearer as Prometheus's `authorization` block sends it) and an Accept header
// like Prometheus's, nothing from the Vault client library.
func scrape(t *testing.T, addr, header, token string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, addr+"/v1/wetix/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(header, token)
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET /v1/wetix/metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// TestMetricsScrapedThroughVault: a token whose policy grants only read on
// wetix/metrics scrapes it over HTTP as Prometheus would; the answer is the
// raw text format with Prometheus's content type, parses with Prometheus's
// own parser, reflects the mount's history, holds no secret, and the token
// can read nothing else under the mount.
func TestMetricsScrapedThroughVault(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)
	vaulttest.MustReadToken(t, s.Client, "wetix")
	prom := appClient(t, s, "wetix-metrics", metricsPolicy)

	for _, header := range []string{"X-Vault-Token", "Authorization"} {
		token := prom.Token()
		if header == "Authorization" {
			token = "Bearer " + token
		}
		code, ctype, body := scrape(t, s.Addr, header, token)
		if code != http.StatusOK {
			t.Fatalf("scrape with %s: HTTP %d: %s", header, code, body)
		}
		if ctype != metricstest.ContentType {
			t.Errorf("scrape with %s: Content-Type %q, want %q", header, ctype, metricstest.ContentType)
		}
		m := metricstest.Parse(t, body)
		for name, want := range map[string]float64{"wetix_configured": 1, "wetix_healthy": 1, "wetix_refresh_due": 0} {
			if got := m.MustValue(t, name, "mount", "wetix/"); got != want {
				t.Errorf("scrape with %s: %s{mount=\"wetix/\"} = %v, want %v", header, name, got, want)
			}
		}
		if got := m.MustValue(t, "wetix_refreshes_total", "mount", "wetix/", "grant", "client_credentials"); got != 1 {
			t.Errorf("scrape with %s: refreshes{grant=client_credentials} = %v after one read, want 1", header, got)
		}
		issued := emu.LastIssued()
		for _, secret := range []string{"test-client-secret", issued.AccessToken, issued.RefreshToken} {
			if strings.Contains(string(body), secret) {
				t.Fatalf("the scrape holds a secret:\n%s", body)
			}
		}
		if header == "X-Vault-Token" {
			t.Logf("scrape (%d bytes, %s):\n%s", len(body), ctype, body)
		}
	}

	// The metrics token is for metrics only, and the app's token does not
	// see metrics.
	_, err := prom.Logical().Read("wetix/token")
	wantDenied(t, "read wetix/token", err)
	_, err = prom.Logical().Read("wetix/status")
	wantDenied(t, "read wetix/status", err)
	app := appClient(t, s, "wetix-read", readOnlyPolicy)
	if code, _, body := scrape(t, s.Addr, "X-Vault-Token", app.Token()); code != http.StatusForbidden {
		t.Errorf("scrape with the app's token: HTTP %d, want 403: %s", code, body)
	}

	// A rejected client secret shows as its kind, and as unhealthy.
	emu.Fault(wetixtest.FaultInvalidClient())
	if _, err := s.Client.Logical().Write("wetix/rotate", nil); err == nil {
		t.Fatal("rotate succeeded against a WeTix that rejects the client")
	}
	_, _, body := scrape(t, s.Addr, "X-Vault-Token", prom.Token())
	m := metricstest.Parse(t, body)
	if got := m.MustValue(t, "wetix_refresh_failing", "mount", "wetix/", "kind", "invalid_client"); got != 1 {
		t.Errorf("after invalid_client: wetix_refresh_failing{kind=invalid_client} = %v, want 1", got)
	}
	if got := m.MustValue(t, "wetix_healthy", "mount", "wetix/"); got != 0 {
		t.Errorf("after invalid_client: wetix_healthy = %v, want 0", got)
	}
	if got := m.MustValue(t, "wetix_refresh_failures_total", "mount", "wetix/"); got != 1 {
		t.Errorf("after one failed rotate: failures_total = %v, want 1", got)
	}
}
