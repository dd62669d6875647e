package wetix

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// makeDue reads once so a pair is stored, then moves time into the refresh
// window (1h tokens: 10% window starts at 54m).
func (h *harness) makeDue() (access, refresh string) {
	h.t.Helper()
	access = h.readToken().Data["access_token"].(string)
	refresh = h.stored().RefreshToken
	h.clock.Advance(55 * time.Minute)
	h.wetix.ResetCounts()
	return access, refresh
}

func TestConcurrentReadsOfDueTokenMakeOneUpstreamCall(t *testing.T) {
	for _, n := range []int{100} {
		h := newHarness(t)
		h.configure(nil)
		old, _ := h.makeDue()
		// Slow WeTix down so that every reader arrives while the refresh
		// is in flight. Half read the unleased path: one flight serves both.
		h.wetix.Fault(wetixtest.Fault{Delay: 200 * time.Millisecond, Process: true, Times: 1})

		var wg sync.WaitGroup
		tokens := make([]string, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				path := "token"
				if i%2 == 1 {
					path = staticTokenPath
				}
				resp, err := h.request(logical.ReadOperation, path, nil)
				if err == nil && resp.IsError() {
					err = resp.Error()
				}
				errs[i] = err
				if err == nil {
					tokens[i] = resp.Data["access_token"].(string)
				}
			}(i)
		}
		wg.Wait()
		for i := range tokens {
			if errs[i] != nil {
				t.Fatalf("reader %d: %v", i, errs[i])
			}
			if tokens[i] == old || tokens[i] != tokens[0] {
				t.Fatalf("reader %d got a different or stale token", i)
			}
		}
		cc, rf := h.calls()
		t.Logf("%d concurrent reads of a due token: %d refresh calls, %d client-credentials calls", n, rf, cc)
		h.wantCalls(0, 1)
	}
}

