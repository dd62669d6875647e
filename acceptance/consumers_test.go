package acceptance

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// readThroughProxy is an app behind a caching Vault Proxy that reads the
// token before each use (the README's advice behind a Proxy).
func readThroughProxy(t *testing.T, p *vaulttest.Proxy) tokenJSON {
	t.Helper()
	code, raw := rawGet(t, p.Addr, "wetix/token", "")
	if code != http.StatusOK {
		t.Fatalf("read through Proxy: HTTP %d %s", code, raw)
	}
	var got tokenJSON
	mustJSON(t, raw, &got)
	return got
}

// TestProxyCachesOneLeaseAndServesOnlyLiveTokens: an app reading before each
// use through a caching Vault Proxy, over a whole token lifetime and its
// refresh (40s tokens, ttl=10s). The Proxy keeps the renewable lease and
// renews it, so Vault holds a handful of leases however often the app reads,
// and every answer carries a token WeTix accepts with the margin still ahead.
// The answers replay the first read's lease_duration (the Proxy caches the
// response as it was): the README tells apps behind a Proxy not to cache by
// it; the figure is logged.
func TestProxyCachesOneLeaseAndServesOnlyLiveTokens(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	const (
		accessTTL = 40 * time.Second
		ttl       = 10 * time.Second
		margin    = 2 * time.Second // 5% of 40s
	)
	s, emu := setup(t, wetixtest.Options{AccessTTL: accessTTL}, map[string]interface{}{"ttl": int(ttl.Seconds())})
	app := appClient(t, s, "wetix-read", readOnlyPolicy)
	proxy := vaulttest.StartProxy(t, s, app.Token(), vaulttest.ProxyOptions{})

	leases, tokens := map[string]bool{}, map[string]bool{}
	answers := 0
	var overshoot time.Duration
	for end := time.Now().Add(accessTTL + 10*time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		got := readThroughProxy(t, proxy)
		now := time.Now()
		answers++
		leases[got.LeaseID] = true
		tokens[got.Data.AccessToken] = true
		exp, err := time.Parse(time.RFC3339, got.Data.ExpiresAt)
		if err != nil {
			t.Fatal(err)
		}
		if !emu.IsAccessTokenValid(got.Data.AccessToken) {
			t.Fatalf("the Proxy answered a token WeTix no longer accepts (expires_at %s, now %s)", got.Data.ExpiresAt, now.Format(time.RFC3339Nano))
		}
		if left := exp.Sub(now); left < margin-time.Second {
			t.Errorf("the Proxy answered a token with %s left, inside the %s margin", left.Round(time.Millisecond), margin)
		}
		overshoot = max(overshoot, now.Add(time.Duration(got.LeaseDuration)*time.Second).Sub(exp))
	}
	t.Logf("PROXY: %d answers on %d leases and %d tokens in %s; worst replayed lease_duration past expires_at: %s",
		answers, len(leases), len(tokens), accessTTL+10*time.Second, overshoot.Round(10*time.Millisecond))
	if len(tokens) < 2 {
		t.Errorf("the Proxy never moved to a refreshed token in %s of %s tokens", accessTTL+10*time.Second, accessTTL)
	}
	// One lease per token the Proxy held, and one more each time it let a
	// lease end near its token's end: far fewer than reads.
	if len(leases) > 3*len(tokens) || len(leases) > answers/20 {
		t.Errorf("the Proxy did not keep the renewable lease: %d leases for %d reads of %d tokens", len(leases), answers, len(tokens))
	}
}

