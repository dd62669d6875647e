package wetix

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// readStatic reads the unleased path and fails the test on any error.
func (h *harness) readStatic() *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, staticTokenPath, nil)
	if err != nil || resp.IsError() {
		h.t.Fatalf("%s read: resp=%v err=%v", staticTokenPath, resp, err)
	}
	return resp
}

// staticAnswer is the unleased answer decoded as consul-template and VSO
// decode it: integers for ttl and rotation_period, RFC 3339 for the times.
type staticAnswer struct {
	token          string
	expiresAt      time.Time
	ttl, period    time.Duration
	lastRotation   time.Time
	warnings       []string
	hasLease       bool
	unexpectedKeys []string
}

func decodeStatic(t *testing.T, resp *logical.Response) staticAnswer {
	t.Helper()
	var a staticAnswer
	a.token, _ = resp.Data["access_token"].(string)
	a.warnings = resp.Warnings
	a.hasLease = resp.Secret != nil
	var err error
	if a.expiresAt, err = time.Parse(time.RFC3339, resp.Data["expires_at"].(string)); err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	if a.lastRotation, err = time.Parse(time.RFC3339, resp.Data["last_vault_rotation"].(string)); err != nil {
		t.Fatalf("last_vault_rotation: %v", err)
	}
	ttl, ok := resp.Data["ttl"].(int64)
	period, ok2 := resp.Data["rotation_period"].(int64)
	if !ok || !ok2 {
		t.Fatalf("ttl %T and rotation_period %T, want integers", resp.Data["ttl"], resp.Data["rotation_period"])
	}
	a.ttl, a.period = time.Duration(ttl)*time.Second, time.Duration(period)*time.Second
	if resp.Data["token_type"] != "Bearer" {
		t.Fatalf("token_type = %v", resp.Data["token_type"])
	}
	for k := range resp.Data {
		if _, ok := staticTokenResponseFields[k]; !ok {
			a.unexpectedKeys = append(a.unexpectedKeys, k)
		}
	}
	return a
}

func TestStaticTokenNotConfigured(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.ReadOperation, staticTokenPath, nil)
	if err != nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "vault write <mount>/config") {
		t.Fatalf("want an error naming the fix, got %v %v", resp, err)
	}
	h.wantCalls(0, 0)
}

// TestStaticTokenAnswer: the fields, no lease, and the ttl the lifecycle
// implies. 1h tokens (3599 s after the client's rounding), ttl=5m: the token
// is replaced when 10% of its life is left, 3599-359.9 = 3239.1 s after it
// was obtained, which ttl and rotation_period round up to 3240.
func TestStaticTokenAnswer(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	t0 := h.clock.Now()
	a := decodeStatic(t, h.readStatic())
	h.wantCalls(1, 0)
	if !h.wetix.IsAccessTokenValid(a.token) || a.token != h.stored().AccessToken {
		t.Fatal("served token is not the stored one the emulator issued")
	}
	if a.hasLease {
		t.Fatal("the unleased path answered with a lease")
	}
	if len(a.unexpectedKeys) > 0 || len(a.warnings) > 0 {
		t.Fatalf("unexpected fields %v, warnings %v", a.unexpectedKeys, a.warnings)
	}
	if a.ttl != 3240*time.Second || a.period != 3240*time.Second {
		t.Fatalf("ttl %s, rotation_period %s, want 3240s both", a.ttl, a.period)
	}
	if !a.lastRotation.Equal(t0) || !a.expiresAt.Equal(t0.Add(time.Hour-time.Second)) {
		t.Fatalf("last_vault_rotation %s, expires_at %s", a.lastRotation, a.expiresAt)
	}

	// ttl counts down; rotation_period and last_vault_rotation stay.
	h.clock.Advance(1000 * time.Second)
	b := decodeStatic(t, h.readStatic())
	if b.token != a.token || b.ttl != a.ttl-1000*time.Second || b.period != a.period || !b.lastRotation.Equal(a.lastRotation) {
		t.Fatalf("after 1000s: same token %v, ttl %s, rotation_period %s, last_vault_rotation %s",
			b.token == a.token, b.ttl, b.period, b.lastRotation)
	}
	h.wantCalls(1, 0)
}

