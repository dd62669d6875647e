package wetix

// Issue 19's third review: a fresh-context reviewer's attacks on 0109906. The
// stale-save and pending-flush tests failed before the fix that followed it;
// the rest guard what held.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

func r19cRead(t *testing.T, h *harness, b *backend) (*logical.Response, error) {
	t.Helper()
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token", Storage: h.storage})
	b.tokens.background.Wait()
	return resp, err
}

// Attack 1: an old active node (config and tokens cached, one serve unsaved)
// saves its stale serves after another node deleted the config. The delete
// took the tokens entry; the save must not bring back the deleted config's
// tokens.
func TestAStaleSaveAfterAnotherWriterDeletedTheConfigWritesNoTokens(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	old := h.b
	if r, err := r19cRead(t, h, old); errText(r, err) != "" || len(r.Warnings) == 0 {
		t.Fatalf("scenario: want a stale serve: %v %v", r, err)
	}
	newer := newTestBackend(t, h.clock, h.logs, logical.TestSystemView(), h.storage)
	if r, err := newer.HandleRequest(context.Background(), &logical.Request{Operation: logical.DeleteOperation, Path: "config", Storage: h.storage}); errText(r, err) != "" {
		t.Fatalf("delete on the newer node: %v", errText(r, err))
	}
	if e, _ := h.storage.Storage.Get(context.Background(), tokensStoragePath); e != nil {
		t.Fatal("scenario: tokens entry still there after the delete")
	}
	// The save alone (the tick's refresh would also write, from the cache).
	if err := old.tokens.storeStaleServes(context.Background(), h.storage); err != nil {
		t.Fatal(err)
	}
	e, _ := h.storage.Storage.Get(context.Background(), tokensStoragePath)
	if e != nil {
		st := h.stored()
		t.Errorf("after another node deleted the config, the old node's stale save wrote the tokens entry back: access_token=%v refresh_token=%v generation=%q stale_serves=%d",
			st.AccessToken != "", st.RefreshToken != "", st.Generation, st.Stats.StaleServes)
	}
}

// Attack 1: another node retired the tokens (a new client_id: a new
// generation). The old node's save must not put its older generation's
// tokens back under the new config.
func TestAStaleSaveAfterAnotherWriterRetiredTheGenerationWritesNoOldTokens(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	old := h.b
	if r, err := r19cRead(t, h, old); errText(r, err) != "" || len(r.Warnings) == 0 {
		t.Fatalf("scenario: want a stale serve: %v %v", r, err)
	}
	oldGen := h.stored().Generation
	newer := newTestBackend(t, h.clock, h.logs, logical.TestSystemView(), h.storage)
	if r, err := newer.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "config", Storage: h.storage,
		Data: map[string]interface{}{"client_id": "client-2"}}); errText(r, err) != "" {
		t.Fatalf("config change on the newer node: %v", errText(r, err))
	}
	cfg, err := readConfig(context.Background(), h.storage.Storage)
	if err != nil || cfg == nil || cfg.Generation == oldGen {
		t.Fatalf("scenario: want a new generation: %v %v", cfg, err)
	}
	if st := h.stored(); st.Generation != cfg.Generation || st.AccessToken != "" {
		t.Fatalf("scenario: want the entry retired, got gen %q token %v", st.Generation, st.AccessToken != "")
	}
	if err := old.tokens.storeStaleServes(context.Background(), h.storage); err != nil {
		t.Fatal(err)
	}
	st := h.stored()
	if st.Generation != cfg.Generation || st.AccessToken != "" || st.RefreshToken != "" {
		t.Errorf("after another node retired generation %q for %q, the old node's stale save stored generation %q with access_token=%v refresh_token=%v (the old client's tokens)",
			oldGen, cfg.Generation, st.Generation, st.AccessToken != "", st.RefreshToken != "")
	}
}

// Attack 1: the save raises each counter to storage's separately, the total
// and each reason apart. When the cached copy and storage diverged (another
// writer stored serves of another reason from an older base), the reasons
// must still sum to the total.
func TestAStaleSaveKeepsTheReasonsSummingToTheTotal(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.readToken()
	ctx := context.Background()
	cached := h.b.tokens.cache.get().clone()
	cached.Stats.StaleServes = 2
	cached.Stats.StaleServesByReason = map[string]uint64{staleWeTixFailed: 2}
	h.b.tokens.cache.set(cached)
	stored := cached.clone()
	stored.Stats.StaleServes = 3
	stored.Stats.StaleServesByReason = map[string]uint64{staleWeTixFailed: 1, staleStorageFailed: 2}
	if err := writeTokenState(ctx, h.storage.Storage, stored); err != nil {
		t.Fatal(err)
	}
	h.b.tokens.noteStaleServe(staleWeTixFailed, h.b.tokens.unsavedStale.epoch())
	if err := h.b.tokens.storeStaleServes(ctx, h.storage); err != nil {
		t.Fatal(err)
	}
	got := h.stored().Stats
	var sum uint64
	for _, n := range got.StaleServesByReason {
		sum += n
	}
	if sum != got.StaleServes {
		t.Errorf("after the save, stale_serves=%d but stale_serves_by_reason %v sums to %d", got.StaleServes, got.StaleServesByReason, sum)
	}
}

