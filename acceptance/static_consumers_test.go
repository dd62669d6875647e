package acceptance

import (
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// agentTookRotatingSecret is what consul-template (inside Agent) logs when
// it recognises an answer as a rotating secret: no lease, a rotation_period
// field and an integer ttl (dependency/vault_common.go, leaseCheckWait).
const agentTookRotatingSecret = "Found rotation_period and set lease duration"

// TestAgentStaticTemplateNeverRendersAnExpiredToken is
// TestAgentNeverRendersAnExpiredToken over the unleased path: a template
// over wetix/static-token, 20s tokens, ttl=5s, nothing but Agent reading.
// Agent has no lease to renew; it re-reads ttl + 1 s after each read, and
// that re-read is what refreshes the token. The file must hold a token WeTix
// accepts at every moment, Agent must move to each new token, and Vault
// must hold no lease.
func TestAgentStaticTemplateNeverRendersAnExpiredToken(t *testing.T) {
	vaulttest.RequireLong(t)
	// 19s tokens, due 13s after they are obtained and re-read by Agent 1-2s
	// later: 3 or 4 tokens in the watch.
	s, agent := watchAgentNeverRendersExpired(t, "wetix/static-token", staticPolicy, "static-token", "rendered", "rotation_period")
	if !strings.Contains(agent.log(), agentTookRotatingSecret) {
		t.Errorf("Agent did not treat wetix/static-token as a rotating secret (no %q in its log)", agentTookRotatingSecret)
	}
	if n := liveLeasesUnder(t, s, "wetix"); n != 0 {
		t.Errorf("%d live leases under wetix/ after Agent's reads, want 0", n)
	}
}

// TestAgentStaticTemplateRerendersRefreshedToken: Agent's template over
// wetix/static-token while an app reading wetix/token every 250ms refreshes
// the token the moment it is due (30s tokens, ttl=5s, two refreshes).
// Agent's ttl points at that due instant, rounded up to the second, and it
// re-reads 1 s after it: the file changes 1-2 s after the refresh; we allow
// 3 s (render time on a loaded machine), and it must change before the old
// token expires.
func TestAgentStaticTemplateRerendersRefreshedToken(t *testing.T) {
	vaulttest.RequireLong(t)
	const (
		accessTTL = 30 * time.Second
		ttl       = 5 * time.Second
		refreshes = 2
		bound     = 3 * time.Second
	)
	var issues issueLog
	s, emu := setup(t, wetixtest.Options{AccessTTL: accessTTL, OnRequest: issues.onRequest},
		map[string]interface{}{"ttl": int(ttl.Seconds())})
	reader := appClient(t, s, "wetix-read", readOnlyPolicy)
	app := appClient(t, s, "wetix-static-read", staticPolicy)
	agent := startAgentOn(t, s, app.Token(), "wetix/static-token")

	worst, delays := watchRerenders(t, agent, emu, &issues, refreshes, accessTTL, bound, func() {
		vaulttest.MustReadToken(t, reader, "wetix")
	})
	if t.Failed() {
		t.Logf("agent log, static-token lines:\n%s", grepLines(agent.log(), "static-token", "rendered", "rotation_period"))
	}
	t.Logf("AGENT_STATIC_RERENDER_DELAY=%.2fs (worst of %d refreshes: %s; ttl %s, tokens %s)",
		worst.Seconds(), refreshes, strings.Join(delays, ", "), ttl, accessTTL)
	if n := emu.Calls(wetixtest.GrantRefresh); n != refreshes {
		t.Errorf("%d refresh-grant calls for %d refreshes: the two paths did not share them", n, refreshes)
	}
}

// TestStaticConsumersMoveToTheRotatedToken: after `vault write -f
// wetix/rotate`, every consumer of wetix/static-token moves to the new token
// within the ttl a read just before the rotate answered, + 1 s: Agent's
// template (it re-reads at ttl + 1 s), an app that keeps the token for ttl
// and reads again, and an app behind a caching Proxy (which passes the read
// through: it moves at its next read). 30s tokens, ttl=5s, rotate 8s into
// the first token's life, so the ttl still ahead is about 15s. The old token
// stays valid meanwhile (WeTix has no revocation); a consumer that needs the
// new one sooner reads again.
func TestStaticConsumersMoveToTheRotatedToken(t *testing.T) {
	vaulttest.RequireLong(t)
	const ttl = 5 * time.Second
	s, emu := setup(t, wetixtest.Options{AccessTTL: 30 * time.Second}, map[string]interface{}{"ttl": int(ttl.Seconds())})
	app := appClient(t, s, "wetix-static-read", staticPolicy)
	agent := startAgentOn(t, s, app.Token(), "wetix/static-token")
	proxy := vaulttest.StartProxy(t, s, app.Token(), vaulttest.ProxyOptions{})

	var held string
	var heldUntil time.Time
	direct := func() string {
		if !time.Now().Before(heldUntil) {
			a := readStatic(t, s.Addr, app.Token())
			held, heldUntil = a.token, time.Now().Add(a.ttl)
		}
		return held
	}
	consumers := []struct {
		name string
		sees func() string
	}{
		{"Vault Agent template", agent.rendered},
		{"app keeping the token for ttl", direct},
		{"app behind a caching Proxy", func() string { return readStatic(t, proxy.Addr, "").token }},
	}
	t0 := emu.LastIssued().AccessToken
	vaulttest.Await(t, 10*time.Second, "every consumer holding the first token", func() bool {
		for _, c := range consumers {
			if c.sees() != t0 {
				return false
			}
		}
		return true
	})
	time.Sleep(8 * time.Second)

	before := readStatic(t, s.Addr, s.Token)
	if _, err := s.Client.Logical().Write("wetix/rotate", nil); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	rotatedAt := time.Now()
	fresh := emu.LastIssued().AccessToken
	if fresh == t0 {
		t.Fatal("rotate issued no new token")
	}
	// Agent's own ttl was rounded up at its last read, up to 1 s later than
	// the read above; 1 s more for a loaded machine.
	bound := before.ttl + 3*time.Second
	moved := make([]time.Duration, len(consumers))
	for time.Since(rotatedAt) < bound+5*time.Second {
		done := true
		for i, c := range consumers {
			if moved[i] == 0 {
				switch got := c.sees(); got {
				case fresh:
					moved[i] = time.Since(rotatedAt)
				case t0:
				default:
					t.Fatalf("%s holds a token that is neither the old nor the rotated one", c.name)
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
		if moved[i] == 0 || moved[i] > bound {
			t.Errorf("%s moved to the rotated token after %s (0 = not within %s); want within ttl %s + 1s (+2s slack)", c.name,
				moved[i].Round(10*time.Millisecond), bound+5*time.Second, before.ttl)
		}
	}
	if !emu.IsAccessTokenValid(t0) {
		t.Errorf("the old token stopped being valid before its expiry")
	}
	if t.Failed() {
		t.Logf("agent log, static-token lines:\n%s", grepLines(agent.log(), "static-token", "rendered", "rotation_period"))
	}
	t.Logf("STATIC_CONSUMERS_MOVED (ttl before the rotate %s): %s", before.ttl, strings.Join(report, ", "))
}
