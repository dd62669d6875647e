package wetix

// Issue 19's second review: a fresh-context reviewer's attacks on the first
// review's fixes. Four failed before the fixes named in their comments; the
// rest guard what held.

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

// Attack 1 + 2: flushPendingLocked raises the pending pair's counts to the
// cached entry only. When storeStaleServes dropped the cache before reading
// storage and that read failed, the next flush stored the pending pair with
// the counts it was built from, under the stale serves stored meanwhile
// (3 → 1). Now the save keeps the cache, and a flush with no cached copy
// reads storage's counts first (or does not write).
func TestAPendingFlushWithNoCachedCopyKeepsTheStoredCounts(t *testing.T) {
	h := newHarness(t)
	rec := h.pendingPairAfterAFailedWrite()
	// Two more readers of that same failing flight, counted a moment later.
	ep := h.b.tokens.unsavedStale.epoch()
	h.b.tokens.noteStaleServe(staleStorageFailed, ep)
	h.b.tokens.noteStaleServe(staleStorageFailed, ep)
	// The periodic save stores the 3 serves (the pending pair stays pending).
	if err := h.b.tokens.storeStaleServes(context.Background(), h.storage); err != nil {
		t.Fatal(err)
	}
	if h.stored().Stats.StaleServes != 3 {
		t.Fatalf("scenario: stored stale_serves %d, want 3", h.stored().Stats.StaleServes)
	}
	// One more serve (a reader of the flight counted later still).
	h.b.tokens.noteStaleServe(staleStorageFailed, ep)
	// The next tick: its stale save's storage read fails once.
	var gets atomic.Int32
	h.storage.setHook(func(op, key string) error {
		if op == "get" && key == tokensStoragePath && gets.Add(1) == 1 {
			return errStorageDown
		}
		return nil
	})
	_ = h.tick()
	h.storage.setHook(nil)
	if h.b.tokens.hasPending.Load() {
		t.Fatal("scenario: want the pending pair flushed by the tick")
	}
	wantStoredStaleServesNonDecreasing(t, rec.writes())
	if n := h.stored().Stats.StaleServes; n != 4 {
		t.Errorf("stored stale_serves = %d after 4 serves, want 4 (writes stored %v)", n, rec.writes())
	}
}

// Attack 5 (failure kind storage): a due token is served through a storage
// failure until served_until. With the new pair pending and the storage
// still failing, the next read failed ("storing the new WeTix tokens
// failed") though status said healthy; now it is served the current token.
func TestAStorageOutageWithAPendingPairServesTheCurrentToken(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	var puts atomic.Int32
	h.storage.setHook(func(op, key string) error {
		// The sent mark lands; every tokens write after it fails.
		if op == "put" && key == tokensStoragePath && puts.Add(1) >= 2 {
			return errStorageDown
		}
		return nil
	})
	if resp := h.readToken(); len(resp.Warnings) == 0 {
		t.Fatal("scenario: want a storage_failed stale serve")
	}
	h.b.tokens.background.Wait()
	if !h.b.tokens.hasPending.Load() {
		t.Fatal("scenario: want the new pair pending")
	}
	st := h.status()
	raw, _ := st["served_until"].(string)
	until, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		t.Fatalf("served_until %q", raw)
	}
	h.clock.Advance(time.Second)
	if !h.clock.Now().Before(until) {
		t.Fatalf("scenario: served_until %s already passed", raw)
	}
	r, err := h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	if msg := errText(r, err); msg != "" {
		t.Errorf("a read 1s after a storage_failed serve, storage still failing, served_until %s (status healthy=%v advice %q), failed: %s", raw, st["healthy"], st["advice"], msg)
	}
}

type servedCase struct {
	name            string
	access, refresh time.Duration
	ttl             string
	static          bool
	newSecret       bool // a client_secret change WeTix rejects is pending
	storage         bool // every storage write fails instead of WeTix
}

func (c servedCase) read(h *harness) (*logical.Response, error) {
	p := "token"
	if c.static {
		p = staticTokenPath
	}
	r, err := h.request(logical.ReadOperation, p, nil)
	h.b.tokens.background.Wait()
	return r, err
}