// Attack 3: with the pair pending and storage still failing, the second
// read is served the current token: valid at WeTix, warned, counted as
// storage_failed once storage is back, and served up to status's
// served_until and not after it.
func TestAStorageOutageWithAPendingPairServesCountsAndWarns(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	access, _ := h.makeDue()
	var puts atomic.Int32
	failing := func(op, key string) error {
		if op == "put" && key == tokensStoragePath && puts.Add(1) >= 2 {
			return errStorageDown
		}
		return nil
	}
	h.storage.setHook(failing)
	if resp := h.readToken(); len(resp.Warnings) == 0 {
		t.Fatal("scenario: want a storage_failed stale serve")
	}
	h.b.tokens.background.Wait()
	if !h.b.tokens.hasPending.Load() {
		t.Fatal("scenario: want the new pair pending")
	}
	raw, until := h.statusServedUntil()
	m, _ := h.scrape()
	gauge := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...)
	if want := until.Sub(h.clock.Now()).Truncate(time.Second).Seconds(); gauge != want {
		t.Errorf("served gauge %v, want %v (served_until %s)", gauge, want, raw)
	}
	h.clock.Advance(time.Second)
	r, err := h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	if msg := errText(r, err); msg != "" {
		t.Fatalf("second read failed: %s", msg)
	}
	if tok, _ := r.Data["access_token"].(string); tok != access || !h.wetix.IsAccessTokenValid(tok) {
		t.Errorf("second read served %q (current %q), valid at WeTix %v", tok, access, h.wetix.IsAccessTokenValid(tok))
	}
	if len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "storage") {
		t.Errorf("second read warnings %v, want the storage warning", r.Warnings)
	}
	// At served_until (storage still failing): served; a second later: not.
	h.clock.Advance(until.Sub(h.clock.Now()))
	r, err = h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	if msg := errText(r, err); msg != "" {
		t.Errorf("read at served_until %s failed: %s", raw, msg)
	}
	h.clock.Advance(time.Second)
	r, err = h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	if errText(r, err) == "" {
		t.Errorf("read a second after served_until %s served %v", raw, r.Data["access_token"] == access)
	}
	h.storage.setHook(nil)
	_ = h.tick()
	if h.b.tokens.hasPending.Load() {
		t.Fatal("pending pair not flushed after storage recovered")
	}
	by, _ := h.status()["stale_serves_by_reason"].(map[string]uint64)
	if by == nil {
		by2, _ := h.status()["stale_serves_by_reason"].(map[string]interface{})
		t.Logf("by_reason %T %v", h.status()["stale_serves_by_reason"], by2)
	}
	if by[staleStorageFailed] != 3 {
		t.Errorf("stale_serves_by_reason %v after 3 storage_failed serves, want storage_failed=3", h.status()["stale_serves_by_reason"])
	}
}

// r19cRefuser fails every grant with err while on is set.
type r19cRefuser struct {
	grantClient
	on  *atomic.Bool
	err error
}

func (c r19cRefuser) ClientCredentials(ctx context.Context) (*client.Pair, error) {
	if c.on.Load() {
		return nil, c.err
	}
	return c.grantClient.ClientCredentials(ctx)
}

func (c r19cRefuser) Refresh(ctx context.Context, rt string) (*client.Pair, error) {
	if c.on.Load() {
		return nil, c.err
	}
	return c.grantClient.Refresh(ctx, rt)
}

func r19cRotate(h *harness) {
	_, _ = h.request(logical.UpdateOperation, "rotate", nil)
	h.b.tokens.background.Wait()
}

type r19cRefusal struct {
	name  string
	opts  []harnessOption
	setup func(t *testing.T, h *harness)
}

