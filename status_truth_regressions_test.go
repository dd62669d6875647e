package wetix

// Regression tests for issue 19: what status and the metrics say must be what
// the mount does, and a counter must never go backwards while the mount
// exists (Prometheus reads a drop as a reset, and alerts on increase() fire).

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/metricstest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// counterSamples is every counter sample of a scrape, by series.
func counterSamples(m metricstest.Families) map[string]float64 {
	out := map[string]float64{}
	for name, f := range m {
		if f.GetType().String() != "COUNTER" {
			continue
		}
		for _, s := range f.GetMetric() {
			key := name
			for _, l := range s.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			out[key] = s.GetCounter().GetValue()
		}
	}
	return out
}

// wantNoCounterDown fails when a counter of now is below its value in
// before, or a series of before is gone.
func wantNoCounterDown(t *testing.T, step string, before, now map[string]float64) {
	t.Helper()
	for series, v := range before {
		got, ok := now[series]
		if !ok {
			t.Errorf("%s: counter %s disappeared (was %v)", step, series, v)
		} else if got < v {
			t.Errorf("%s: counter %s went down from %v to %v", step, series, v, got)
		}
	}
}

func TestStaleServeCountersNeverGoDownAcrossReloadOrCrash(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))

	m, _ := h.scrape()
	last := counterSamples(m)
	lastStatus := uint64(0)
	served := 0
	check := func(step string) {
		t.Helper()
		m, _ := h.scrape()
		now := counterSamples(m)
		wantNoCounterDown(t, step, last, now)
		last = now
		n := h.status()["stale_serves"].(uint64)
		if n < lastStatus {
			t.Errorf("%s: status stale_serves went down from %d to %d", step, lastStatus, n)
		}
		if n > uint64(served) {
			t.Errorf("%s: status stale_serves %d, but only %d reads were served stale", step, n, served)
		}
		lastStatus = n
	}
	readStale := func(step string) {
		t.Helper()
		if resp := h.readToken(); len(resp.Warnings) == 0 {
			t.Fatalf("%s: a read during the outage got no warning", step)
		}
		served++
		h.b.tokens.background.Wait()
		check(step)
	}

	for i := 0; i < 3; i++ {
		readStale("stale read before any tick")
	}
	h.restart() // a crash: nothing was told to store anything
	check("after a crash before the counts were stored")
	readStale("stale read after the crash")
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	check("after a tick")
	stored := lastStatus
	if stored == 0 {
		t.Fatal("a periodic tick stored no stale serve")
	}
	h.b.Clean(t.Context()) // a plugin reload
	h.restart()
	check("after a reload")
	if lastStatus != stored {
		t.Fatalf("stale_serves %d after a reload, %d before", lastStatus, stored)
	}
	readStale("stale read after the reload")
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	check("after the second tick")
	if lastStatus != stored+1 {
		t.Fatalf("stale_serves %d after one more stale read and a tick, want %d", lastStatus, stored+1)
	}
}

// The status field served_until, and the advice quoting it, must be the
// last instant a read is still answered: one second later reads fail.
func TestStatusServedUntilIsTheLastInstantAReadIsServed(t *testing.T) {
	scenarios := []struct {
		name string
		ttl  string
		fail func(h *harness)
	}{
		{"wrong new client secret pending", "5m", func(h *harness) {
			h.writeConfig(map[string]interface{}{"client_secret": "mistyped-secret"})
		}},
		// With 1h tokens the refresh window (the last 6 minutes) opens just
		// after a 5m lease stops fitting; a 1m ttl leaves the outage a few
		// minutes of stale serving to get wrong.
		{"WeTix answers 503", "1m", func(h *harness) {
			h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t)
			h.configure(map[string]interface{}{"ttl": sc.ttl})
			old := h.readToken().Data["access_token"]
			expires := h.stored().AccessExpiresAt
			sc.fail(h)
			raw, until := h.statusServedUntil()
			if !until.Before(expires) {
				t.Fatalf("served_until %s is not before the token's expiry %s", raw, expires.Format(time.RFC3339))
			}
			// Reads every minute through the failure, as consumers make them.
			for !h.clock.Now().Add(time.Minute).After(until) {
				h.readToken()
				h.b.tokens.background.Wait()
				h.clock.Advance(time.Minute)
			}
			h.clock.Advance(until.Sub(h.clock.Now()))
			if advice := h.status()["advice"].(string); !strings.Contains(advice, "served until "+raw) {
				t.Fatalf("at served_until the advice does not say the token is served until %s: %q", raw, advice)
			}
			resp := h.readToken()
			if resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
				t.Fatalf("at served_until (%s) the read did not get the current token with a warning", raw)
			}
			h.b.tokens.background.Wait()

			h.clock.Advance(time.Second)
			r, err := h.request(logical.ReadOperation, "token", nil)
			if errText(r, err) == "" {
				t.Fatalf("one second past served_until (%s) the read was still served", raw)
			}
			h.b.tokens.background.Wait()
			st := h.status()
			advice := st["advice"].(string)
			if strings.Contains(advice, "still served") || !strings.Contains(advice, "no longer served") {
				t.Fatalf("past served_until, with reads failing (%q), the advice says %q", errText(r, err), advice)
			}
			if st["served_until"] != raw {
				t.Fatalf("served_until moved from %s to %v without a new token", raw, st["served_until"])
			}
			// Later, still before expiry (5m before it with the default
			// ttl): still failing, and still said so.
			h.clock.Advance(expires.Sub(h.clock.Now()) / 2)
			r, err = h.request(logical.ReadOperation, "token", nil)
			if errText(r, err) == "" {
				t.Fatalf("at %s, past served_until %s, the read was served", h.clock.Now().Format(time.RFC3339), raw)
			}
			h.b.tokens.background.Wait()
			if advice := h.status()["advice"].(string); !strings.Contains(advice, "no longer served") {
				t.Fatalf("before expiry, with reads failing, the advice says %q", advice)
			}
		})
	}
}