func TestFaultsOnDueRefresh(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	type outcome int
	const (
		refreshed outcome = iota // a new token, no warning
		stale                    // the old token with a warning
		failed                   // an error
	)
	cases := []struct {
		name  string
		fault wetixtest.Fault
		ttl   string
		want  outcome
		// wantCC/wantRF: upstream calls per grant during the faulty read.
		wantCC, wantRF int
		errHas         string
	}{
		{name: "503 twice then ok", fault: wetixtest.FaultStatus(503, "").Limit(2), want: refreshed, wantCC: 2, wantRF: 1},
		{name: "500 on refresh once", fault: wetixtest.FaultStatus(500, "").For(wetixtest.GrantRefresh).Limit(1), want: refreshed, wantCC: 1, wantRF: 1},
		{name: "502 forever, old token outlives lease", fault: wetixtest.FaultHTML(502), ttl: "1m", want: stale, wantCC: 3, wantRF: 1},
		{name: "503 forever, old token too short for lease", fault: wetixtest.FaultStatus(503, ""), ttl: "1h", want: failed, wantCC: 3, wantRF: 1, errHas: "WeTix is unavailable"},
		{name: "429 with Retry-After", fault: wetixtest.FaultRetryAfter(1).Limit(1), want: refreshed, wantCC: 1, wantRF: 1},
		{name: "reset after the request was read", fault: wetixtest.Fault{Drop: true, Process: true, Times: 1}, want: refreshed, wantCC: 1, wantRF: 1},
		{name: "truncated body", fault: wetixtest.Fault{Truncate: true, Process: true, Times: 1}, want: refreshed, wantCC: 1, wantRF: 1},
		{name: "malformed JSON with 200", fault: wetixtest.Fault{Body: `{"access_token":`, Times: 1}, want: refreshed, wantCC: 1, wantRF: 1},
		{name: "HTML 200 page", fault: wetixtest.Fault{Body: "<html><title>Maintenance</title></html>", ContentType: "text/html", Times: 1}, want: refreshed, wantCC: 1, wantRF: 1},
		{name: "invalid_grant", fault: wetixtest.FaultInvalidGrant().For(wetixtest.GrantRefresh), want: refreshed, wantCC: 1, wantRF: 1},
		{name: "refresh tokens revoked upstream", fault: wetixtest.Fault{}, want: refreshed, wantCC: 1, wantRF: 1},
		{name: "invalid_client", fault: wetixtest.FaultInvalidClient(), want: failed, wantCC: 1, wantRF: 1, errHas: "vault write <mount>/config client_id=... client_secret=..."},
		{name: "GraphQL-style 403", fault: wetixtest.FaultGraphQLError(403, "forbidden for this client"), want: failed, wantCC: 1, wantRF: 1, errHas: "forbidden for this client"},
		{name: "no refresh token in answer", fault: wetixtest.Fault{OmitRefreshToken: true, Times: 1}.For(wetixtest.GrantRefresh), want: refreshed, wantCC: 0, wantRF: 1},
		{name: "no expires_in in answer", fault: wetixtest.Fault{OmitExpiresIn: true, Times: 1}, want: refreshed, wantCC: 0, wantRF: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			cfg := map[string]interface{}{}
			if tc.ttl != "" {
				cfg["ttl"] = tc.ttl
			}
			h.configure(cfg)
			old, oldRefresh := h.makeDue()
			if tc.name == "refresh tokens revoked upstream" {
				h.wetix.RevokeAllRefreshTokens()
			} else {
				h.wetix.Fault(tc.fault)
			}

			start := time.Now()
			resp, err := h.request(logical.ReadOperation, "token", nil)
			elapsed := time.Since(start)
			if err == nil && resp.IsError() {
				err = resp.Error()
			}
			cc, rf := h.calls()
			if cc != tc.wantCC || rf != tc.wantRF {
				t.Errorf("upstream calls: client_credentials=%d refresh=%d, want %d and %d", cc, rf, tc.wantCC, tc.wantRF)
			}
			switch tc.want {
			case refreshed:
				if err != nil {
					t.Fatalf("want a new token, got %v", err)
				}
				tok := resp.Data["access_token"].(string)
				if tok == old || !h.wetix.IsAccessTokenValid(tok) || len(resp.Warnings) > 0 {
					t.Fatalf("want a new valid token without warnings; warnings %v", resp.Warnings)
				}
				if st := h.stored(); st.RefreshToken == "" || st.AccessToken != tok {
					t.Fatal("new pair not stored")
				}
			case stale:
				if err != nil {
					t.Fatalf("want the old token with a warning, got %v", err)
				}
				if resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
					t.Fatalf("want old token + warning, got warnings %v", resp.Warnings)
				}
			case failed:
				if err == nil {
					t.Fatal("want an error, got a token")
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %q lacks %q", err, tc.errHas)
				}
				for _, secret := range []string{"s3cret-client-secret-value", old, oldRefresh} {
					if strings.Contains(err.Error(), secret) {
						t.Fatal("error leaks a secret")
					}
				}
			}
			if tc.name == "429 with Retry-After" && elapsed < time.Second {
				t.Errorf("Retry-After: 1 not honoured: retried after %s", elapsed)
			}

			// The fault clears; the next read works with no operator action.
			h.wetix.ClearFaults()
			h.clock.Advance(time.Second)
			h.b.tokens.background.Wait()
			if tc.want != refreshed {
				tok := h.readToken().Data["access_token"].(string)
				if tok == old || !h.wetix.IsAccessTokenValid(tok) {
					t.Fatal("no recovery after the fault cleared")
				}
			}
			// Whatever happened, the stored refresh token (if any) is never
			// one WeTix has already seen spent and still gets replayed.
			if st := h.stored(); st.RefreshToken != "" && !st.RefreshSent && !h.wetix.IsRefreshTokenLive(st.RefreshToken) {
				t.Fatal("stored refresh token is dead but not marked as spent")
			}
			for _, secret := range []string{"s3cret-client-secret-value", oldRefresh, h.stored().RefreshToken} {
				if strings.Contains(h.logs.String(), secret) {
					t.Fatal("plugin log leaks a secret")
				}
			}
		})
	}
}

func TestTimeoutOnRefreshFallsBackToClientCredentials(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	h := newHarness(t)
	h.configure(map[string]interface{}{"request_timeout": "1s"})
	old, oldRefresh := h.makeDue()
	h.wetix.Fault(wetixtest.Fault{Delay: 3 * time.Second, Process: true, Times: 1}.For(wetixtest.GrantRefresh))

	tok := h.readToken().Data["access_token"].(string)
	if tok == old {
		t.Fatal("not refreshed")
	}
	// The refresh call timed out after WeTix took the refresh token: it is
	// spent, so the plugin must not try it again, only the client-credentials
	// grant.
	h.wantCalls(1, 1)
	if h.wetix.IsRefreshTokenLive(oldRefresh) {
		t.Fatal("the emulator did not spend the refresh token")
	}
	if st := h.stored(); !h.wetix.IsRefreshTokenLive(st.RefreshToken) {
		t.Fatal("stored refresh token is not live")
	}
}

func TestConnectionRefusedDoesNotSpendRefreshToken(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.makeDue()
	h.wetix.Close()
	resp, err := h.request(logical.ReadOperation, "token", nil)
	// 5 minutes left is less than the 1h lease TTL: no stale serving.
	if !strings.Contains(errText(resp, err), "WeTix is unavailable") {
		t.Fatalf("want an unavailable error, got %q", errText(resp, err))
	}
	if st := h.stored(); st.RefreshSent || st.RefreshToken == "" {
		t.Fatal("a refresh token that never left the plugin was marked as spent")
	}
}