// Attack 5: under a transient outage (or a pending, rejected secret) a read
// at served_until is served and one a second later is not; the gauge says
// 0 then -1; the advice agrees with served_until.
func TestServedUntilHoldsForEveryLifetimeTTLAndRefreshDue(t *testing.T) {
	cases := []servedCase{
		{name: "1h-ttl1m", access: time.Hour, refresh: 24 * time.Hour, ttl: "1m"},
		{name: "1h-ttl5m", access: time.Hour, refresh: 24 * time.Hour, ttl: "5m"},
		{name: "1h-ttl55m", access: time.Hour, refresh: 24 * time.Hour, ttl: "55m"},
		{name: "1h-ttl50m", access: time.Hour, refresh: 24 * time.Hour, ttl: "50m"},
		{name: "1h-ttl1m-refresh30m", access: time.Hour, refresh: 30 * time.Minute, ttl: "1m"},
		{name: "1h-ttl55m-refresh40m", access: time.Hour, refresh: 40 * time.Minute, ttl: "55m"},
		{name: "1h-ttl55m-refresh2h", access: time.Hour, refresh: 2 * time.Hour, ttl: "55m"},
		{name: "1h-ttl55m-refresh61m", access: time.Hour, refresh: 61 * time.Minute, ttl: "55m"},
		{name: "19s-ttl18s", access: 19 * time.Second, refresh: 24 * time.Hour, ttl: "18s"},
		{name: "10m-ttl30s", access: 10 * time.Minute, refresh: 24 * time.Hour, ttl: "30s"},
		{name: "2m-ttl1m", access: 2 * time.Minute, refresh: 24 * time.Hour, ttl: "1m"},
		{name: "2m-ttl1m-refresh1m", access: 2 * time.Minute, refresh: time.Minute, ttl: "1m"},
		{name: "5s-ttl1s", access: 5 * time.Second, refresh: 24 * time.Hour, ttl: "1s"},
		{name: "1h-ttl1m-secret", access: time.Hour, refresh: 24 * time.Hour, ttl: "1m", newSecret: true},
		{name: "1h-ttl55m-secret", access: time.Hour, refresh: 24 * time.Hour, ttl: "55m", newSecret: true},
	}
	for _, c := range cases[:13] {
		c.name += "-storage"
		c.storage = true
		cases = append(cases, c)
	}
	for _, base := range cases {
		for _, static := range []bool{false, true} {
			c := base
			c.static = static
			name := c.name
			if static {
				name += "-static"
			}
			t.Run(name, func(t *testing.T) { checkServedUntil(t, c) })
		}
	}
}

func checkServedUntil(t *testing.T, c servedCase) {
	h := newHarness(t, withAccessTTL(c.access), func(o *wetixtest.Options) { o.RefreshTTL = c.refresh })
	h.configure(map[string]interface{}{"ttl": c.ttl})
	if r, err := c.read(h); errText(r, err) != "" {
		t.Fatalf("first read: %s", errText(r, err))
	}
	old := h.b.tokens.cache.get().AccessToken
	if c.newSecret {
		h.writeConfig(map[string]interface{}{"client_secret": "a-new-secret-wetix-rejects-000"})
		h.b.tokens.background.Wait()
	} else if c.storage {
		h.storage.failPuts.Store(true)
	} else {
		h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
	}
	cfg, _ := h.b.configFor(context.Background(), h.storage)
	st := h.b.tokens.cache.get()
	if st == nil {
		st, _ = h.b.tokens.current(context.Background(), h.storage, cfg)
	}
	until := servedUntil(st, cfg)
	raw, _ := h.status()["served_until"].(string)
	if raw != until.UTC().Format(time.RFC3339) {
		t.Errorf("status served_until %q, servedUntil %s", raw, until.Format(time.RFC3339Nano))
	}
	if until.Before(h.clock.Now()) {
		// Already past: the next read must fail.
		if r, err := c.read(h); errText(r, err) == "" {
			t.Errorf("served_until %s already passed at %s, but a read was served", until.Format(time.RFC3339Nano), h.clock.Now().Format(time.RFC3339Nano))
		}
		return
	}
	h.clock.Advance(until.Sub(h.clock.Now()))
	m, _ := h.scrape()
	if g := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...); g != 0 {
		t.Errorf("gauge at served_until = %v, want 0", g)
	}
	r, err := c.read(h)
	if errText(r, err) != "" || r.Data["access_token"] != old {
		t.Errorf("read at served_until %s (exp %s) failed: %s", until.Format(time.RFC3339Nano), st.AccessExpiresAt.Format(time.RFC3339Nano), errText(r, err))
	}
	s := h.status()
	adv, _ := s["advice"].(string)
	if strings.Contains(adv, "no longer served") || strings.Contains(adv, "once due, token reads fail") && !strings.Contains(adv, "due at") {
		t.Errorf("advice at served_until: %q", adv)
	}
	if s["served_until"] != raw {
		t.Errorf("served_until moved from %v to %v after the read at it", raw, s["served_until"])
	}
	h.clock.Advance(time.Second)
	m, _ = h.scrape()
	if g := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...); g != -1 {
		t.Errorf("gauge 1s past served_until = %v, want -1", g)
	}
	r, err = c.read(h)
	if errText(r, err) == "" {
		t.Errorf("read 1s past served_until %s was served (same token %v)", raw, r.Data["access_token"] == old)
	}
	adv, _ = h.status()["advice"].(string)
	if strings.Contains(adv, "still served until") {
		t.Errorf("advice 1s past served_until %s: %q", raw, adv)
	}
}

