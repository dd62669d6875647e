package acceptance

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/metricstest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// staticPolicy is the app policy docs/static-token.md gives for the
// unleased path.
const staticPolicy = `path "wetix/static-token" { capabilities = ["read"] }`

// staticJSON is an unleased read as JSON. ttl and rotation_period are kept
// as the literal numbers, because consul-template and VSO decode them as
// json.Number and act on them only when Int64 succeeds.
type staticJSON struct {
	LeaseID       string `json:"lease_id"`
	LeaseDuration int    `json:"lease_duration"`
	Renewable     bool   `json:"renewable"`
	Data          struct {
		AccessToken       string      `json:"access_token"`
		TokenType         string      `json:"token_type"`
		ExpiresAt         string      `json:"expires_at"`
		TTL               json.Number `json:"ttl"`
		RotationPeriod    json.Number `json:"rotation_period"`
		LastVaultRotation string      `json:"last_vault_rotation"`
	} `json:"data"`
	Warnings []string `json:"warnings"`
}

// staticAnswer is what a consumer takes from an unleased read.
type staticAnswer struct {
	token             string
	expiresAt, rotAt  time.Time
	ttl, period       time.Duration
	warnings          []string
	leaseID           string
	leaseDur          int
	renewable         bool
	tokenType, rawTTL string
}

// decodeStatic decodes raw as consul-template and VSO do, failing the test
// where they would not recognise a rotating secret.
func decodeStatic(t *testing.T, how string, raw []byte) staticAnswer {
	t.Helper()
	var j staticJSON
	mustJSON(t, raw, &j)
	a := staticAnswer{token: j.Data.AccessToken, warnings: j.Warnings, leaseID: j.LeaseID, leaseDur: j.LeaseDuration,
		renewable: j.Renewable, tokenType: j.Data.TokenType, rawTTL: j.Data.TTL.String()}
	ttl, err := j.Data.TTL.Int64()
	if err != nil {
		t.Fatalf("%s: ttl %q is not an integer: %v", how, j.Data.TTL, err)
	}
	period, err := j.Data.RotationPeriod.Int64()
	if err != nil {
		t.Fatalf("%s: rotation_period %q is not an integer: %v", how, j.Data.RotationPeriod, err)
	}
	a.ttl, a.period = time.Duration(ttl)*time.Second, time.Duration(period)*time.Second
	if a.rotAt, err = time.Parse(time.RFC3339Nano, j.Data.LastVaultRotation); err != nil {
		t.Fatalf("%s: last_vault_rotation %q: %v", how, j.Data.LastVaultRotation, err)
	}
	if a.expiresAt, err = time.Parse(time.RFC3339, j.Data.ExpiresAt); err != nil {
		t.Fatalf("%s: expires_at %q: %v", how, j.Data.ExpiresAt, err)
	}
	return a
}

// readStatic reads wetix/static-token over plain HTTP as addr's client.
func readStatic(t *testing.T, addr, token string) staticAnswer {
	t.Helper()
	code, raw := rawGet(t, addr, "wetix/static-token", token)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/wetix/static-token: HTTP %d %s", code, raw)
	}
	return decodeStatic(t, "GET /v1/wetix/static-token", raw)
}

// liveLeasesUnder counts every live lease under prefix/, as `vault list
// sys/leases/lookup/<prefix>/` shows them (sub-paths count once each).
func liveLeasesUnder(t *testing.T, s *vaulttest.Server, prefix string) int {
	t.Helper()
	sec, err := s.Client.Logical().List("sys/leases/lookup/" + prefix + "/")
	if err != nil {
		t.Fatalf("LIST sys/leases/lookup/%s/: %v", prefix, err)
	}
	if sec == nil {
		return 0
	}
	keys, _ := sec.Data["keys"].([]interface{})
	return len(keys)
}

