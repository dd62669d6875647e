package wetix

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

func pathStatus(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "status",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationSuffix: "status",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathStatusRead,
				Summary:  "Health of the mount's WeTix credential, without any secret.",
				Responses: map[int][]framework.Response{
					200: {{Description: "OK", Fields: statusReadFields()}},
				},
			},
		},
		HelpSynopsis:    "Show the health of the WeTix credential without showing it.",
		HelpDescription: strings.TrimSpace(statusHelp),
	}
}

const statusHelp = `
Reports the state of the mount's WeTix credential without any secret: when the
access token and the refresh token expire, when and by which grant the last
refresh ran, how many refreshes and failures there were, the last error, and
whether a refresh is due. "healthy" sums it up and "advice" says what to do
when it is false. The history is kept in storage, so every node of an HA
cluster reports the same. signing_key_fingerprint and
next_signing_key_fingerprint show which key signs and which one waits for
WeTix (see signing-key/next); each is empty when there is none.
`

var statusFields = map[string]*framework.FieldSchema{
	"secret_change_pending":     {Type: framework.TypeBool, Description: "True after a client_secret change until WeTix has issued a token for the new secret; meanwhile the token obtained with the previous secret is served, with a warning."},
	"secret_changed_at":         {Type: framework.TypeTime, Description: "When client_secret was last changed alone (RFC 3339); empty if never."},
	"healthy":                   {Type: framework.TypeBool, Description: "True when a valid access token is held, or can be had, and the last refresh did not fail."},
	"advice":                    {Type: framework.TypeString, Description: "What to do when healthy is false."},
	"configured":                {Type: framework.TypeBool, Description: "Whether config has been written."},
	"access_token_expires_at":   {Type: framework.TypeTime, Description: "When the current access token expires (RFC 3339); empty when none is held."},
	"refresh_token_expires_at":  {Type: framework.TypeTime, Description: "When the stored refresh token expires (RFC 3339); empty when unknown or none is held."},
	"refresh_token_usable":      {Type: framework.TypeBool, Description: "Whether the next refresh will use the refresh grant (false: the client-credentials grant)."},
	"refresh_due":               {Type: framework.TypeBool, Description: "Whether the next read or periodic tick will refresh."},
	"last_refresh_at":           {Type: framework.TypeTime, Description: "When the last successful refresh ran."},
	"last_grant":                {Type: framework.TypeString, Description: `Grant of the last successful refresh: "refresh_token" or "client_credentials".`},
	"refreshes":                 {Type: framework.TypeInt64, Description: "Successful refreshes since the config was created (a config delete resets it)."},
	"refresh_grants":            {Type: framework.TypeInt64, Description: "Successful refreshes through the refresh grant, since the config was created (a config delete resets it)."},
	"client_credentials_grants": {Type: framework.TypeInt64, Description: "Successful refreshes through the client-credentials grant, since the config was created (a config delete resets it)."},
	"failures":                  {Type: framework.TypeInt64, Description: "Refreshes that failed (each may have retried several times), since the config was created (a config delete resets it)."},
	"stale_serves":              {Type: framework.TypeInt64, Description: "Token reads answered with the current, due token instead of a new one (each with a warning), since the config was created (a config delete resets it), as stored: counted within a minute, never going down while the config exists."},
	"stale_serves_by_reason":    {Type: framework.TypeMap, Description: `stale_serves by reason: "wetix_unavailable", "secret_pending" (a new client_secret not accepted yet), "storage_failed"; "unrecorded" for serves counted before reasons were recorded (pre-release builds of v0.2.0); since the config was created (a config delete resets it).`},
	"served_until":              {Type: framework.TypeTime, Description: "The last instant the current token is served if it cannot be replaced before then (RFC 3339): its expiry less the lease margin and one ttl; the instant before it is due for refresh for a token too short-lived to carry full ttl leases, or after a refusal (rejected credentials, an untrusted certificate), which a due token is not served through."},
	"last_error":                {Type: framework.TypeString, Description: "The last refresh error, never containing a secret."},
	"last_error_at":             {Type: framework.TypeTime, Description: "When the last error happened."},
}

// signingStatusFields are status's, not rotate's (which answers with the
// token status only): a key handover is the operator's other moving part.
var signingStatusFields = map[string]*framework.FieldSchema{
	"signing_key_fingerprint":      {Type: framework.TypeString, Description: "Fingerprint of the key that signs (as in vault read <mount>/signing-key); empty when there is none, and sign is refused."},
	"next_signing_key_fingerprint": {Type: framework.TypeString, Description: "Fingerprint of the key waiting in signing-key/next for WeTix to switch, to be promoted then; empty when none waits."},
}

