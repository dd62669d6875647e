package wetix

// Issue 19's review ("status and metrics that tell the truth"): attacks on
// the stale-serve counters and the served_until rule by a fresh-context
// reviewer. Each failed against the code before the fix named in its
// comment, or guards a case that held.

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// staleWriteRecorder records the stale_serves value of every tokens-entry write
// that lands; lostAck makes the next tokens write land and still fail.
type staleWriteRecorder struct {
	logical.Storage
	mu      sync.Mutex
	stale   []uint64
	lostAck atomic.Bool
}

func (s *staleWriteRecorder) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := s.Storage.Put(ctx, e); err != nil {
		return err
	}
	if e.Key == tokensStoragePath {
		var st tokenState
		_ = json.Unmarshal(e.Value, &st)
		s.mu.Lock()
		s.stale = append(s.stale, st.Stats.StaleServes)
		s.mu.Unlock()
		if s.lostAck.CompareAndSwap(true, false) {
			return errStorageDown
		}
	}
	return nil
}

// recordTokensWrites puts a staleWriteRecorder under the harness's storage.
func (h *harness) recordTokensWrites() *staleWriteRecorder {
	rec := &staleWriteRecorder{Storage: h.storage.Storage}
	h.storage.Storage = rec
	return rec
}

func (s *staleWriteRecorder) writes() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.stale...)
}

func wantStoredStaleServesNonDecreasing(t *testing.T, seq []uint64) {
	t.Helper()
	for i := 1; i < len(seq); i++ {
		if seq[i] < seq[i-1] {
			t.Errorf("stored stale_serves went down: writes of the tokens entry stored %v", seq)
			return
		}
	}
}

// A refresh whose final write fails keeps the new pair in memory (pending),
// built from the stats it loaded. The next tick first stores the stale
// serve counted meanwhile, then flushes the pending pair, whose stats
// predate that serve: before the fix the stored count went back (now the
// flush raises each count to the stored one).
func TestAPendingPairStoredLaterKeepsTheStaleServesStoredMeanwhile(t *testing.T) {
	h := newHarness(t)
	rec := h.pendingPairAfterAFailedWrite()
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	wantStoredStaleServesNonDecreasing(t, rec.writes())
	st := h.status()
	if st["stale_serves"] != uint64(1) {
		t.Errorf("after one stale serve and a tick, status stale_serves = %v, want 1 (writes stored %v)", st["stale_serves"], rec.writes())
	}
}

// A periodic save whose write lands but reports an error (a lost ack) gives
// the counts back and stores them again: one serve counted twice.
func TestAPeriodicSaveWhoseAckIsLostCountsEachServeOnce(t *testing.T) {
	h := newHarness(t)
	rec := h.recordTokensWrites()
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	const served = 3
	for i := 0; i < served; i++ {
		if resp := h.readToken(); len(resp.Warnings) == 0 {
			t.Fatal("a read during the outage got no warning")
		}
		h.b.tokens.background.Wait()
	}
	if !h.b.tokens.unsavedStale.any() {
		t.Fatal("scenario: want unstored serves before the tick")
	}
	rec.lostAck.Store(true)
	_ = h.tick()
	_ = h.tick()
	if n := h.status()["stale_serves"]; n != uint64(served) {
		t.Errorf("status stale_serves = %v after %d stale reads (tokens writes stored %v)", n, served, rec.writes())
	}
}

// Two writable backends on one storage (an old active that has not yet
// stepped down and the new one): before the fix the old one's save was
// built from its cached entry and overwrote the newer count; it now adds to
// what storage holds.
func TestAnOldActiveNodesSaveAddsToTheNewerStoredCount(t *testing.T) {
	h := newHarness(t)
	rec := h.recordTokensWrites()
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	read := func(b *backend) {
		t.Helper()
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token", Storage: h.storage})
		if errText(resp, err) != "" || len(resp.Warnings) == 0 {
			t.Fatalf("stale read: %v %v", resp, err)
		}
		b.tokens.background.Wait()
	}
	tick := func(b *backend) {
		t.Helper()
		if _, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: h.storage}); err != nil {
			t.Fatal(err)
		}
		b.tokens.background.Wait()
	}
	old := h.b
	read(old)
	tick(old) // stored 1
	read(old) // 1 unsaved on the old active
	newer := newTestBackend(t, h.clock, h.logs, logical.TestSystemView(), h.storage)
	for i := 0; i < 3; i++ {
		read(newer)
	}
	tick(newer)
	tick(old)
	wantStoredStaleServesNonDecreasing(t, rec.writes())
}

