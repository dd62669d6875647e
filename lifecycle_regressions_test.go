package wetix

// Regression tests from the review of the issue-9 lifecycle: each failed on
// the code it was written against, and places one scenario to assert what a
// user would see.

import (
	"context"
	"html"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// A seed the mount already spent is never sent again, even when the
// provisioning script that repeats it also changes the credentials (a
// client-secret rotation). Found in review against 7652135, where the new
// generation carried the spent seed as unsent and the next read replayed it.
func TestSameSeedWrittenWithNewCredentialsIsNotResent(t *testing.T) {
	h := newHarness(t)
	seed := h.wetix.SeedRefreshToken()
	h.configure(map[string]interface{}{"refresh_token": seed})
	h.readToken()
	if !h.wetix.IsRefreshTokenSpent(seed) {
		t.Fatal("setup: the seed was not spent by the first read")
	}

	h.wetix.SetClientSecret("rotated-client-secret-value")
	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{
		"client_id":     "client-1",
		"client_secret": "rotated-client-secret-value",
		"refresh_token": seed,
	})
	if err != nil || resp.IsError() {
		t.Fatalf("config update: %s", errText(resp, err))
	}
	_, _ = h.request(logical.ReadOperation, "token", nil)
	if n := h.wetix.Replays(); n != 0 {
		t.Fatalf("the spent seed refresh token was sent again (%d replays) after a credential change that repeated it", n)
	}
	if st := h.stored(); st.RefreshToken == seed && !st.RefreshSent {
		t.Fatal("storage holds the spent seed as an unsent refresh token")
	}
}

// A config write that retires the credentials must not wait for a refresh
// of the old ones against a hanging WeTix (with the defaults that wait was
// ~80s, past the vault CLI's 60s client timeout). Found in review against
// 7652135; fixed since by cancelling the flight (lockForConfigChange).
func TestConfigWriteDoesNotWaitForAHangingRefresh(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m", "request_timeout": "1s"})
	h.makeDue()
	h.wetix.Fault(wetixtest.Fault{Delay: time.Minute}) // hangs; the client gives up after 1s

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _ = h.request(logical.ReadOperation, "token", nil)
	}()
	waitFor(t, func() bool { return h.wetix.Calls(wetixtest.GrantRefresh) > 0 })

	start := time.Now()
	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"client_secret": "corrected-client-secret"})
	took := time.Since(start)
	<-readDone
	if err != nil || resp.IsError() {
		t.Fatalf("config write: %s", errText(resp, err))
	}
	if took > time.Second {
		t.Fatalf("the config write waited %s for a refresh of the old config against a hanging WeTix (request_timeout=1s); with the default 30s timeout and 80s budget it would wait ~80s", took.Round(10*time.Millisecond))
	}
}

// landThenFail stores a Put of key and then reports a failure, as a storage
// backend does when its commit lands but the answer times out.
type landThenFail struct {
	logical.Storage
	key   string
	armed atomic.Bool
}

func (s *landThenFail) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := s.Storage.Put(ctx, e); err != nil {
		return err
	}
	if e.Key == s.key && s.armed.CompareAndSwap(true, false) {
		return errStorageDown
	}
	return nil
}

// A config write whose storage Put fails ambiguously (the entry landed, the
// answer was an error: a raft apply timeout, a Consul request timeout) must
// not claim that nothing changed. (Found in review against 7652135, which
// said "storing the config failed; nothing was changed"; fixed since.)
func TestAmbiguousConfigWriteFailureDoesNotClaimNothingChanged(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	before, _ := readConfig(context.Background(), h.storage)

	st := &landThenFail{Storage: h.storage, key: configStoragePath}
	st.armed.Store(true)
	resp, err := h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "config", Storage: st,
		Data: map[string]interface{}{"client_secret": "new-client-secret-value"},
	})
	msg := errText(resp, err)
	if msg == "" {
		t.Fatal("setup: the write did not fail")
	}
	after, _ := readConfig(context.Background(), h.storage)
	if strings.Contains(msg, "nothing was changed") && after.Generation != before.Generation {
		t.Fatalf("the error says %q, but the config in storage changed (new secret, new generation)", msg)
	}
}