// Attack 4: after each failure sequence, reads are served up to status's
// served_until and not a second after it; the served gauge says the same;
// the advice does not contradict it.
func TestServedUntilAfterEachKindOfRefusalMatchesTheReads(t *testing.T) {
	cases := []r19cRefusal{
		{name: "invalid_client", setup: func(t *testing.T, h *harness) {
			h.wetix.Fault(wetixtest.FaultInvalidClient())
			r19cRotate(h)
		}},
		{name: "403", setup: func(t *testing.T, h *harness) {
			h.wetix.Fault(wetixtest.FaultStatus(403, `{"error":"access_denied"}`))
			r19cRotate(h)
		}},
		{name: "untrusted", setup: func(t *testing.T, h *harness) {
			on := &atomic.Bool{}
			orig := h.b.tokens.newClient
			h.b.tokens.newClient = func(cfg *wetixConfig) grantClient {
				return r19cRefuser{orig(cfg), on, &client.Error{Grant: client.GrantClientCredentials, Kind: client.KindUntrusted, Message: "x509: certificate signed by unknown authority"}}
			}
			on.Store(true)
			r19cRotate(h)
		}},
		{name: "other-kind", setup: func(t *testing.T, h *harness) {
			on := &atomic.Bool{}
			orig := h.b.tokens.newClient
			h.b.tokens.newClient = func(cfg *wetixConfig) grantClient {
				return r19cRefuser{orig(cfg), on, errStorageDown /* not a client.Error: kind "other" */}
			}
			on.Store(true)
			r19cRotate(h)
		}},
		{name: "refresh-rejected-then-cc-success", setup: func(t *testing.T, h *harness) {
			h.wetix.Fault(wetixtest.FaultInvalidGrant().For(wetixtest.GrantRefresh))
			r19cRotate(h)
			h.wetix.ClearFaults()
			h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
		}},
		{name: "refusal-then-transient", setup: func(t *testing.T, h *harness) {
			h.wetix.Fault(wetixtest.FaultStatus(403, `{"error":"access_denied"}`).Limit(1))
			r19cRotate(h)
			h.clock.Advance(time.Minute)
			h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
			r19cRotate(h)
		}},
		{name: "refusal-refresh-token-due-early", opts: []harnessOption{withAccessTTL(24 * time.Hour), func(o *wetixtest.Options) { o.RefreshTTL = 3 * time.Hour }}, setup: func(t *testing.T, h *harness) {
			h.wetix.Fault(wetixtest.FaultStatus(403, `{"error":"access_denied"}`))
			r19cRotate(h)
		}},
		// Not here: a refusal at the very instant of the last refresh
		// (status cannot tell which came last; only a frozen clock makes it).
		{name: "secret-pending-invalid_client", setup: func(t *testing.T, h *harness) {
			h.writeConfig(map[string]interface{}{"client_secret": "a-new-secret-wetix-rejects-000"})
			h.b.tokens.background.Wait()
			r19cRotate(h)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.opts...)
			h.configure(map[string]interface{}{"ttl": "1m"})
			h.readToken()
			h.clock.Advance(10 * time.Minute)
			c.setup(t, h)
			s := h.status()
			raw, until := h.statusServedUntil()
			t.Logf("kind %v last_error_at %v served_until %s now %s", s["last_error_kind"], s["last_error_at"], raw, h.clock.Now().Format(time.RFC3339))
			m, _ := h.scrape()
			if g, want := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...), until.Sub(h.clock.Now()).Seconds(); g != want {
				t.Errorf("served gauge %v, status served_until %s is %vs away", g, raw, want)
			}
			read := func() (*logical.Response, error) {
				r, err := h.request(logical.ReadOperation, "token", nil)
				h.b.tokens.background.Wait()
				return r, err
			}
			if until.Before(h.clock.Now()) {
				if r, err := read(); errText(r, err) == "" {
					t.Errorf("served_until %s already passed, but a read was served", raw)
				}
				return
			}
			h.clock.Advance(until.Sub(h.clock.Now()))
			if r, err := read(); errText(r, err) != "" {
				t.Errorf("read at served_until %s failed: %s", raw, errText(r, err))
			}
			m, _ = h.scrape()
			if g := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...); g != 0 {
				t.Errorf("gauge at served_until %v, want 0", g)
			}
			adv, _ := h.status()["advice"].(string)
			if strings.Contains(adv, "no longer served") {
				t.Errorf("advice at served_until %s: %q", raw, adv)
			}
			h.clock.Advance(time.Second)
			r, err := read()
			if errText(r, err) == "" {
				t.Errorf("read 1s past served_until %s was served (warnings %v)", raw, r.Warnings)
			}
			s = h.status()
			adv, _ = s["advice"].(string)
			if strings.Contains(adv, "still served until") || strings.Contains(adv, "is served while it is not due") {
				t.Errorf("advice 1s past served_until %s (status served_until now %v): %q", raw, s["served_until"], adv)
			}
		})
	}
}