// Every counter's HELP (and status's count fields) says what it counts since.
func TestEveryCounterSaysItCountsSinceTheConfigWasCreated(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	m, _ := h.scrape()
	for name, f := range m {
		if f.GetType().String() != "COUNTER" {
			continue
		}
		if help := f.GetHelp(); !strings.Contains(help, "since the config was created") || !strings.Contains(help, "a config delete resets it") {
			t.Errorf("counter %s HELP does not say 'since the config was created (a config delete resets it)': %q", name, help)
		}
	}
	for _, k := range []string{"refreshes", "refresh_grants", "client_credentials_grants", "failures", "stale_serves", "stale_serves_by_reason"} {
		if d := statusFields[k].Description; !strings.Contains(d, "since the config was created") || !strings.Contains(d, "config delete resets") {
			t.Errorf("status field %s description does not say what it counts since: %q", k, d)
		}
	}
}

// With a ttl too long for the token to carry full leases (1h tokens, 55m
// ttl), the token is served with cut leases until it is due. Before the fix
// served_until was 50 minutes earlier (expiry less margin and ttl), and
// status and the gauge said reads failed long before they did.
func TestServedUntilIsTheLastServedInstantForATokenTooShortForFullLeases(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "55m"})
	old := h.readToken().Data["access_token"]
	h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
	raw, until := h.statusServedUntil()
	h.clock.Advance(until.Sub(h.clock.Now()))
	if r, err := h.request(logical.ReadOperation, "token", nil); errText(r, err) != "" || r.Data["access_token"] != old {
		t.Errorf("at served_until %s with WeTix answering 503 the read was not served the token: %v", raw, errText(r, err))
	}
	h.b.tokens.background.Wait()
	h.clock.Advance(time.Second)
	m, _ := h.scrape()
	gauge := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...)
	r, err := h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	if errText(r, err) == "" {
		t.Errorf("one second past served_until %s (gauge %v) with WeTix answering 503, the read still got token (same=%v); served_until is not the last instant a read is served",
			raw, gauge, r.Data["access_token"] == old)
	}
	// Find the real last instant: no read after the failed one above may
	// be served either.
	last := until
	for {
		h.clock.Advance(time.Minute)
		r, err := h.request(logical.ReadOperation, "token", nil)
		h.b.tokens.background.Wait()
		if errText(r, err) != "" {
			break
		}
		last = h.clock.Now()
		if last.After(until.Add(2 * time.Hour)) {
			break
		}
	}
	if last.After(until) {
		t.Errorf("status served_until %s, but reads with WeTix down were served until at least %s", raw, last.Format(time.RFC3339))
	}
}

// static-token with a non-default ttl and lease margin (10m tokens: 30s
// margin; ttl 30s) follows served_until: served at it, refused a second after,
// and the gauge agrees.
func TestStaticTokenFollowsServedUntilAndTheGaugeIsNegativeOncePassed(t *testing.T) {
	h := newHarness(t, withAccessTTL(10*time.Minute))
	h.configure(map[string]interface{}{"ttl": "30s"})
	old := h.readStatic().Data["access_token"]
	h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
	raw, until := h.statusServedUntil()
	h.clock.Advance(until.Sub(h.clock.Now()))
	m, _ := h.scrape()
	if g := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...); g != 0 {
		t.Errorf("gauge at served_until = %v, want 0", g)
	}
	r, err := h.request(logical.ReadOperation, staticTokenPath, nil)
	h.b.tokens.background.Wait()
	if errText(r, err) != "" || r.Data["access_token"] != old {
		t.Fatalf("static-token at served_until %s: %s", raw, errText(r, err))
	}
	h.clock.Advance(time.Second)
	m, _ = h.scrape()
	if g := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...); g != -1 {
		cur := h.b.tokens.cache.get()
		t.Errorf("gauge one second past served_until = %v, want -1 (now %s, status served_until %v, stored exp %s issued %s, exact servedUntil %s)", g,
			h.clock.Now().Format(time.RFC3339Nano), h.status()["served_until"], cur.AccessExpiresAt.Format(time.RFC3339Nano), cur.AccessIssuedAt.Format(time.RFC3339Nano), servedUntil(cur, &wetixConfig{TTL: 30 * time.Second}).Format(time.RFC3339Nano))
	}
	r, err = h.request(logical.ReadOperation, staticTokenPath, nil)
	h.b.tokens.background.Wait()
	if errText(r, err) == "" {
		t.Errorf("static-token one second past served_until %s was served", raw)
	}
	if advice := h.status()["advice"].(string); !strings.Contains(advice, "no longer served") {
		t.Errorf("past served_until, advice %q", advice)
	}
}