// checkStatic asserts what every unleased answer read at readAt must be:
// no lease, the token the emulator issued (with a life of issuedLife), and
// the rotating-secret fields consistent with it and with the README's due
// rule for this ttl.
func checkStatic(t *testing.T, how string, a staticAnswer, issued wetixtest.Pair, issuedLife time.Duration, readAt time.Time, cfgTTL time.Duration) {
	t.Helper()
	if a.leaseID != "" || a.leaseDur != 0 || a.renewable {
		t.Errorf("%s: lease_id %q lease_duration %d renewable %v; want no lease", how, a.leaseID, a.leaseDur, a.renewable)
	}
	if a.token != issued.AccessToken || a.tokenType != "Bearer" {
		t.Errorf("%s: not the token the emulator issued last (token_type %q)", how, a.tokenType)
	}
	if a.ttl < time.Second || a.period < time.Second || a.ttl > a.period {
		t.Errorf("%s: ttl %s, rotation_period %s; want 1s <= ttl <= rotation_period", how, a.ttl, a.period)
	}
	if end := readAt.Add(a.ttl); end.After(a.expiresAt) {
		t.Errorf("%s: ttl %s read at %s reaches past expires_at %s", how, a.ttl, readAt.Format(time.RFC3339Nano), a.expiresAt.Format(time.RFC3339))
	}
	// last_vault_rotation is when the plugin asked for the token: never
	// after the read, and the token's whole life (WeTix's expires_in, less
	// the second the plugin keeps back, less RFC 3339's fraction) before
	// expires_at.
	if a.rotAt.After(readAt) {
		t.Errorf("%s: last_vault_rotation %s is after the read at %s", how, a.rotAt.Format(time.RFC3339), readAt.Format(time.RFC3339Nano))
	}
	if d := issuedLife - a.expiresAt.Sub(a.rotAt); d < 0 || d > 2*time.Second {
		t.Errorf("%s: last_vault_rotation %s is %s before expires_at %s; want the %s life WeTix gave the token", how,
			a.rotAt.Format(time.RFC3339), a.expiresAt.Sub(a.rotAt), a.expiresAt.Format(time.RFC3339), issuedLife)
	}
	// The README's rule for tokens long enough to carry full leases: due
	// when no full ttl lease (plus the margin, 5% of the life up to a
	// minute) fits any more, or 10% of the life is left, whichever is first.
	life := a.expiresAt.Sub(a.rotAt)
	want := life - max(min(life/20, time.Minute)+cfgTTL, life/10)
	if d := a.period - want; d < -2*time.Second || d > 2*time.Second {
		t.Errorf("%s: rotation_period %s for a %s token and ttl %s; want about %s", how, a.period, life, cfgTTL, want.Round(time.Second))
	}
}

// TestStaticTokenRead reads wetix/static-token the ways the docs show (Go
// client, `vault read`, plain HTTP): no lease, the same token as
// wetix/token, integer ttl and rotation_period, an RFC 3339
// last_vault_rotation; many reads leave no lease in Vault and cost one call
// to WeTix; the wetix_token_reads metric counts them by path; the
// README's app policy (wetix/token only) does not grant it, the docs' one
// grants only it.
func TestStaticTokenRead(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	const cfgTTL, life = 30 * time.Second, 2 * time.Minute
	s, emu := setup(t, wetixtest.Options{AccessTTL: life}, map[string]interface{}{"ttl": int(cfgTTL.Seconds())})

	// Official client, decoded as Vault's client decodes (json.Number).
	readAt := time.Now()
	sec, err := s.Client.Logical().Read("wetix/static-token")
	if err != nil || sec == nil {
		t.Fatalf("read wetix/static-token: %v", err)
	}
	issued := emu.LastIssued()
	raw, _ := json.Marshal(sec)
	api := decodeStatic(t, "Go client", raw)
	checkStatic(t, "Go client", api, issued, life, readAt, cfgTTL)
	if !emu.IsAccessTokenValid(api.token) {
		t.Errorf("WeTix would not accept the token served")
	}
	t.Logf("static-token: ttl %s, rotation_period %s, last_vault_rotation %s, expires_at %s (2m tokens, ttl %s)",
		api.ttl, api.period, api.rotAt.Format(time.RFC3339), api.expiresAt.Format(time.RFC3339), cfgTTL)

	// Real CLI: JSON, one field, and the table an operator sees, where
	// Vault's CLI shows ttl and rotation_period as durations.
	readAt = time.Now()
	out := s.MustCLI("read", "-format=json", "wetix/static-token")
	checkStatic(t, "vault read -format=json", decodeStatic(t, "vault read -format=json", []byte(out)), issued, life, readAt, cfgTTL)
	if field := strings.TrimSpace(s.MustCLI("read", "-field=access_token", "wetix/static-token")); field != issued.AccessToken {
		t.Errorf("vault read -field=access_token wetix/static-token printed %d bytes, not the issued token", len(field))
	}
	if field := strings.TrimSpace(s.MustCLI("read", "-field=ttl", "wetix/static-token")); !isWholeSeconds(field) {
		t.Errorf("vault read -field=ttl printed %q, want whole seconds", field)
	}
	table := s.MustCLI("read", "wetix/static-token")
	for _, row := range []string{"ttl", "rotation_period", "last_vault_rotation"} {
		if v, ok := tableValue(table, row); !ok {
			t.Errorf("vault read wetix/static-token: no %s row in\n%s", row, table)
		} else if row != "last_vault_rotation" {
			if _, err := time.ParseDuration(v); err != nil {
				t.Errorf("vault read wetix/static-token: %s %q is not shown as a duration", row, v)
			}
		}
	}
	if strings.Contains(table, "lease_id") {
		t.Errorf("vault read wetix/static-token shows a lease:\n%s", table)
	}

	// Plain HTTP, 20 times, and the leased path once: one token, one call
	// to WeTix, no lease for the unleased reads.
	for i := 0; i < 20; i++ {
		readAt = time.Now()
		checkStatic(t, "GET /v1/wetix/static-token", readStatic(t, s.Addr, s.Token), issued, life, readAt, cfgTTL)
	}
	if n := liveLeasesUnder(t, s, "wetix"); n != 0 {
		t.Errorf("%d live leases under wetix/ after 22 unleased reads, want 0", n)
	}
	if tok, _ := vaulttest.MustReadToken(t, s.Client, "wetix"); tok != issued.AccessToken {
		t.Errorf("wetix/token serves another token than wetix/static-token")
	}
	if n := emu.TotalCalls(); n != 1 {
		t.Errorf("%d calls to WeTix for one token, want 1", n)
	}
	if n := vaulttest.LiveLeases(t, s.Client, "wetix"); n != 1 {
		t.Errorf("%d live leases under wetix/token after one leased read, want 1", n)
	}

	// Reads by path, as Prometheus scrapes them: 1 (client) + 4 (CLI) + 20.
	code, _, body := scrape(t, s.Addr, "X-Vault-Token", s.Token)
	if code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", code)
	}
	m := metricstest.Parse(t, body)
	for path, want := range map[string]float64{"token": 1, "static-token": 25} {
		if got := m.MustValue(t, "wetix_token_reads", "mount", "wetix/", "path", path); got != want {
			t.Errorf("wetix_token_reads{path=%q} = %v, want %v", path, got, want)
		}
	}

	// Policies: the README's app policy names wetix/token only, so adding
	// the path widened no existing grant; the docs' policy grants only it.
	leasedApp := appClient(t, s, "wetix-read", readOnlyPolicy)
	_, err = leasedApp.Logical().Read("wetix/static-token")
	wantDenied(t, "read wetix/static-token with the README's wetix/token policy", err)
	staticApp := appClient(t, s, "wetix-static-read", staticPolicy)
	if a := readStatic(t, s.Addr, staticApp.Token()); a.token != issued.AccessToken {
		t.Errorf("the static-token policy's app read another token")
	}
	_, err = staticApp.Logical().Read("wetix/token")
	wantDenied(t, "read wetix/token with the static-token policy", err)
	_, err = staticApp.Logical().Read("wetix/config")
	wantDenied(t, "read wetix/config with the static-token policy", err)
	_, err = staticApp.Logical().Write("wetix/rotate", nil)
	wantDenied(t, "write wetix/rotate with the static-token policy", err)
}