// wetix_refreshes_total counts since the config was written after the last
// delete: its HELP says so, and a delete and re-create starts it again.
func TestRefreshCountersSayWhatTheyCountSince(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.makeDue()
	h.readToken()
	m, _ := h.scrape()
	if got := m.MustValue(t, "wetix_refreshes_total", mount("grant", "refresh_token")...); got != 1 {
		t.Fatalf("refreshes_total{grant=refresh_token} = %v, want 1", got)
	}
	for _, name := range []string{"wetix_refreshes_total", "wetix_refresh_failures_total"} {
		if help := m[name].GetHelp(); !strings.Contains(help, "since the config was created") || !strings.Contains(help, "config delete resets") {
			t.Fatalf("%s HELP does not say what it counts since: %q", name, help)
		}
	}
	if resp, err := h.request(logical.DeleteOperation, "config", nil); errText(resp, err) != "" {
		t.Fatal(errText(resp, err))
	}
	h.configure(nil)
	h.readToken()
	m, _ = h.scrape()
	if got := m.MustValue(t, "wetix_refreshes_total", mount("grant", "refresh_token")...); got != 0 {
		t.Fatalf("after a config delete and re-create refreshes_total{grant=refresh_token} = %v; the HELP says it resets", got)
	}
	if got := m.MustValue(t, "wetix_refreshes_total", mount("grant", "client_credentials")...); got != 1 {
		t.Fatalf("after a config delete and re-create refreshes_total{grant=client_credentials} = %v, want 1", got)
	}
}

// A stale serve is counted under the reason the read was given, in status
// and in the metrics, and the total is their sum.
func TestStaleServesAreCountedByReason(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()

	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readToken()
	h.readToken()
	h.b.tokens.background.Wait()
	h.wetix.ClearFaults()

	h.writeConfig(map[string]interface{}{"client_secret": "mistyped-secret"})
	h.readToken()
	h.b.tokens.background.Wait()
	h.writeConfig(map[string]interface{}{"client_secret": "s3cret-client-secret-value"})
	h.b.tokens.background.Wait()

	h.makeDue()
	h.storage.failPuts.Store(true)
	for i := 0; i < 3; i++ {
		if resp := h.readToken(); len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "storage") {
			t.Fatalf("read with storage failing: warnings %v", resp.Warnings)
		}
		h.b.tokens.background.Wait()
	}
	h.storage.failPuts.Store(false)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}

	want := map[string]uint64{staleWeTixFailed: 2, staleSecretPending: 1, staleStorageFailed: 3}
	st := h.status()
	byReason, _ := st["stale_serves_by_reason"].(map[string]uint64)
	m, _ := h.scrape()
	var total uint64
	for reason, n := range want {
		if byReason[reason] != n {
			t.Errorf("status stale_serves_by_reason[%s] = %d, want %d (all: %v)", reason, byReason[reason], n, byReason)
		}
		if got := m.MustValue(t, "wetix_stale_serves_by_reason_total", mount("reason", reason)...); got != float64(n) {
			t.Errorf("wetix_stale_serves_by_reason_total{reason=%s} = %v, want %d", reason, got, n)
		}
		total += n
	}
	if st["stale_serves"] != total {
		t.Errorf("status stale_serves = %v, want the sum %d", st["stale_serves"], total)
	}
	if got := m.MustValue(t, "wetix_stale_serves_total", mount()...); got != float64(total) {
		t.Errorf("wetix_stale_serves_total = %v, want %d", got, total)
	}
}