// Counts stored without reasons (pre-v0.2.0 entries) appear as unrecorded
// and the sum by reason equals the total as new serves are added.
func TestStaleServesByReasonSumToTheTotal(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	e := h.rawEntry(tokensStoragePath)
	stats := e["stats"].(map[string]any)
	stats["stale_serves"] = 5
	delete(stats, "stale_serves_by_reason")
	raw, _ := json.Marshal(e)
	h.put(tokensStoragePath, raw)
	h.restart()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readsInTheOutage(2)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	st := h.status()
	by := st["stale_serves_by_reason"].(map[string]uint64)
	var sum uint64
	for _, n := range by {
		sum += n
	}
	if st["stale_serves"] != uint64(7) || sum != 7 || by[staleBeforeReasons] != 5 || by[staleWeTixFailed] != 2 {
		t.Errorf("status stale_serves %v, by reason %v (sum %d); want 7 = 5 unrecorded + 2 wetix_unavailable", st["stale_serves"], by, sum)
	}
	m, _ := h.scrape()
	var msum float64
	for _, r := range append(staleReasons, staleBeforeReasons) {
		msum += m.MustValue(t, "wetix_stale_serves_by_reason_total", mount("reason", r)...)
	}
	if total := m.MustValue(t, "wetix_stale_serves_total", mount()...); total != msum || total != 7 {
		t.Errorf("wetix_stale_serves_total %v, sum by reason %v", total, msum)
	}
}

// A config write of new credentials (client_id) keeps every counter,
// including serves still in memory.
func TestANewClientIDKeepsEveryCounter(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readsInTheOutage(2)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	h.readToken() // one more, unsaved
	h.b.tokens.background.Wait()
	m, _ := h.scrape()
	before := counterSamples(m)
	h.writeConfig(map[string]interface{}{"client_id": "client-2"})
	h.b.tokens.background.Wait()
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	m, _ = h.scrape()
	wantNoCounterDown(t, "after a new client_id", before, counterSamples(m))
	if n := h.status()["stale_serves"].(uint64); n != 3 {
		t.Errorf("stale_serves after a new client_id = %d, want 3", n)
	}
}

// A delete whose tokens-entry delete fails, then a re-create: the HELP says
// a config delete resets every counter; before the fix the old entry's
// counts carried over into the new config.
func TestAConfigCreatedAfterAHalfFailedDeleteStartsFromZero(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.makeDue()
	h.readToken()
	h.halfFailedConfigDelete(false)
	h.configure(nil)
	if n := h.status()["refreshes"]; n != uint64(0) {
		t.Errorf("after a config delete (tokens delete failed, reported) and re-create, refreshes = %v, want 0", n)
	}
}

// A plugin reload (Clean, then a new backend) with serves counted but not
// yet stored: before the fix Clean did not store them, so they were never
// counted (the docs name only a crash as losing the last minute's serves).
func TestAReloadStoresTheServesNotYetStored(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readsInTheOutage(2)
	if !h.b.tokens.unsavedStale.any() {
		t.Fatal("scenario: want unstored serves before the reload")
	}
	h.b.Clean(t.Context())
	h.restart()
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	if n := h.status()["stale_serves"]; n != uint64(2) {
		t.Errorf("after 2 stale reads, a reload (Clean) and a tick, stale_serves = %v, want 2", n)
	}
}