// TestStaticTokenTTLIsWhenTheNextTokenComes: a second before ttl runs out
// the token is still the current one; at ttl it has been replaced, for
// either path, so a consumer re-reading at ttl + 0.5 s (VSO) or ttl + 1 s
// (consul-template) gets the next one. The read is placed a fraction of a
// second into a second, where rounding ttl down would send VSO back early.
func TestStaticTokenTTLIsWhenTheNextTokenComes(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readStatic()
	h.clock.Advance(700 * time.Millisecond)
	a := decodeStatic(t, h.readStatic())
	h.clock.Advance(a.ttl - time.Second)
	if h.readToken().Data["access_token"] != a.token {
		t.Fatal("the token was replaced before ttl ran out")
	}
	h.clock.Advance(time.Second)
	b := decodeStatic(t, h.readStatic())
	if b.token == a.token {
		t.Fatal("ttl after the read, the token was not replaced")
	}
	if !b.lastRotation.Equal(h.clock.Now().Truncate(time.Second)) || b.ttl != b.period {
		t.Fatalf("new token: last_vault_rotation %s (now %s), ttl %s, rotation_period %s", b.lastRotation, h.clock.Now(), b.ttl, b.period)
	}
	h.wantCalls(1, 1)
}

// staticConsumer models how a consumer of the unleased path schedules its
// next read from an answer, given the token it holds after the answer.
type staticConsumer struct {
	name string
	// next returns how long the consumer waits before reading again.
	next func(a staticAnswer, changed bool) time.Duration
}

// staticConsumers are the two schedulers the unleased path is for, as their
// source reads (docs/static-token.md quotes it).
func staticConsumers(vsoJitter time.Duration) []staticConsumer {
	// consul-template v0.41.1 leaseCheckWait: no lease, a rotation_period
	// field and an integer ttl: sleep ttl + 1 s, no jitter, from every answer.
	ct := staticConsumer{name: "consul-template", next: func(a staticAnswer, _ bool) time.Duration { return a.ttl + time.Second }}
	// VSO computePostSyncHorizon: ttl + 0.5 s (1 s when ttl is 0) plus up to
	// 0.15 s of jitter, where ttl is the one stored with the last answer
	// whose data changed: syncSecret keeps the previous StaticCredsMetaData
	// when the HMAC of the data (ttl and the rotation fields excluded) is equal.
	var statusTTL time.Duration
	vso := staticConsumer{name: "VSO", next: func(a staticAnswer, changed bool) time.Duration {
		if changed {
			statusTTL = a.ttl
		}
		if statusTTL > 0 {
			return statusTTL + 500*time.Millisecond + vsoJitter
		}
		return time.Second + vsoJitter
	}}
	return []staticConsumer{ct, vso}
}

// TestStaticTokenConsumerNeverHoldsAnExpiredToken plays consul-template and
// VSO, each as it schedules its reads, starting at several fractions of a
// second: over several token lifetimes and ttls the token a consumer holds
// never expires before its next read, ttl never reaches past expires_at,
// and the consumer moves to every new token.
func TestStaticTokenConsumerNeverHoldsAnExpiredToken(t *testing.T) {
	cases := []struct {
		life time.Duration
		ttl  string
	}{
		{5 * time.Second, "5m"}, {10 * time.Second, "5m"}, {20 * time.Second, "2s"}, {time.Minute, "30s"},
		{time.Hour, "5m"}, {time.Hour, "1h"}, {24 * time.Hour, "1h"},
	}
	for _, tc := range cases {
		for _, offset := range []time.Duration{0, 300 * time.Millisecond, 700 * time.Millisecond, 999 * time.Millisecond} {
			for _, jitter := range []time.Duration{0, 150 * time.Millisecond} {
				for i := range staticConsumers(jitter) {
					name := fmt.Sprintf("%s/ttl=%s/offset=%s/jitter=%s/%s", tc.life, tc.ttl, offset, jitter, staticConsumers(jitter)[i].name)
					t.Run(name, func(t *testing.T) {
						c := staticConsumers(jitter)[i]
						h := newHarness(t, func(o *wetixtest.Options) { o.AccessTTL = tc.life })
						h.configure(map[string]interface{}{"ttl": tc.ttl})
						h.readStatic()
						h.clock.Advance(offset)
						end := h.clock.Now().Add(5 * tc.life)
						held := ""
						var heldUntil time.Time
						tokens := map[string]bool{}
						for h.clock.Now().Before(end) {
							a := decodeStatic(t, h.readStatic())
							now := h.clock.Now()
							if a.ttl < 0 || a.period < time.Second || a.ttl > a.period {
								t.Fatalf("at %s: ttl %s, rotation_period %s", now, a.ttl, a.period)
							}
							if now.Add(a.ttl).After(a.expiresAt) {
								t.Fatalf("at %s: ttl %s reaches past expires_at %s", now, a.ttl, a.expiresAt)
							}
							changed := a.token != held
							if changed {
								held, heldUntil = a.token, a.expiresAt
							}
							wait := c.next(a, changed)
							if !now.Add(wait).Before(heldUntil) {
								t.Fatalf("at %s: %s keeps its token until %s, past its expiry %s", now, c.name, now.Add(wait), heldUntil)
							}
							tokens[a.token] = true
							h.clock.Advance(wait)
						}
						if len(tokens) < 4 {
							t.Fatalf("%d tokens in 5 lifetimes: the consumer did not move on", len(tokens))
						}
					})
				}
			}
		}
	}
}