// A config delete resets the stale-serve counts (the HELP says they count
// while the config exists), so serves counted in memory under the deleted
// config must not reach the one written after it.
func TestStaleServesOfADeletedConfigDoNotReachTheNextConfig(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	for i := 0; i < 3; i++ {
		if resp := h.readToken(); len(resp.Warnings) == 0 {
			t.Fatal("a read during the outage got no warning")
		}
		h.b.tokens.background.Wait()
	}
	if !h.b.tokens.unsavedStale.any() {
		t.Fatal("the scenario needs stale serves still unstored before the delete")
	}
	if resp, err := h.request(logical.DeleteOperation, "config", nil); errText(resp, err) != "" {
		t.Fatal(errText(resp, err))
	}
	h.wetix.ClearFaults()
	if err := h.tick(); err != nil { // no config: nothing to store them in
		t.Fatal(err)
	}
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.readToken()
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	if n := h.status()["stale_serves"]; n != uint64(0) {
		t.Fatalf("after a config delete and re-create, status stale_serves = %v: the deleted config's serves were carried over", n)
	}
	m, _ := h.scrape()
	if got := m.MustValue(t, "wetix_stale_serves_total", mount()...); got != 0 {
		t.Fatalf("after a config delete and re-create, wetix_stale_serves_total = %v", got)
	}
}

// A renewal is granted exactly while a read would hand out the same token:
// at served_until, not one second after it.
func TestRenewalIsGrantedUntilServedUntilAndNotAfter(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "5m"})
	lease, _ := h.issuedLease()
	h.writeConfig(map[string]interface{}{"client_secret": "mistyped-secret"})
	h.b.tokens.background.Wait()
	raw, until := h.statusServedUntil()
	h.clock.Advance(until.Sub(h.clock.Now()))
	if resp, err := h.renew(lease, 0, nil); errText(resp, err) != "" {
		t.Fatalf("renewal at served_until %s refused: %s", raw, errText(resp, err))
	}
	h.clock.Advance(time.Second)
	if resp, err := h.renew(lease, 0, nil); errText(resp, err) == "" {
		t.Fatalf("renewal one second past served_until %s granted", raw)
	}
}

// served_until follows the last failure's kind: after a refusal it is the
// instant before the token is due (a due token is not served through a
// refusal); once a transient failure follows, it is back to expiry less
// margin and ttl, and reads are served through the outage until then.
func TestServedUntilFollowsTheLastFailureKind(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	tok := h.readToken().Data["access_token"]
	h.clock.Advance(10 * time.Minute)
	cfg, _ := h.b.configFor(context.Background(), h.storage)

	h.wetix.Fault(wetixtest.FaultInvalidClient())
	_, _ = h.request(logical.UpdateOperation, "rotate", nil)
	h.b.tokens.background.Wait()
	st := h.stored()
	_, afterRefusal := h.statusServedUntil()
	if want := dueAt(st, cfg).Add(-time.Nanosecond).Truncate(time.Second); !afterRefusal.Equal(want) {
		t.Fatalf("after invalid_client, served_until %s, want the instant before due %s", afterRefusal, want)
	}

	h.wetix.ClearFaults()
	h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
	_, _ = h.request(logical.UpdateOperation, "rotate", nil)
	h.b.tokens.background.Wait()
	_, afterOutage := h.statusServedUntil()
	if want := fullLeaseUntil(h.stored(), cfg).Truncate(time.Second); !afterOutage.Equal(want) {
		t.Fatalf("after a 503, served_until %s, want expiry less margin and ttl %s", afterOutage, want)
	}
	if !afterOutage.After(afterRefusal) {
		t.Fatalf("the outage's served_until %s is not later than the refusal's %s", afterOutage, afterRefusal)
	}
	h.clock.Advance(afterOutage.Sub(h.clock.Now()))
	if r, err := h.request(logical.ReadOperation, "token", nil); errText(r, err) != "" || r.Data["access_token"] != tok {
		t.Errorf("at served_until %s through a 503 the read was not served the token: %s", afterOutage, errText(r, err))
	}
	h.b.tokens.background.Wait()
}

// verify=true refusing a create changes nothing, not even the tokens entry
// a half-failed delete left behind (it is removed only once the create goes
// ahead).
func TestAVerifyRefusalOnCreateLeavesTheLeftoverTokensEntry(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.halfFailedConfigDelete(false)
	r, err := h.request(logical.CreateOperation, "config", map[string]interface{}{
		"client_id": "test-client-id", "client_secret": "a-wrong-secret", "base_url": h.wetix.URL(), "verify": true,
	})
	if msg := errText(r, err); !strings.Contains(msg, "Nothing was changed") {
		t.Fatalf("verify=true with a wrong secret: %q", msg)
	}
	if e, _ := h.storage.Storage.Get(context.Background(), tokensStoragePath); e == nil {
		t.Error("a refused verify removed the leftover tokens entry: it said nothing was changed")
	}
}