// Attack 3: Clean after a config delete writes nothing (no tokens entry
// comes back), and Clean on a performance standby writes nothing.
func TestCleanAfterADeleteOrOnAStandbyWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readsInTheOutage(1)
	if !h.b.tokens.unsavedStale.any() {
		t.Fatal("scenario: want unsaved serves")
	}
	if r, err := h.request(logical.DeleteOperation, "config", nil); errText(r, err) != "" {
		t.Fatal(errText(r, err))
	}
	// A serve counted just after the delete under the old epoch is dropped;
	// one under the new epoch (no config) cannot happen. Simulate the old.
	h.b.tokens.noteStaleServe(staleWeTixFailed, 0)
	h.b.Clean(context.Background())
	if e, _ := h.storage.Storage.Get(context.Background(), tokensStoragePath); e != nil {
		t.Errorf("Clean after a config delete brought the tokens entry back: %s", e.Value)
	}

	h2 := newHarness(t)
	h2.configure(map[string]interface{}{"ttl": "1m"})
	h2.makeDue()
	sb := h2.onPerformanceStandby()
	before := h2.storage.puts.Load()
	sb.b.tokens.noteStaleServe(staleWeTixFailed, sb.b.tokens.unsavedStale.epoch())
	sb.b.Clean(context.Background())
	if n := h2.storage.puts.Load() - before; n != 0 {
		t.Errorf("Clean on a performance standby wrote %d entries", n)
	}
}

