package wetix

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"
)

// periodic runs on Vault's rollback tick (about once a minute) on every node.
// It refreshes a due access token before anyone asks, and refreshes early when
// the refresh token nears its own expiry, so a mount nobody reads for months
// still holds a live credential. It shares the single flight with reads, so a
// tick during a read's refresh causes no second upstream call.
//
// The refresh runs in the background: Vault holds its state lock for the
// whole periodic call, and a refresh during a WeTix outage can retry for a
// minute, which would stall a seal or step-down.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.canWrite() {
		// Only the node that can store the rotated refresh token may refresh.
		return nil
	}
	// Stale serves are reported only once stored (stale_serves.go).
	if err := b.tokens.storeStaleServes(ctx, req.Storage); err != nil {
		b.Logger().Warn("storing the stale-serve counts failed; they go out with the next write", "error", err)
	}
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil || cfg == nil {
		return err
	}
	st, err := b.tokens.current(ctx, req.Storage, cfg)
	if err != nil {
		return err
	}
	// A pair whose write failed (after a rotate, say) must not wait in
	// memory for the next due refresh, weeks away: the refresh stores it
	// first thing and finds nothing else to do.
	if !b.tokens.due(st, cfg) && !b.tokens.hasPending.Load() {
		return nil
	}
	// A failure is recorded in status and retried on the next tick.
	b.tokens.refreshInBackground(req.Storage)
	return nil
}