// An error page that echoes the client secret HTML-escaped or
// percent-encoded must not carry it into a read's error, status last_error or
// the log. Found in review against 7652135 (redaction matched only the raw
// secret and its Basic form).
func TestEncodedClientSecretEchoIsRedacted(t *testing.T) {
	const secret = "tr0ub4dor&3-horse<battery>staple"
	echoes := map[string]wetixtest.Fault{
		"html entities": {Status: 503, ContentType: "text/html",
			Body: "<html><head><title>503 upstream rejected client_secret=tr0ub4dor&amp;3-horse&lt;battery&gt;staple</title></head></html>"},
		"percent encoding": {Status: 503, ContentType: "text/plain",
			Body: "upstream timeout for grant_type=client_credentials&client_secret=tr0ub4dor%263-horse%3Cbattery%3Estaple"},
	}
	for name, fault := range echoes {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(o *wetixtest.Options) { o.ClientSecret = secret })
			resp, err := h.request(logical.CreateOperation, "config", map[string]interface{}{
				"client_id": "client-1", "client_secret": secret, "base_url": h.wetix.URL(),
			})
			if err != nil || resp.IsError() {
				t.Fatalf("config: %s", errText(resp, err))
			}
			h.wetix.Fault(fault)
			resp, err = h.request(logical.ReadOperation, "token", nil)
			msg := errText(resp, err)
			if msg == "" {
				t.Fatal("setup: the read did not fail")
			}
			for where, text := range map[string]string{"read error": msg, "status last_error": h.status()["last_error"].(string), "log": h.logs.String()} {
				if decoded := decodeEchoes(text); strings.Contains(decoded, secret) {
					i := strings.Index(text, "client_secret=")
					t.Errorf("%s carries the client secret in encoded form: ...%s...", where, text[i:min(len(text), i+60)])
				}
			}
		})
	}
}

// decodeEchoes undoes the encodings an upstream page might apply.
func decodeEchoes(s string) string {
	s = html.UnescapeString(s)
	if u, err := url.QueryUnescape(s); err == nil {
		s = u
	}
	return s
}

// 20s tokens (19s life) and ttl=17s: the token outlives ttl plus the margin,
// so while WeTix is healthy every lease is exactly ttl (issue 9's schedule
// invariant; defect 8's 1s leases make Agent drop new tokens). Found in
// review against 7652135, where carriesFullLeases demanded full leases for
// 10% of the life and this case got leases cut down to 1s. See also
// TestAttackNoRefreshStormWhenTTLIsJustUnderTheTokenLife: the two pull in
// opposite directions (review-findings.md, entries 4 and 8).
func TestATTLCloseToTheTokenLifeNeverGetsAnAgentUnsafeLease(t *testing.T) {
	// 20s tokens with ttl=17s cannot carry full leases for 10% of their
	// life, so they keep the 10% window; their leases are cut near the end,
	// but never below the 2s that keeps Vault Agent's re-read in a later
	// second (see agentSafeLease).
	h := newHarness(t, withAccessTTL(20*time.Second))
	h.configure(map[string]interface{}{"ttl": "17s"})
	for i := 0; i < 600; i++ {
		resp := h.readToken()
		if d := resp.Secret.TTL; d < agentSafeLease || d > 17*time.Second {
			t.Fatalf("read %d: lease %s, want 2s..17s", i, d)
		}
		h.clock.Advance(100 * time.Millisecond)
	}
}

func TestHugeRetryAfterDoesNotStopTheMountUntilItEnds(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.wetix.Fault(wetixtest.FaultRetryAfter(86400).Limit(1))
	if _, err := h.request(logical.ReadOperation, "token", nil); err == nil {
		t.Log("first read served despite the 429")
	}
	// WeTix is fine again; ten minutes pass.
	h.clock.Advance(10 * time.Minute)
	if err := h.b.periodic(context.Background(), &logical.Request{Storage: h.storage}); err != nil {
		t.Fatal(err)
	}
	h.b.tokens.background.Wait()
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if msg := errText(resp, err); msg != "" {
		t.Fatalf("10 minutes after WeTix recovered, a read still fails without calling it (%d client-credentials calls): %q", h.wetix.Calls(wetixtest.GrantClientCredentials), msg)
	}
}