func statusReadFields() map[string]*framework.FieldSchema {
	fields := maps.Clone(statusFields)
	maps.Copy(fields, signingStatusFields)
	return fields
}

func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	resp, err := b.statusResponse(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	keys, err := b.signing.keys(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	resp.Data["signing_key_fingerprint"], resp.Data["next_signing_key_fingerprint"] = "", ""
	if keys.current != nil {
		resp.Data["signing_key_fingerprint"] = keys.current.fingerprint
	}
	if keys.next != nil {
		resp.Data["next_signing_key_fingerprint"] = keys.next.fingerprint
	}
	return resp, nil
}

func (b *backend) statusResponse(ctx context.Context, storage logical.Storage) (*logical.Response, error) {
	cfg, err := b.configFor(ctx, storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return &logical.Response{Data: map[string]interface{}{
			"configured": false,
			"healthy":    false,
			"advice":     "Write the client credentials: vault write <mount>/config client_id=... client_secret=...",
		}}, nil
	}
	st, err := b.tokens.current(ctx, storage, cfg)
	if err != nil {
		return nil, err
	}
	now := b.now()
	healthy, advice := healthOf(st, cfg, now, b.tokens.due(st, cfg))
	return &logical.Response{Data: map[string]interface{}{
		"configured":                true,
		"secret_change_pending":     st.secretPending(cfg),
		"secret_changed_at":         formatTime(cfg.SecretChangedAt),
		"healthy":                   healthy,
		"advice":                    advice,
		"access_token_expires_at":   formatTime(st.AccessExpiresAt),
		"served_until":              formatServedUntil(st, cfg),
		"refresh_token_expires_at":  formatTime(st.RefreshExpiresAt),
		"refresh_token_usable":      st.usableRefreshToken(now),
		"refresh_due":               b.tokens.due(st, cfg),
		"last_refresh_at":           formatTime(st.Stats.LastRefreshAt),
		"last_grant":                st.Stats.LastGrant,
		"refreshes":                 st.Stats.Refreshes,
		"refresh_grants":            st.Stats.RefreshGrants,
		"client_credentials_grants": st.Stats.CredentialGrants,
		"failures":                  st.Stats.Failures,
		"stale_serves":              staleServes(st),
		"stale_serves_by_reason":    staleServesByReason(st),
		"last_error":                st.Stats.LastError,
		"last_error_at":             formatTime(st.Stats.LastErrorAt),
	}}, nil
}

// healthOf is health with what the config adds: a client secret change that
// WeTix has not confirmed yet.
func healthOf(st *tokenState, cfg *wetixConfig, now time.Time, due bool) (bool, string) {
	if !st.secretPending(cfg) {
		return health(st, cfg, now, due)
	}
	lastFailed := !st.Stats.LastErrorAt.IsZero() && st.Stats.LastErrorAt.After(cfg.SecretChangedAt)
	switch {
	case lastFailed && st.Stats.LastErrorKind == client.KindInvalidClient.String():
		return false, "WeTix rejects the client_secret written at " + formatTime(cfg.SecretChangedAt) + "; " + previousSecretToken(st, cfg, now) + ". Write the right secret: vault write <mount>/config client_secret=..."
	case lastFailed:
		return false, "The client_secret written at " + formatTime(cfg.SecretChangedAt) + " could not be tried yet (see last_error); " + previousSecretToken(st, cfg, now) + "."
	default:
		return true, "A client_secret change is pending: the next refresh (on the next read or within a minute) obtains a token with it."
	}
}

// health answers the operator's question: is this working, and if not, what
// do I do? What it says reads get follows the rules the reads apply: a token
// that is not due is served whatever failed; a due one only through a
// failure the plugin serves through (servedThroughFailure) and only until
// servedUntil.
func health(st *tokenState, cfg *wetixConfig, now time.Time, due bool) (bool, string) {
	lastFailed := !st.Stats.LastErrorAt.IsZero() && st.Stats.LastErrorAt.After(st.Stats.LastRefreshAt)
	const retry = " See last_error; force a retry with vault write -f <mount>/rotate."
	switch {
	case lastFailed && st.Stats.LastErrorKind == client.KindInvalidClient.String():
		return false, "WeTix rejects the client credentials. Write the current ones: vault write <mount>/config client_id=... client_secret=..."
	case lastFailed && st.Stats.LastErrorKind == client.KindUntrusted.String():
		return false, "The OAuth server's TLS certificate is not trusted. Check base_url with vault read <mount>/config; if a private CA or an intercepting proxy signs it, register the plugin with -env SSL_CERT_FILE=<CA bundle> and reload it (docs/network.md), or add the CA to the system CA store of every Vault node."
	case lastFailed && servedThroughFailure(st.Stats.LastErrorKind) && st.hasAccessToken() && !now.After(servedUntil(st, cfg)):
		return false, "The last refresh failed; the current access token is still served until " + formatServedUntil(st, cfg) + " (" + whyServedUntil(st, cfg) + ")." + retry
	case lastFailed && st.hasAccessToken() && now.Before(st.AccessExpiresAt) && !due:
		return false, "The last refresh failed; the current access token (expires at " + formatTime(st.AccessExpiresAt) + ") is served while it is not due for refresh (due at " + formatTime(dueAt(st, cfg)) + "); once due, token reads fail until a refresh succeeds." + retry
	case lastFailed && st.hasAccessToken() && now.Before(st.AccessExpiresAt):
		return false, "The last refresh failed and the current access token is no longer served (it is due for refresh, and " + notServedBecause(st, cfg, now) + "): token reads fail until a refresh succeeds." + retry
	case lastFailed:
		return false, "The last refresh failed and no valid access token is held: token reads fail until a refresh succeeds." + retry
	case !st.hasAccessToken():
		return true, "No token yet; the first read of <mount>/token will get one."
	default:
		return true, ""
	}
}

// servedThroughFailure mirrors tokenSource.failed: a due token is served
// through a transient WeTix failure or a storage failure, not through a
// refusal.
func servedThroughFailure(kind string) bool {
	return kind == client.KindTransient.String() || kind == errorKind(&storageErr{})
}

func notServedBecause(st *tokenState, cfg *wetixConfig, now time.Time) string {
	if !servedThroughFailure(st.Stats.LastErrorKind) {
		return "the failure is not one a due token is served through"
	}
	return "it was served through the failure only until " + formatServedUntil(st, cfg) + ", " + whyServedUntil(st, cfg)
}

// whyServedUntil says which rule sets servedUntil, for the advice.
func whyServedUntil(st *tokenState, cfg *wetixConfig) string {
	if servedUntil(st, cfg).Equal(fullLeaseUntil(st, cfg)) {
		return "a margin and one ttl before it expires at " + formatTime(st.AccessExpiresAt)
	}
	return "when it becomes due for refresh; it is too short-lived to carry full ttl leases, and expires at " + formatTime(st.AccessExpiresAt)
}

// previousSecretToken says whether reads still get the token obtained with
// the previous client secret, by the rule the reads apply (carriesTTL).
func previousSecretToken(st *tokenState, cfg *wetixConfig, now time.Time) string {
	if carriesTTL(st, cfg, now) {
		return "the token obtained with the previous secret is still served until " + formatServedUntil(st, cfg)
	}
	return "the token obtained with the previous secret is no longer served (it can carry no full ttl lease since " + formatServedUntil(st, cfg) + "), so token reads fail until WeTix accepts a secret"
}

// formatServedUntil is reportedServedUntil for status, "" while no token
// is held.
func formatServedUntil(st *tokenState, cfg *wetixConfig) string {
	if !st.hasAccessToken() {
		return ""
	}
	return formatTime(reportedServedUntil(st, cfg))
}

// reportedServedUntil is servedUntil as status and the metrics report it.
// servedUntil assumes the failures to come are ones a due token is served
// through (WeTix unavailable, storage). After a refusal (a rejected client,
// an untrusted certificate, a 4xx), with no refresh succeeding since, the
// next refresh is taken to be refused too: the token is then served only
// while it is not due. A pending secret change is served through any
// failure (failures.go), so it keeps servedUntil.
func reportedServedUntil(st *tokenState, cfg *wetixConfig) time.Time {
	until := servedUntil(st, cfg)
	refused := !st.Stats.LastErrorAt.IsZero() && st.Stats.LastErrorAt.After(st.Stats.LastRefreshAt) &&
		!servedThroughFailure(st.Stats.LastErrorKind)
	if !refused || st.secretPending(cfg) {
		return until
	}
	if d := dueAt(st, cfg); !d.IsZero() && d.Add(-time.Nanosecond).Before(until) {
		return d.Add(-time.Nanosecond)
	}
	return until
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