// TestStaticTokenThroughProxy: a caching Vault Proxy (cache {}, as the
// README sets it up for wetix/token) in front of the unleased path has
// nothing to cache (no lease): it passes every read through to Vault, logs
// so, and its answers are Vault's own, the current token and a ttl counting
// down; a rotate shows on the next read, no cache-clear needed; Vault holds
// no lease however many reads.
func TestStaticTokenThroughProxy(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	const cfgTTL, life = 10 * time.Second, 10 * time.Minute
	s, emu := setup(t, wetixtest.Options{AccessTTL: life}, map[string]interface{}{"ttl": int(cfgTTL.Seconds())})
	app := appClient(t, s, "wetix-static-read", staticPolicy)
	proxy := vaulttest.StartProxy(t, s, app.Token(), vaulttest.ProxyOptions{LogLevel: "debug"})

	const reads = 30
	var first staticAnswer
	for i := 0; i < reads; i++ {
		readAt := time.Now()
		a := readStatic(t, proxy.Addr, "")
		checkStatic(t, "through the Proxy", a, emu.LastIssued(), life, readAt, cfgTTL)
		if i == 0 {
			first = a
		}
		time.Sleep(100 * time.Millisecond)
	}
	last := readStatic(t, proxy.Addr, "")
	if last.ttl >= first.ttl {
		t.Errorf("through the Proxy ttl went from %s to %s over %d reads: a replayed answer, not Vault's", first.ttl, last.ttl, reads)
	}
	if n := strings.Count(grepLines(proxy.Log(), "/v1/wetix/static-token"), "pass-through response; secret not renewable"); n < reads {
		t.Errorf("the Proxy logged %d pass-throughs of /v1/wetix/static-token for %d reads; log:\n%s", n, reads+1, grepLines(proxy.Log(), "static-token"))
	}
	code, _, body := scrape(t, s.Addr, "X-Vault-Token", s.Token)
	if code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", code)
	}
	if got := metricstest.Parse(t, body).MustValue(t, "wetix_token_reads", "mount", "wetix/", "path", "static-token"); got != reads+1 {
		t.Errorf("the plugin answered %v unleased reads for %d sent through the Proxy: the Proxy answered some itself", got, reads+1)
	}

	if _, err := s.Client.Logical().Write("wetix/rotate", nil); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if a := readStatic(t, proxy.Addr, ""); a.token != emu.LastIssued().AccessToken || a.token == first.token {
		t.Errorf("the first read through the Proxy after rotate did not answer the rotated token")
	}
	if n := liveLeasesUnder(t, s, "wetix"); n != 0 {
		t.Errorf("%d live leases under wetix/ after %d reads through the Proxy, want 0", n, reads+2)
	}
	t.Logf("PROXY_STATIC: %d reads through the Proxy, all passed through to the plugin, 0 leases; ttl %s -> %s", reads+2, first.ttl, last.ttl)
}

func isWholeSeconds(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0
}

// tableValue is the value of key's row in the CLI's Key/Value table.
func tableValue(table, key string) (string, bool) {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == key {
			return strings.Join(f[1:], " "), true
		}
	}
	return "", false
}
