package wetix

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// inputError is a config write refused for what the caller sent; the path
// answers it as a 400 with this text.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

// configChange is what a config write asks of the lifecycle.
type configChange struct {
	merge func(prev *wetixConfig) (*wetixConfig, error)
	// verify: refuse the write unless the new credentials get a pair from
	// WeTix now.
	verify bool
}

// changeConfig changes the config and answers with it and any warnings.
// merge builds the new config from the stored one (nil on create) and
// returns an *inputError for bad input, in which case nothing is written.
//
// Config writes and deletes are serialized by configMu. A write that keeps
// the credentials (ttl, request_timeout) leaves a refresh in progress alone:
// its tokens stay valid. One that changes them cancels the refresh and takes
// the refresh lock, so a refresh with the old credentials can neither hold
// the write up (for the whole retry budget when WeTix hangs) nor store its
// tokens after it.
//
// After a change of existing credentials a refresh with the new ones starts
// right away, in the background, so the write itself never waits on WeTix.
// A new client secret alone stays pending until that refresh, or a later
// one, succeeds: the old tokens are served meanwhile, with a warning. A new
// client ID or OAuth URL retires the old tokens at once: they belong to
// another client or server. verify asks WeTix synchronously instead and
// refuses the write, changing nothing, unless the new credentials get a
// pair; that pair then replaces the old tokens in the same step.
func (ts *tokenSource) changeConfig(ctx context.Context, storage logical.Storage, change configChange) (*wetixConfig, []string, error) {
	cfg, warnings, refreshNow, err := ts.changeConfigLocked(ctx, storage, change)
	if refreshNow {
		ts.refreshInBackground(storage)
	}
	return cfg, warnings, err
}

func (ts *tokenSource) changeConfigLocked(ctx context.Context, storage logical.Storage, change configChange) (cfg *wetixConfig, warnings []string, refreshNow bool, err error) {
	ts.configMu.Lock()
	defer ts.configMu.Unlock()

	prev, err := readConfig(ctx, storage)
	if err != nil {
		return nil, nil, false, err
	}
	cfg, err = change.merge(prev)
	if err != nil {
		return nil, nil, false, err
	}
	retiring := prev == nil || prev.Generation != cfg.Generation
	secretChanged := !retiring && prev.SecretSerial != cfg.SecretSerial
	if change.verify && cfg.SeedRefreshToken != "" && (prev == nil || prev.SeedRefreshToken != cfg.SeedRefreshToken) {
		return nil, nil, false, &inputError{msg: "verify=true cannot be combined with a new refresh_token: verifying would spend the seed before the config is stored. Write the seed without verify, then read the token"}
	}
	if !retiring && !secretChanged && !change.verify {
		if err := ts.configs.put(ctx, storage, cfg); err != nil {
			return nil, nil, false, configWriteError(err)
		}
		return cfg, nil, false, nil
	}
	ts.lockForConfigChange()
	defer ts.mu.Unlock()
	// The change rewrites the tokens entry (retire, forget a failure, adopt
	// a pair): refuse it before anything is written or WeTix is asked, if
	// that entry is one this version must not rewrite.
	if _, err := readTokenState(ctx, storage); err != nil {
		return nil, nil, false, err
	}

	var pair *client.Pair
	if change.verify {
		if pair, err = ts.newClient(cfg).ClientCredentials(ctx); err != nil {
			return nil, nil, false, &inputError{msg: verifyRefusal(err)}
		}
	}
	if prev == nil {
		// A config delete whose second step failed left its tokens entry
		// behind: tokens of no config, and counts a delete resets. Finish
		// that delete first, so a new config starts from nothing.
		if err := storage.Delete(ctx, tokensStoragePath); err != nil {
			return nil, nil, false, fmt.Errorf("the tokens entry an earlier config delete left behind could not be removed, so nothing was written; write the config again: %w", err)
		}
		ts.cache.set(nil)
	}
	if err := ts.configs.put(ctx, storage, cfg); err != nil {
		// The write may have landed or not. Either way no stale failure of
		// the old credentials may answer for the new ones.
		ts.failure.Store(nil)
		return nil, nil, false, configWriteError(err)
	}
	if retiring {
		ts.retireLocked(ctx, storage, cfg)
	} else {
		ts.forgetFailureLocked(ctx, storage, cfg)
	}
	if pair != nil {
		if err := ts.adoptLocked(ctx, storage, cfg, pair); err != nil {
			warnings = append(warnings, err.Error())
		}
		return cfg, warnings, false, nil
	}
	// A new seed waits for the first read, as on create.
	return cfg, nil, prev != nil && (secretChanged || cfg.SeedRefreshToken == ""), nil
}

