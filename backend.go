// Package wetix is a Vault secrets engine that serves WeTix Open API access
// tokens. An operator writes the WeTix client credentials to config once; apps
// read token and get a valid access token as a leased secret. Behind that read
// the engine refreshes through WeTix, stores every rotated refresh token before
// answering, and falls back to the client-credentials grant when the refresh
// token is missing, dead or in doubt.
package wetix

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// Version is the plugin's semantic version. Release builds (make release,
// make build) stamp it with
// -ldflags "-X github.com/wetix-oss/vault-plugin-secrets-wetix.Version=v1.2.3";
// the default is the version being released, so that a plain `go build`
// still names the code it was built from. Vault shows it in
// `vault plugin info` and `vault secrets list -detailed`, and every call to
// WeTix carries it in the User-Agent.
var Version = "v0.2.0"

// backend is one mount of the engine.
type backend struct {
	*framework.Backend

	tokens  *tokenSource
	configs *configStore
	// signing owns the signing key entries (signing.go).
	signing *signingStore
	// reads counts answered token reads by path (metrics).
	reads readCounts
	now   func() time.Time
	// stop ends the backend's lifetime context (Clean).
	stop context.CancelFunc
	// storage is the mount's storage as Setup got it, for clean.
	storage logical.Storage
}

// Factory is what Vault calls to create a mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(conf.Logger, time.Now)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend(logger hclog.Logger, now func() time.Time) *backend {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	life, stop := context.WithCancel(context.Background())
	b := &backend{now: now, stop: stop, configs: &configStore{}, signing: &signingStore{now: now}}
	b.tokens = &tokenSource{
		life:            life,
		configs:         b.configs,
		now:             now,
		logger:          logger.Named("tokens"),
		canWrite:        b.canWrite,
		retry:           defaultRetryPolicy,
		failureCooldown: 5 * time.Second,
		outageGrace:     time.Second,
		newClient: func(cfg *wetixConfig) grantClient {
			return client.New(client.Config{
				BaseURL:      cfg.oauthURL(),
				ClientID:     cfg.ClientID,
				ClientSecret: cfg.ClientSecret,
				Timeout:      cfg.RequestTimeout,
				UserAgent:    userAgent(),
				Now:          now,
			})
		},
	}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// These entries hold secrets: the client secret, the refresh
			// token, the signing keys. A capable seal wraps them at rest.
			SealWrapStorage: append([]string{configStoragePath, tokensStoragePath}, signingStoragePaths...),
		},
		Paths: append([]*framework.Path{pathConfig(b), pathToken(b), pathStaticToken(b), pathStatus(b), pathRotate(b), pathMetrics(b)},
			append(pathSigningKeys(b), pathSign(b))...),
		Secrets:        []*framework.Secret{secretAccessToken(b)},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		PeriodicFunc:   b.periodic,
		RunningVersion: Version,
	}
	return b
}

// configFor returns the stored config, nil when none is written.
func (b *backend) configFor(ctx context.Context, storage logical.Storage) (*wetixConfig, error) {
	return b.configs.get(ctx, storage)
}

// canWrite is false on a performance standby, a performance secondary
// (for a replicated mount) or a DR secondary, where storage is read-only and
// a request that must write has to be forwarded to the active node.
func (b *backend) canWrite() bool {
	return b.WriteSafeReplicationState()
}

// invalidate drops in-memory copies when another node changes storage.
func (b *backend) invalidate(_ context.Context, key string) {
	b.signing.invalidate(key)
	switch key {
	case configStoragePath:
		b.configs.invalidate()
		b.tokens.invalidate()
	case tokensStoragePath:
		b.tokens.invalidate()
	}
}

// cleanSaveTimeout bounds the last write of clean: Vault waits for it on a
// reload, an unmount and a step-down.
const cleanSaveTimeout = 5 * time.Second

// clean runs when the mount is disabled or its plugin reloaded (and on a
// step-down): a refresh still in flight stops, so it cannot call WeTix or
// write storage behind the next instance's back; then the stale serves
// counted since the last write are stored, which the next instance cannot
// know of. If that write fails they are lost, as in a crash: an undercount,
// never a counter going down.
func (b *backend) clean(ctx context.Context) {
	b.stop()
	b.tokens.background.Wait()
	if b.storage == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanSaveTimeout)
	defer cancel()
	if err := b.tokens.storeStaleServes(ctx, b.storage); err != nil {
		b.Logger().Warn("storing the stale-serve counts on shutdown failed; this instance's last serves go uncounted", "error", err)
	}
}

const backendHelp = `
The WeTix secrets engine serves WeTix Open API access tokens.

An operator writes the WeTix client credentials to "config" once; they can
never be read back. Apps read "token" and get a valid access token as a leased
secret, renewable while its token is the mount's current one and can still
carry a full ttl lease. The engine
refreshes the token through WeTix before it expires, stores the rotated
refresh token before answering, and falls back to the client-credentials grant
whenever the refresh token is missing or rejected. It also holds the RSA key
that signs order mutations ("signing-key", "sign").
`
