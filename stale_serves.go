package wetix

import (
	"context"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// Why a due token was served instead of a new one: the reasons count apart,
// because they call for different fixes.
const (
	staleWeTixFailed   = "wetix_unavailable" // WeTix could not be reached or failed transiently
	staleSecretPending = "secret_pending"    // the new client_secret is not accepted yet; the previous secret's token is served
	staleStorageFailed = "storage_failed"    // Vault's storage failed while storing a refresh
)

// staleReasons is the exposition order of the reasons.
var staleReasons = []string{staleWeTixFailed, staleSecretPending, staleStorageFailed}

// staleBeforeReasons labels stale serves stored before they were counted by
// reason (by pre-release builds of v0.2.0; v0.1.0 counted none): they appear
// in the total only, and in this series.
const staleBeforeReasons = "unrecorded"

// unsavedStaleServes counts, by reason, stale serves this node has made and
// not yet stored. They are reported only once stored: a count reported from
// memory would go backwards after a reload, a crash or a failover, which
// Prometheus reads as a counter reset (and increase() then jumps by the
// whole stored count). Storing each one would add a storage write per read
// exactly when things are already failing, so they go out with the next
// write of the tokens entry, or the next periodic tick.
type unsavedStaleServes struct {
	mu       sync.Mutex
	byReason map[string]uint64
	// config counts config deletes: a serve made under a config that has
	// since been deleted is dropped, since the counts restart with the next
	// config (a read can serve just before a delete and count just after).
	config uint64
}

// epoch is the config a serve about to be made is counted under.
func (u *unsavedStaleServes) epoch() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.config
}

func (u *unsavedStaleServes) add(reason string, epoch uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if epoch != u.config {
		return
	}
	if u.byReason == nil {
		u.byReason = map[string]uint64{}
	}
	u.byReason[reason]++
}

// take empties the counts and returns them; give puts them back after a
// failed write.
func (u *unsavedStaleServes) take() map[string]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	taken := u.byReason
	u.byReason = nil
	return taken
}

func (u *unsavedStaleServes) give(counts map[string]uint64) {
	for reason, n := range counts {
		u.mu.Lock()
		if u.byReason == nil {
			u.byReason = map[string]uint64{}
		}
		u.byReason[reason] += n
		u.mu.Unlock()
	}
}

// forget drops the counts of a deleted config, and any still to be counted
// under it.
func (u *unsavedStaleServes) forget() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.byReason = nil
	u.config++
}

func (u *unsavedStaleServes) any() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.byReason) > 0
}

// withStaleServes returns st with counts added to its stats (a copy when
// there is anything to add).
func withStaleServes(st *tokenState, counts map[string]uint64) *tokenState {
	if len(counts) == 0 {
		return st
	}
	st = st.clone()
	byReason := make(map[string]uint64, len(st.Stats.StaleServesByReason)+len(counts))
	for r, n := range st.Stats.StaleServesByReason {
		byReason[r] = n
	}
	for r, n := range counts {
		byReason[r] += n
		st.Stats.StaleServes += n
	}
	st.Stats.StaleServesByReason = byReason
	return st
}

// noteStaleServe counts a read answered with the current, due token, under
// the config of epoch (taken before the read asked for its token).
func (ts *tokenSource) noteStaleServe(reason string, epoch uint64) {
	ts.unsavedStale.add(reason, epoch)
}

// staleServes is the stored count: what every node reports alike, and what
// never goes down while the config exists.
func staleServes(st *tokenState) uint64 { return st.Stats.StaleServes }

// staleServesByReason splits staleServes by reason; counts stored before
// reasons were recorded are staleBeforeReasons.
func staleServesByReason(st *tokenState) map[string]uint64 {
	out := map[string]uint64{}
	var recorded uint64
	for _, r := range staleReasons {
		out[r] = st.Stats.StaleServesByReason[r]
		recorded += out[r]
	}
	if st.Stats.StaleServes > recorded {
		out[staleBeforeReasons] = st.Stats.StaleServes - recorded
	}
	return out
}

// storeStaleServes writes the stale serves this node counted and has not
// stored yet, on a node that can write; the periodic tick calls it so a
// count reaches status and metrics within a minute even when nothing else
// writes the tokens entry (a secret pending for hours, say).
func (ts *tokenSource) storeStaleServes(ctx context.Context, storage logical.Storage) error {
	if !ts.unsavedStale.any() || !ts.canWrite() {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// Re-read under mu: a config deleted meanwhile took its tokens with it,
	// and its counts must not bring the entry back.
	cfg, err := ts.configs.get(ctx, storage)
	if err != nil || cfg == nil {
		return err
	}
	cur, err := ts.loadLocked(ctx, storage, cfg)
	if err != nil {
		return err
	}
	// The cached copy, which may be newer than storage (a sent mark
	// cleared in memory when its write failed), with its counts raised to
	// the stored ones: a node that lost its active role without knowing it
	// yet (its Clean still to come) must add its serves to the newest
	// stored counts, not write its older ones over them.
	stored, err := readTokenState(ctx, storage)
	if err != nil {
		return err
	}
	if stored.Generation != cur.Generation {
		// Storage moved on under this node's copies (another writer
		// deleted the config or retired its tokens): writing the copy would
		// bring back tokens of no config. Forget the copies; the serves go
		// out with the next write, built from what storage holds.
		ts.cache.set(nil)
		ts.configs.invalidate()
		return nil
	}
	_, err = ts.storeLocked(ctx, storage, cur.withCountsAtLeast(stored))
	return err
}