// Attack 3: Clean's save is bounded: a storage that hangs does not hold a
// reload for more than cleanSaveTimeout (the ctx is honoured).
func TestCleanDoesNotBlockOnAHangingStorage(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readsInTheOutage(1)
	h.b.storage = ctxStorage{h.storage}
	done := make(chan struct{})
	go func() { h.b.Clean(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(cleanSaveTimeout + 3*time.Second):
		t.Fatal("Clean blocked past its timeout")
	}
}

// ctxStorage blocks every operation until its ctx ends.
type ctxStorage struct{ logical.Storage }

func (s ctxStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (s ctxStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	<-ctx.Done()
	return ctx.Err()
}

// Attack 4: a create after a half-failed delete whose tokens delete fails
// again writes nothing and says so; a create with no leftover entry and a
// newer tokens entry is refused without deleting it.
func TestACreateAfterAHalfFailedDeleteIsAllOrNothing(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.halfFailedConfigDelete(true)
	defer h.storage.setHook(nil)
	r, err := h.request(logical.CreateOperation, "config", map[string]interface{}{
		"client_id": "client-1", "client_secret": "s3cret-client-secret-value", "base_url": h.wetix.URL(),
	})
	msg := errText(r, err)
	if msg == "" || !strings.Contains(msg, "nothing was written") {
		t.Errorf("create with the leftover delete failing: %q", msg)
	}
	if e, _ := h.storage.Storage.Get(context.Background(), configStoragePath); e != nil {
		t.Errorf("a config was written although the create failed")
	}
}

// Attack 6: the seconds-left gauges round down: a fraction before the
// instant is 0, the instant itself 0, a fraction after -1.
func TestSecondsLeftGaugesRoundDown(t *testing.T) {
	h := newHarness(t, withAccessTTL(10*time.Minute))
	h.configure(map[string]interface{}{"ttl": "30s"})
	h.readToken()
	st := h.b.tokens.cache.get()
	cfg, _ := h.b.configFor(context.Background(), h.storage)
	for _, g := range []struct {
		name string
		at   time.Time
	}{
		{"wetix_access_token_served_remaining_seconds", servedUntil(st, cfg)},
		{"wetix_access_token_remaining_seconds", st.AccessExpiresAt},
		{"wetix_refresh_token_remaining_seconds", st.RefreshExpiresAt},
	} {
		for _, d := range []struct {
			off  time.Duration
			want float64
		}{{-1500 * time.Millisecond, 1}, {-500 * time.Millisecond, 0}, {0, 0}, {time.Nanosecond, -1}, {999 * time.Millisecond, -1}, {time.Second, -1}, {1001 * time.Millisecond, -2}} {
			h.clock.Advance(g.at.Add(d.off).Sub(h.clock.Now()))
			if h.clock.Now() != g.at.Add(d.off) {
				t.Fatalf("clock cannot go back to %s", g.name)
			}
			m, _ := h.scrape()
			if v := m.MustValue(t, g.name, mount()...); v != d.want {
				t.Errorf("%s at %v from its instant = %v, want %v", g.name, d.off, v, d.want)
			}
		}
	}
}

// Attack 5 (failure kinds a due token is not served through): after a
// refusal (403: permanent; invalid_client) status must not put served_until
// later than the last instant a read is served, and advice must not
// contradict it. Before the fix it said 12:57:59 while reads failed from
// 12:54:00 (6 days early for 60-day tokens).
func TestAfterARefusalServedUntilIsTheLastServedRead(t *testing.T) {
	for _, f := range []struct {
		name  string
		fault wetixtest.Fault
	}{
		{"permanent", wetixtest.FaultStatus(403, `{"error":"access_denied"}`)},
		{"invalid_client", wetixtest.FaultInvalidClient()},
	} {
		t.Run(f.name, func(t *testing.T) {
			h := newHarness(t)
			h.configure(map[string]interface{}{"ttl": "1m"})
			h.readToken()
			h.clock.Advance(10 * time.Minute)
			h.wetix.Fault(f.fault)
			_, _ = h.request(logical.UpdateOperation, "rotate", nil) // records the refusal
			h.b.tokens.background.Wait()
			s := h.status()
			raw, _ := s["served_until"].(string)
			until, _ := time.Parse(time.RFC3339, raw)
			adv, _ := s["advice"].(string)
			last := h.clock.Now()
			for h.clock.Now().Before(until.Add(2 * time.Second)) {
				h.clock.Advance(time.Second)
				r, err := h.request(logical.ReadOperation, "token", nil)
				h.b.tokens.background.Wait()
				if errText(r, err) != "" {
					break
				}
				last = h.clock.Now()
			}
			if last.Before(until) {
				m, _ := h.scrape()
				t.Errorf("after a %s refusal, status served_until %s (gauge semantics: served until then if it cannot be replaced), advice %q; but reads failed from %s on (gauge then %v)",
					f.name, raw, adv, last.Add(time.Second).Format(time.RFC3339), m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...))
			}
		})
	}
}

// notSentClient fails every grant as never sent (a refused connection)
// while down is set.
type notSentClient struct {
	grantClient
	down *atomic.Bool
}

func (c notSentClient) ClientCredentials(ctx context.Context) (*client.Pair, error) {
	if c.down.Load() {
		return nil, &client.Error{Grant: client.GrantClientCredentials, Kind: client.KindTransient, Message: "connection refused"}
	}
	return c.grantClient.ClientCredentials(ctx)
}

func (c notSentClient) Refresh(ctx context.Context, rt string) (*client.Pair, error) {
	if c.down.Load() {
		return nil, &client.Error{Grant: client.GrantRefresh, Kind: client.KindTransient, Message: "connection refused"}
	}
	return c.grantClient.Refresh(ctx, rt)
}

// Attack 2: the cached entry can be newer than storage: a refresh token
// that was never sent is unmarked in memory while storage keeps the sent
// mark (the failure's write, which would clear it, failed). When the
// periodic save stored what storage held, the mark stuck and the next
// refresh spent a client-credentials grant for a good refresh token.
func TestTheStaleServeSaveKeepsAnUnsentRefreshTokenUsable(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	var down atomic.Bool
	orig := h.b.tokens.newClient
	h.b.tokens.newClient = func(cfg *wetixConfig) grantClient { return notSentClient{orig(cfg), &down} }
	h.makeDue()
	down.Store(true)
	// Only the failure record (no sent mark in it) fails to be written.
	h.storage.Storage = markFilter{h.storage.Storage}
	if resp := h.readToken(); len(resp.Warnings) == 0 {
		t.Fatal("scenario: want a stale serve")
	}
	h.b.tokens.background.Wait()
	h.storage.Storage = h.storage.Storage.(markFilter).Storage
	if !h.stored().RefreshSent || h.b.tokens.cache.get().RefreshSent {
		t.Fatalf("scenario: want storage marked (%v) and memory unmarked (%v)", h.stored().RefreshSent, h.b.tokens.cache.get().RefreshSent)
	}
	down.Store(false)
	h.wetix.ResetCounts()
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	cc, rf := h.calls()
	if rf != 1 || cc != 0 {
		t.Errorf("after a never-sent refresh token and a tick: client_credentials=%d refresh=%d, want 0 and 1 (the refresh token was never sent); stored refresh_token kept=%v", cc, rf, h.stored().RefreshToken != "")
	}
}

// markFilter fails tokens writes that carry no sent mark.
type markFilter struct{ logical.Storage }

func (s markFilter) Put(ctx context.Context, e *logical.StorageEntry) error {
	if e.Key == tokensStoragePath && !strings.Contains(string(e.Value), `"refresh_sent":true`) {
		return errStorageDown
	}
	return s.Storage.Put(ctx, e)
}