// Status stale_serves counts every read served the current token with a
// warning, also when WeTix refuses connections (the refresh token is never
// sent and tryRefresh restores the unsent state). Found in review of the
// stale-serve counting, which lost the count folded into the sent mark.
func TestStaleServeCountSurvivesUnsentRefreshAttempts(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Close() // connection refused from now on
	warned := 0
	for i := 0; i < 4; i++ {
		resp := h.readToken()
		if len(resp.Warnings) > 0 {
			warned++
		}
		h.b.tokens.background.Wait()
	}
	// Counts are reported once stored: by the next periodic tick at the latest.
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	if got := h.status()["stale_serves"]; got != uint64(warned) {
		t.Fatalf("status stale_serves = %v, but %d reads were served the current token with a warning", got, warned)
	}
}

// A config write that keeps the generation (ttl only) leaves a refresh in
// flight alone: WeTix already spent the old refresh token, and the pair it
// answers with holds the only live one (design.md invariant 2). Found in
// review of lockForConfigChange, which at first cancelled the flight on
// every config write and discarded the answer, forcing a client-credentials
// grant.
func TestTTLOnlyConfigWriteDoesNotDiscardARefreshInFlight(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.Fault{Delay: 500 * time.Millisecond, Process: true, Times: 1}.For(wetixtest.GrantRefresh))

	readDone := make(chan string)
	go func() {
		resp, err := h.request(logical.ReadOperation, "token", nil)
		readDone <- errText(resp, err)
	}()
	waitFor(t, func() bool { return h.wetix.Successes(wetixtest.GrantRefresh) > 0 })
	issued := h.wetix.LastIssued()
	if resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"ttl": "2m"}); err != nil || resp.IsError() {
		t.Fatalf("ttl write: %s", errText(resp, err))
	}
	if msg := <-readDone; msg != "" {
		t.Fatalf("read: %s", msg)
	}
	h.b.tokens.background.Wait()
	if st := h.stored(); st.RefreshToken != issued.RefreshToken && h.wetix.IsRefreshTokenLive(issued.RefreshToken) {
		t.Errorf("the live refresh token WeTix issued during a ttl-only config write was dropped; storage holds another (sent=%v)", st.RefreshSent)
	}
	if cc := h.wetix.Calls(wetixtest.GrantClientCredentials); cc != 0 {
		t.Errorf("%d client-credentials grants: the refresh's answer was thrown away because ttl changed", cc)
	}
}

// Scenario: 20s tokens (19s life, 0.95s margin) and ttl=18s, WeTix healthy,
// an app reading once a second. The token can carry a full 18s lease for
// only 50ms after it is issued.
// Expected: no refresh storm: a token is not due right after it is issued
// (issue 9: "never let the rule make every token due at once"); about one
// refresh per token life. Observed (working tree where carriesFullLeases is
// lifetime-margin > ttl): the token is due 50ms after issue, so every read
// refreshes: one WeTix call per read (19 in 19s).
func TestNoRefreshStormWhenTTLIsJustUnderTheTokenLife(t *testing.T) {
	h := newHarness(t, withAccessTTL(20*time.Second))
	h.configure(map[string]interface{}{"ttl": "18s"})
	h.readToken()
	h.wetix.ResetCounts()
	// Whole-second steps: a token issued on a whole second keeps all of its
	// 19s (expiry is truncated to the second), as any token does whose
	// request left in the first 50ms of a second.
	for i := 0; i < 19; i++ {
		h.clock.Advance(time.Second)
		h.readToken()
	}
	cc, rf := h.calls()
	if cc+rf > 2 {
		t.Fatalf("%d WeTix calls in 19s of reads (one a second) of 19s tokens (%d refresh, %d client credentials): a refresh storm", cc+rf, rf, cc)
	}
}