// TestEveryConsumerMovesToTheRotatedToken: Vault Agent's template, an app
// behind a caching Vault Proxy, and an app that keeps the token for its
// lease_duration (the README's three ways) after `vault write -f
// wetix/rotate` alone, and again after a rotate with `vault lease revoke
// -prefix wetix/token` (10-minute tokens, so only the rotate changes them;
// ttl=10s). Each moves to the new
// token within ttl: Agent at its next renewal, which is refused (the lease
// is gone, and its token replaced), the Proxy when its lease runs out (it
// retries a refused renewal until then), the app when its lease ends. Then a
// second rotate with the Proxy's cache-clear (the README's runbook): the
// Proxy answers the new token within moments.
func TestEveryConsumerMovesToTheRotatedToken(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	const ttl = 10 * time.Second
	s, emu := setup(t, wetixtest.Options{AccessTTL: 10 * time.Minute}, map[string]interface{}{"ttl": int(ttl.Seconds())})
	app := appClient(t, s, "wetix-read", readOnlyPolicy)
	agent := startAgent(t, s, app.Token())
	proxy := vaulttest.StartProxy(t, s, app.Token(), vaulttest.ProxyOptions{})

	// The app that keeps its token for the lease.
	var held string
	var heldUntil time.Time
	direct := func() string {
		if time.Now().After(heldUntil) {
			tok, sec := vaulttest.MustReadToken(t, app, "wetix")
			held, heldUntil = tok, time.Now().Add(time.Duration(sec.LeaseDuration)*time.Second)
		}
		return held
	}
	consumers := []struct {
		name string
		sees func() string
	}{
		{"Vault Agent template", agent.rendered},
		{"app behind a caching Proxy", func() string { return readThroughProxy(t, proxy).Data.AccessToken }},
		{"app keeping the token for its lease", direct},
	}
	// The first read gets the mount its first token; every consumer shares it.
	t0 := direct()
	vaulttest.Await(t, 30*time.Second, "every consumer holding the first token", func() bool {
		for _, c := range consumers {
			if c.sees() != t0 {
				return false
			}
		}
		return true
	})

	// Each consumer must move from old to the newly rotated token within
	// ttl (+2s for a loaded machine).
	rotateAndWatch := func(how string, after func()) string {
		old := emu.LastIssued().AccessToken
		if _, err := s.Client.Logical().Write("wetix/rotate", nil); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		rotatedAt := time.Now()
		fresh := emu.LastIssued().AccessToken
		after()
		moved := make([]time.Duration, len(consumers))
		for time.Since(rotatedAt) < 2*ttl+5*time.Second {
			done := true
			for i, c := range consumers {
				if moved[i] == 0 {
					if got := c.sees(); got == fresh {
						moved[i] = time.Since(rotatedAt)
					} else if got != old {
						t.Fatalf("%s: %s holds a token that is neither the old nor the new one", how, c.name)
					}
				}
				done = done && moved[i] != 0
			}
			if done {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		var report []string
		for i, c := range consumers {
			report = append(report, c.name+" "+moved[i].Round(10*time.Millisecond).String())
			if moved[i] == 0 || moved[i] > ttl+2*time.Second {
				t.Errorf("%s: %s moved to the rotated token after %s (0 = not within %s); want within ttl+2s", how, c.name, moved[i].Round(10*time.Millisecond), 2*ttl+5*time.Second)
			}
		}
		return how + ": " + strings.Join(report, ", ")
	}
	rotateOnly := rotateAndWatch("rotate alone", func() {})
	withRevoke := rotateAndWatch("rotate + lease revoke -prefix", func() { s.MustCLI("lease", "revoke", "-prefix", "wetix/token") })
	t.Logf("CONSUMERS_MOVED (ttl %s): %s; %s", ttl, rotateOnly, withRevoke)

	// The runbook's way to move a Proxy at once.
	if _, err := s.Client.Logical().Write("wetix/rotate", nil); err != nil {
		t.Fatalf("second rotate: %v", err)
	}
	t2 := emu.LastIssued().AccessToken
	resp, err := http.Post(proxy.Addr+"/proxy/v1/cache-clear", "application/json", strings.NewReader(`{"type":"request_path","value":"/v1/wetix/token"}`))
	if err != nil {
		t.Fatalf("Proxy cache-clear: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("Proxy cache-clear: HTTP %d", resp.StatusCode)
	}
	// The Proxy answers the clear at once and evicts the entry a moment
	// later (its renewer goroutine does): the runbook says read until the
	// token changes.
	clearedAt := time.Now()
	if !vaulttest.WaitFor(2*time.Second, func() bool { return readThroughProxy(t, proxy).Data.AccessToken == t2 }) {
		t.Errorf("2s after rotate and the Proxy's cache-clear, the Proxy still answers the previous token")
	}
	t.Logf("after cache-clear the Proxy answered the new token within %s", time.Since(clearedAt).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("agent log, wetix/token lines:\n%s\nproxy log:\n%s", grepLines(agent.log(), "wetix/token"), proxy.Log())
	}
}