func TestStorageFailureAfterRefreshLosesNoRefreshToken(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	old, _ := h.makeDue()

	// WeTix rotates the pair, then storage refuses the write. The marker
	// write comes first, so fail only after it: let one Put through.
	h.wetix.Fault(wetixtest.Fault{Delay: 50 * time.Millisecond, Process: true, Times: 1})
	go func() {
		time.Sleep(20 * time.Millisecond)
		h.storage.failPuts.Store(true)
	}()
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if err == nil && !resp.IsError() {
		t.Fatal("read succeeded although the new pair could not be stored")
	}
	if !strings.Contains(errText(resp, err), "storing the new WeTix tokens failed") {
		t.Fatalf("error does not say what failed: %s", errText(resp, err))
	}
	issued := h.wetix.LastIssued()
	if h.stored().RefreshToken == issued.RefreshToken {
		t.Fatal("test setup: the write went through")
	}

	// Storage comes back: the next read stores the kept pair and serves it,
	// with no new upstream call.
	h.storage.failPuts.Store(false)
	tok := h.readToken().Data["access_token"].(string)
	if tok != issued.AccessToken || tok == old {
		t.Fatal("the next read did not serve the pair kept in memory")
	}
	if st := h.stored(); st.RefreshToken != issued.RefreshToken || !h.wetix.IsRefreshTokenLive(st.RefreshToken) {
		t.Fatal("the rotated refresh token was lost")
	}
	h.wantCalls(0, 1)
}

func TestRefreshSentMarkerSurvivesCrash(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.makeDue()
	// Simulate a crash after the refresh token was sent: storage holds the
	// marker, memory is gone.
	st := h.stored()
	st.RefreshSent = true
	if err := writeTokenState(t.Context(), h.storage, st); err != nil {
		t.Fatal(err)
	}
	h.b.tokens.invalidate()
	h.readToken()
	// The possibly spent token is not replayed; client credentials recover.
	h.wantCalls(1, 0)
}

// errText is the error a user sees: the response's own error when there is
// one (Vault shows it in place of a bare ErrInvalidRequest), else err.
func errText(resp *logical.Response, err error) string {
	if resp != nil && resp.IsError() {
		return resp.Error().Error()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func TestRetryAfterLongerThanCooldownIsHonouredAcrossReads(t *testing.T) {
	h := newHarness(t)
	h.b.tokens.failureCooldown = 5 * time.Second
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultRetryAfter(120))
	resp := h.readToken() // stale + warning
	if len(resp.Warnings) == 0 {
		t.Fatal("want the old token with a warning")
	}
	cc, rf := h.calls()
	h.clock.Advance(60 * time.Second)
	h.readToken()
	if cc2, rf2 := h.calls(); cc2 != cc || rf2 != rf {
		t.Fatalf("WeTix asked to wait 120s but was called again after 60s (%d+%d -> %d+%d calls)", cc, rf, cc2, rf2)
	}
	h.wetix.ClearFaults()
	h.clock.Advance(61 * time.Second)
	if tok := h.readToken().Data["access_token"]; tok != h.wetix.LastIssued().AccessToken {
		t.Fatal("no refresh once Retry-After passed")
	}
}

func TestOutageDoesNotHoldReadsOfAServableToken(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m", "request_timeout": "1s"})
	old, _ := h.makeDue()
	// WeTix hangs: every call times out after request_timeout.
	h.wetix.Fault(wetixtest.Fault{Delay: 10 * time.Second})

	// The first due read sits through the retry round (4 calls of 1s),
	// then gets the old token with a warning.
	start := time.Now()
	resp := h.readToken()
	first := time.Since(start)
	if resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
		t.Fatalf("first read in the outage: warnings %v", resp.Warnings)
	}

	// Later reads do not wait for another round: the retry runs behind them.
	for i := 0; i < 3; i++ {
		start = time.Now()
		resp = h.readToken()
		if d := time.Since(start); d > first/2 {
			t.Fatalf("read %d in the outage took %s, as long as a retry round (%s)", i, d, first)
		}
		if resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
			t.Fatalf("read %d in the outage: warnings %v", i, resp.Warnings)
		}
	}

	// Four reads got the old token with a warning; the count reaches storage
	// with the next write of the tokens entry, or the next periodic tick.
	h.tick()
	if n := h.status()["stale_serves"]; n != uint64(4) {
		t.Fatalf("status stale_serves = %v, want 4", n)
	}

	// WeTix comes back: once the background refresh lands, reads get the
	// new token without a warning.
	h.wetix.ClearFaults()
	h.b.tokens.background.Wait()
	// Either that round already succeeded, or this read starts one that
	// succeeds within the grace.
	resp = h.readToken()
	if resp.Data["access_token"] == old || len(resp.Warnings) != 0 {
		t.Fatalf("after the outage: same token or warnings %v", resp.Warnings)
	}
	if st := h.stored(); st.Stats.StaleServes != 4 {
		t.Fatalf("stored stale_serves = %d after the outage, want 4", st.Stats.StaleServes)
	}
	t.Logf("first outage read %s; later reads answered within the %s grace", first.Round(time.Millisecond), h.b.tokens.outageGrace)
}