// TestStaticAndLeasedShareOneRefresh: both paths serve the same token, and a
// due token is refreshed once whichever path reads it first.
func TestStaticAndLeasedShareOneRefresh(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	old, _ := h.makeDue()
	a := decodeStatic(t, h.readStatic())
	if a.token == old {
		t.Fatal("a due token was served on the unleased path")
	}
	if h.readToken().Data["access_token"] != a.token {
		t.Fatal("the paths serve different tokens")
	}
	h.wantCalls(0, 1)
}

func TestStaticTokenDuringAnOutage(t *testing.T) {
	t.Parallel() // waits on real retries; shares nothing
	t.Run("stale with a warning", func(t *testing.T) {
		h := newHarness(t)
		h.configure(map[string]interface{}{"ttl": "1m"})
		old, _ := h.makeDue()
		h.wetix.Fault(wetixtest.FaultHTML(502))
		a := decodeStatic(t, h.readStatic())
		if a.token != old || len(a.warnings) == 0 {
			t.Fatalf("want the old token with a warning; warnings %v", a.warnings)
		}
		// Due already: 0, as static-creds answers for an overdue rotation;
		// consul-template and VSO come back a second later, to pick up the
		// next token soon after WeTix is back.
		if a.ttl != 0 {
			t.Fatalf("ttl %s for a due token, want 0", a.ttl)
		}
		// Counts are reported once stored: by the next periodic tick at the latest.
		if err := h.tick(); err != nil {
			t.Fatal(err)
		}
		if n := h.status()["stale_serves"]; n != uint64(1) {
			t.Fatalf("stale_serves = %v, want 1", n)
		}
		h.wetix.ClearFaults()
		h.b.tokens.background.Wait()
		h.clock.Advance(2 * time.Second)
		if b := decodeStatic(t, h.readStatic()); b.token == old || len(b.warnings) > 0 || b.ttl < time.Second {
			t.Fatalf("after the outage: same token %v, warnings %v, ttl %s", b.token == old, b.warnings, b.ttl)
		}
	})
	t.Run("too short to serve", func(t *testing.T) {
		h := newHarness(t)
		h.configure(map[string]interface{}{"ttl": "1h"})
		old, oldRefresh := h.makeDue()
		h.wetix.Fault(wetixtest.FaultStatus(503, ""))
		_, err := h.request(logical.ReadOperation, staticTokenPath, nil)
		if err == nil || !strings.Contains(err.Error(), "WeTix is unavailable") {
			t.Fatalf("want the outage error, got %v", err)
		}
		for _, secret := range []string{"s3cret-client-secret-value", old, oldRefresh} {
			if strings.Contains(err.Error(), secret) {
				t.Fatal("error leaks a secret")
			}
		}
	})
	t.Run("bad credentials name the fix", func(t *testing.T) {
		h := newHarness(t)
		h.configure(nil)
		h.makeDue()
		h.wetix.Fault(wetixtest.FaultInvalidClient())
		_, err := h.request(logical.ReadOperation, staticTokenPath, nil)
		if err == nil || !strings.Contains(err.Error(), "vault write <mount>/config client_id=... client_secret=...") {
			t.Fatalf("want an error naming the fix, got %v", err)
		}
	})
}

// TestTokenReadsAreCountedByPath: the metric tells the two paths apart and
// counts only answered reads.
func TestTokenReadsAreCountedByPath(t *testing.T) {
	h := newHarness(t)
	h.request(logical.ReadOperation, staticTokenPath, nil) // not configured: not answered
	h.configure(nil)
	for i := 0; i < 3; i++ {
		h.readStatic()
	}
	h.readToken()
	m, _ := h.scrape()
	for path, want := range map[string]float64{"token": 1, staticTokenPath: 3} {
		if got := m.MustValue(t, "wetix_token_reads", mount("path", path)...); got != want {
			t.Errorf("wetix_token_reads{path=%q} = %v, want %v", path, got, want)
		}
	}
}

// TestStaticTokenPathHelp: every field of the answer is documented, and
// the path help says what the consumers do with it.
func TestStaticTokenPathHelp(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	resp := h.readStatic()
	for k := range resp.Data {
		f, ok := staticTokenResponseFields[k]
		if !ok || f.Description == "" {
			t.Errorf("field %s is not documented", k)
		}
	}
	help, err := h.request(logical.HelpOperation, staticTokenPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := help.Data["help"].(string)
	for _, want := range []string{"without a lease", "ttl + 1", "allowStaticCreds"} {
		if !strings.Contains(text, want) {
			t.Errorf("path help lacks %q", want)
		}
	}
}
