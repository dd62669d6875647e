package wetix

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// inputError is a config write refused for what the caller sent; the path
// answers it as a 400 with this text.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

// changeConfig changes the config. merge builds the new config from the
// stored one (nil on create) and returns an *inputError for bad input, in
// which case nothing is written. Config writes and deletes are serialized by
// configMu. A write that keeps the credentials (ttl, request_timeout) leaves
// a refresh in progress alone: its tokens stay valid. One that replaces them
// cancels the refresh and takes the refresh lock, so a refresh with the old
// credentials can neither hold the write up (for the whole retry budget when
// WeTix hangs) nor store its tokens after it.
func (ts *tokenSource) changeConfig(ctx context.Context, storage logical.Storage, merge func(prev *wetixConfig) (*wetixConfig, error)) (*wetixConfig, error) {
	ts.configMu.Lock()
	defer ts.configMu.Unlock()

	prev, err := readConfig(ctx, storage)
	if err != nil {
		return nil, err
	}
	cfg, err := merge(prev)
	if err != nil {
		return nil, err
	}
	retiring := prev == nil || prev.Generation != cfg.Generation
	if retiring {
		ts.lockForConfigChange()
		defer ts.mu.Unlock()
	}
	if err := ts.configs.put(ctx, storage, cfg); err != nil {
		if retiring {
			// The write may have landed or not. Either way no stale failure
			// of the old credentials may answer for the new ones.
			ts.failure.Store(nil)
		}
		return nil, fmt.Errorf("storing the config failed, and whether it was written is unknown: check with `vault read <mount>/config` and write it again: %w", err)
	}
	if retiring {
		ts.retireLocked(ctx, storage, cfg)
	}
	return cfg, nil
}

// retireLocked sets aside the tokens of an earlier generation: the new
// credentials start from nothing (or from their seed), and a failure of the
// old ones says nothing about the new. The generation change in the config
// already retired the stored tokens; rewriting the entry only drops their
// secrets from storage early, so it is best effort.
func (ts *tokenSource) retireLocked(ctx context.Context, storage logical.Storage, cfg *wetixConfig) {
	ts.pending = nil
	ts.failure.Store(nil)
	ts.cache.set(nil)
	old, err := readTokenState(ctx, storage)
	if err != nil {
		return
	}
	_, _ = ts.storeLocked(ctx, storage, old.forGeneration(cfg))
}

// deleteConfig removes the config and every stored token. The config goes
// first: once it is gone nothing can be served or minted, and a tokens entry
// left behind by a failure of the second step belongs to a generation no
// later config will have. Deleting the tokens first would leave, on a
// failure in between, a config whose seed refresh token was long spent but
// no longer marked so.
func (ts *tokenSource) deleteConfig(ctx context.Context, storage logical.Storage) error {
	ts.configMu.Lock()
	defer ts.configMu.Unlock()
	ts.lockForConfigChange()
	defer ts.mu.Unlock()
	if err := ts.configs.remove(ctx, storage); err != nil {
		return fmt.Errorf("deleting the config failed; try again: %w", err)
	}
	ts.pending = nil
	ts.failure.Store(nil)
	ts.cache.set(nil)
	if err := storage.Delete(ctx, tokensStoragePath); err != nil {
		return fmt.Errorf("the config was deleted, so nothing is served, but deleting the stored tokens failed; run the delete again to remove them: %w", err)
	}
	return nil
}