// Attack 2: a pending pair with no cached copy (Invalidate) and a storage
// read that fails once: the flush waits, the next read stores the pair with
// the stored counts kept, and is served the new token.
func TestAPendingFlushWhoseCountReadFailsKeepsTheCounts(t *testing.T) {
	h := newHarness(t)
	rec := h.pendingPairAfterAFailedWrite()
	if err := h.b.tokens.storeStaleServes(context.Background(), h.storage); err != nil {
		t.Fatal(err)
	}
	pendingTok := h.b.tokens.pending.AccessToken
	h.b.tokens.invalidate()
	var gets atomic.Int32
	h.storage.setHook(func(op, key string) error {
		if op == "get" && key == tokensStoragePath && gets.Add(1) == 1 {
			return errStorageDown
		}
		return nil
	})
	r1, err1 := h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	r2, err2 := h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	h.storage.setHook(nil)
	t.Logf("first read: %q; second: %q", errText(r1, err1), errText(r2, err2))
	if h.b.tokens.hasPending.Load() {
		t.Errorf("pending pair still pending after storage recovered")
	}
	if errText(r2, err2) != "" || r2.Data["access_token"] != pendingTok {
		t.Errorf("second read: %q, served the pending pair's token %v", errText(r2, err2), r2 != nil && r2.Data["access_token"] == pendingTok)
	}
	wantStoredStaleServesNonDecreasing(t, rec.writes())
	if st := h.stored(); st.AccessToken != pendingTok {
		t.Errorf("stored access token is not the pending pair's")
	}
}

// Attack 2: the same with the tokens entry unreadable for a while (writes
// work): does every read fail although a valid new pair waits in memory?
func TestAPendingPairIsStoredAndServedWhileTheTokensEntryIsUnreadable(t *testing.T) {
	h := newHarness(t)
	h.pendingPairAfterAFailedWrite()
	pendingTok := h.b.tokens.pending.AccessToken
	h.b.tokens.invalidate()
	h.storage.setHook(func(op, key string) error {
		if op == "get" && key == tokensStoragePath {
			return errStorageDown
		}
		return nil
	})
	var failed int
	for i := 0; i < 3; i++ {
		h.clock.Advance(time.Second)
		r, err := h.request(logical.ReadOperation, "token", nil)
		h.b.tokens.background.Wait()
		if errText(r, err) != "" {
			failed++
		}
	}
	_ = h.tick()
	h.storage.setHook(nil)
	if failed > 0 {
		t.Errorf("%d of 3 reads failed while only reads of the tokens entry failed (writes worked) and a valid pair (%v) waited in memory to be stored",
			failed, h.wetix.IsAccessTokenValid(pendingTok))
	}
}

// Attack 5: a verify=true create after a half-failed delete that WeTix
// refuses changes nothing: the leftover entry stays byte for byte, no config
// appears, and the in-memory state (unsaved serves, failure) is untouched.
func TestAVerifyRefusedCreateAfterAHalfFailedDeleteChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.halfFailedConfigDelete(false)
	before, _ := h.storage.Storage.Get(context.Background(), tokensStoragePath)
	if before == nil {
		t.Fatal("scenario: want the leftover tokens entry")
	}
	puts := h.storage.puts.Load()
	var deletes atomic.Int32
	h.storage.setHook(func(op, key string) error {
		if op == "delete" {
			deletes.Add(1)
		}
		return nil
	})
	r, err := h.request(logical.CreateOperation, "config", map[string]interface{}{
		"client_id": "client-1", "client_secret": "wrong-secret-wetix-rejects-0000", "base_url": h.wetix.URL(), "verify": true,
	})
	h.storage.setHook(nil)
	if msg := errText(r, err); !strings.Contains(msg, "Nothing was changed") {
		t.Fatalf("verify refusal: %q", msg)
	}
	after, _ := h.storage.Storage.Get(context.Background(), tokensStoragePath)
	if after == nil || string(after.Value) != string(before.Value) {
		t.Errorf("the refused create changed the leftover tokens entry (present %v)", after != nil)
	}
	if e, _ := h.storage.Storage.Get(context.Background(), configStoragePath); e != nil {
		t.Error("the refused create wrote a config")
	}
	if n := h.storage.puts.Load() - puts; n != 0 || deletes.Load() != 0 {
		t.Errorf("the refused create did %d puts and %d deletes", n, deletes.Load())
	}
}
