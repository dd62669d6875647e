package wetix

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tokenFit says how long a token may be handed out from now on one path
// (a lease, or the unleased path's ttl); ok is false when it cannot be
// handed out honestly at all.
type tokenFit func(st *tokenState, cfg *wetixConfig, now time.Time) (ttl time.Duration, ok bool)

// servedToken is what both token paths answer from.
type servedToken struct {
	res *tokenResult
	cfg *wetixConfig
	ttl time.Duration
}

// serveToken is the read the token paths share, so the leased and the
// unleased path follow one set of rules (refresh when due, one flight for
// both, stale serving with a warning, errors naming the fix) and count into
// one set of metrics. A non-nil *logical.Response is an error answer.
func (b *backend) serveToken(ctx context.Context, req *logical.Request, path readPath, fit tokenFit) (*servedToken, *logical.Response, error) {
	// Taken before the config is read: a serve under a config deleted
	// meanwhile is then not counted into the next config's counts.
	staleEpoch := b.tokens.unsavedStale.epoch()
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil {
		return nil, nil, err
	}
	if cfg == nil {
		return nil, logical.ErrorResponse(errNotConfigured.Error()), nil
	}
	// A token checked a moment ago may no longer fit (a read that waited
	// for a refresh during an outage): ask once more, and the lifecycle
	// treats it as due.
	for attempt := 0; ; attempt++ {
		res, err := b.tokens.get(ctx, req.Storage, cfg)
		if errors.Is(err, errNotConfigured) {
			// The config was deleted while this read waited for a refresh.
			return nil, logical.ErrorResponse(errNotConfigured.Error()), nil
		}
		if err != nil {
			return nil, nil, err
		}
		if ttl, ok := fit(res.state, cfg, b.now()); ok {
			if res.staleReason != "" {
				b.tokens.noteStaleServe(res.staleReason, staleEpoch)
			}
			b.reads.count(path)
			return &servedToken{res: res, cfg: cfg, ttl: ttl}, nil, nil
		}
		if attempt == 1 {
			// Only a token WeTix issued with (almost) no life gets here.
			return nil, nil, fmt.Errorf("the access token WeTix issued expires at %s, too soon to hand out; check the clocks of Vault and WeTix, and `vault read <mount>/status`", res.state.AccessExpiresAt.UTC().Format(time.RFC3339))
		}
	}
}

// leaseFit is the leased path's fit: leaseTTL under the mount's ttl.
func leaseFit(st *tokenState, cfg *wetixConfig, now time.Time) (time.Duration, bool) {
	return leaseTTL(cfg.TTL, st, now)
}

// tokenData is the part of the answer both paths share.
func tokenData(st *tokenState) map[string]interface{} {
	return map[string]interface{}{
		"access_token": st.AccessToken,
		"token_type":   "Bearer",
		"expires_at":   st.AccessExpiresAt.UTC().Format(time.RFC3339),
	}
}

func addWarnings(resp *logical.Response, res *tokenResult) {
	for _, w := range res.warnings {
		resp.AddWarning(w)
	}
}