// The docs said "unrecorded" is for serves stored by v0.1.0; v0.1.0 (ebbc2ae,
// the golden entries) stored no stale-serve count at all.
func TestAV010EntryHasNoUnrecordedStaleServes(t *testing.T) {
	h := newHarness(t)
	h.loadGolden("config.json", "tokens.json")
	stats := h.rawEntry(tokensStoragePath)["stats"].(map[string]any)
	if _, ok := stats["stale_serves"]; !ok {
		t.Logf("v0.1.0 tokens entry stores no stale_serves (stats keys: %v), so unrecorded is for pre-release v0.2.0 builds only", mapKeys(stats))
	}
	by := h.status()["stale_serves_by_reason"].(map[string]uint64)
	if _, ok := by[staleBeforeReasons]; ok {
		t.Errorf("unrecorded present for a v0.1.0 entry: %v", by)
	}
}

func mapKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Leased token, 10m tokens (30s margin), ttl 30s, WeTix down: served at
// served_until with a warning, refused one second later.
func TestLeasedReadsFollowServedUntilWithACustomTTL(t *testing.T) {
	h := newHarness(t, withAccessTTL(10*time.Minute))
	h.configure(map[string]interface{}{"ttl": "30s"})
	old := h.readToken().Data["access_token"]
	h.wetix.Fault(wetixtest.FaultStatus(503, `{"error":"unavailable"}`))
	raw, until := h.statusServedUntil()
	for !h.clock.Now().Add(20 * time.Second).After(until) {
		h.readToken()
		h.b.tokens.background.Wait()
		h.clock.Advance(20 * time.Second)
	}
	h.clock.Advance(until.Sub(h.clock.Now()))
	// (not due yet at the printed served_until: the exact instant is 50 ms
	// later, so no refresh has failed and status is still healthy)
	r := h.readToken()
	h.b.tokens.background.Wait()
	if r.Data["access_token"] != old || r.Secret.TTL != 30*time.Second {
		t.Errorf("at served_until: same=%v warnings=%v lease=%v", r.Data["access_token"] == old, r.Warnings, r.Secret.TTL)
	}
	h.clock.Advance(time.Second)
	rr, err := h.request(logical.ReadOperation, "token", nil)
	h.b.tokens.background.Wait()
	if errText(rr, err) == "" {
		t.Errorf("one second past served_until %s the leased read was served", raw)
	}
	st := h.status()
	if a := st["advice"].(string); strings.Contains(a, "still served") || !strings.Contains(a, "no longer served") {
		t.Errorf("past served_until advice %q", a)
	}
}

// A periodic save that fails outright keeps the counts for the next write:
// nothing lost, nothing counted twice.
func TestAFailedPeriodicSaveNeitherLosesNorDoublesServes(t *testing.T) {
	h := newHarness(t)
	rec := h.recordTokensWrites()
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	h.wetix.Fault(wetixtest.FaultHTML(502))
	h.readsInTheOutage(3)
	h.storage.failPuts.Store(true)
	_ = h.tick()
	h.storage.failPuts.Store(false)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	_ = h.tick()
	wantStoredStaleServesNonDecreasing(t, rec.writes())
	if n := h.status()["stale_serves"]; n != uint64(3) {
		t.Errorf("stale_serves = %v after 3 stale reads and a failed then a good tick (writes %v)", n, rec.writes())
	}
}

// readsInTheOutage reads the token n times, each to the end of the refresh
// it starts: with WeTix failing and the token due, n stale serves.
func (h *harness) readsInTheOutage(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		h.readToken()
		h.b.tokens.background.Wait()
	}
}

// pendingPairAfterAFailedWrite records every tokens write, makes the token
// due and reads it while the refresh's final write fails: the sent mark is
// stored, the new pair waits in memory, and the read is one storage_failed
// stale serve. Storage works again afterwards.
func (h *harness) pendingPairAfterAFailedWrite() *staleWriteRecorder {
	h.t.Helper()
	rec := h.recordTokensWrites()
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.makeDue()
	var puts atomic.Int32
	h.storage.setHook(func(op, key string) error {
		// 1st tokens put: the sent mark (lands); 2nd: the new pair (fails).
		if op == "put" && key == tokensStoragePath && puts.Add(1) == 2 {
			return errStorageDown
		}
		return nil
	})
	resp := h.readToken()
	h.b.tokens.background.Wait()
	h.storage.setHook(nil)
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "storage") {
		h.t.Fatalf("scenario: want a storage_failed stale serve, warnings %v", resp.Warnings)
	}
	if !h.b.tokens.hasPending.Load() {
		h.t.Fatal("scenario: want the new pair pending in memory")
	}
	return rec
}