// forgetFailureLocked drops what the last failure left (the cooldown, and
// the error status shows): it was about the previous secret.
func (ts *tokenSource) forgetFailureLocked(ctx context.Context, storage logical.Storage, cfg *wetixConfig) {
	ts.failure.Store(nil)
	cur, err := ts.loadLocked(ctx, storage, cfg)
	if err != nil || cur.Stats.LastError == "" {
		return
	}
	next := cur.clone()
	next.Stats.LastError, next.Stats.LastErrorKind, next.Stats.LastErrorAt = "", "", time.Time{}
	_, _ = ts.storeLocked(ctx, storage, next)
}

// adoptLocked stores a pair obtained with cfg's credentials outside a
// refresh (a config write), as a refresh would.
func (ts *tokenSource) adoptLocked(ctx context.Context, storage logical.Storage, cfg *wetixConfig, pair *client.Pair) error {
	if err := ts.flushPendingLocked(ctx, storage); err != nil {
		return err
	}
	base, err := ts.loadLocked(ctx, storage, cfg)
	if err != nil {
		return err
	}
	next := base.clone()
	next.replaceWith(pair, cfg, ts.now())
	if _, err := ts.storeLocked(ctx, storage, next); err != nil {
		ts.setPendingLocked(next)
		return storageError(err, true)
	}
	ts.logger.Info("WeTix token obtained with the new config", "grant", pair.Grant, "access_expires_at", next.AccessExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

func configWriteError(err error) error {
	return fmt.Errorf("storing the config failed, and whether it was written is unknown: check with `vault read <mount>/config` and write it again: %w", err)
}

func verifyRefusal(err error) string {
	if cerr, ok := client.AsError(err); ok && cerr.Kind == client.KindTransient {
		return fmt.Sprintf("verify=true: WeTix could not be reached to check the new credentials (%s). Nothing was changed; write again later, or without verify=true", cerr.Error())
	}
	return fmt.Sprintf("verify=true: WeTix refused the new credentials (%s). Nothing was changed; check client_id, client_secret and the OAuth URL (environment, base_url)", err.Error())
}

// retireLocked sets aside the tokens of an earlier generation: the new
// credentials start from nothing (or from their seed), and a failure of the
// old ones says nothing about the new. The generation change in the config
// already retired the stored tokens; rewriting the entry only drops their
// secrets from storage early, so it is best effort.
func (ts *tokenSource) retireLocked(ctx context.Context, storage logical.Storage, cfg *wetixConfig) {
	ts.setPendingLocked(nil)
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
	// A newer plugin's entries (its refresh token among them) are not this
	// version's to wipe; `vault secrets disable` still removes everything.
	for _, e := range []struct {
		key, what string
		known     int
	}{{configStoragePath, "config entry", configSchema}, {tokensStoragePath, "tokens entry", tokensSchema}} {
		if err := refuseNewerEntry(ctx, storage, e.key, e.what, e.known); err != nil {
			return err
		}
	}
	if err := ts.configs.remove(ctx, storage); err != nil {
		return fmt.Errorf("deleting the config failed; try again: %w", err)
	}
	ts.unsavedStale.forget()
	ts.lastStored = nil
	ts.setPendingLocked(nil)
	ts.failure.Store(nil)
	ts.cache.set(nil)
	if err := storage.Delete(ctx, tokensStoragePath); err != nil {
		return fmt.Errorf("the config was deleted, so nothing is served, but deleting the stored tokens failed; run the delete again to remove them: %w", err)
	}
	return nil
}
