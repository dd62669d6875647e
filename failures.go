package wetix

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// failed decides what a read gets when no new pair could be had: the old
// token with a warning if the failure was transient and the old token outlives
// a lease, otherwise the error. A forced rotation always gets the error: its
// caller asked for a new token and must learn it did not get one.
func (ts *tokenSource) failed(cur *tokenState, cfg *wetixConfig, err error, force bool) (*tokenResult, error) {
	var serr *storageErr
	if errors.As(err, &serr) && !force && cur != nil && ts.servable(cur, cfg) {
		// Storage, not WeTix, failed: the current token is as good as it
		// was, and a read does not need storage to be served it.
		return &tokenResult{state: cur, warnings: []string{storageWarning(cur, serr)}, staleReason: staleStorageFailed}, nil
	}
	if serr != nil || errors.Is(err, logical.ErrReadOnly) || errors.Is(err, errNotConfigured) {
		return nil, err
	}
	cerr, ok := client.AsError(err)
	if !ok {
		return nil, fmt.Errorf("refreshing the WeTix token: %w", err)
	}
	if !force && cur != nil && cur.secretPending(cfg) && ts.servable(cur, cfg) {
		// Whatever WeTix says of the new secret, the token obtained with
		// the previous one is still good: a wrong or early secret costs a
		// warning, not an outage.
		return &tokenResult{state: cur, warnings: []string{pendingSecretWarning(cur, cfg, cerr)}, staleReason: staleSecretPending}, nil
	}
	if !force && cerr.Kind == client.KindTransient && cur != nil && ts.servable(cur, cfg) {
		return &tokenResult{state: cur, warnings: []string{staleWarning(cur, cerr.Error())}, staleReason: staleWeTixFailed}, nil
	}
	return nil, operatorError(cerr)
}

func storageWarning(st *tokenState, serr *storageErr) string {
	return fmt.Sprintf("The access token could not be refreshed because Vault's storage failed (%s); serving the current token, which expires at %s. The plugin tries again on the next read.",
		serr.Error(), st.AccessExpiresAt.UTC().Format(time.RFC3339))
}

func pendingSecretWarning(st *tokenState, cfg *wetixConfig, cerr *client.Error) string {
	verdict := "WeTix has not accepted it yet"
	if cerr.Kind == client.KindInvalidClient {
		verdict = "WeTix rejected it"
	}
	return fmt.Sprintf("The client_secret written at %s is pending: %s (%s). Serving the access token obtained with the previous secret, which expires at %s; the plugin keeps trying the new one. If it is wrong, write the right one: vault write <mount>/config client_secret=...",
		cfg.SecretChangedAt.UTC().Format(time.RFC3339), verdict, cerr.Error(), st.AccessExpiresAt.UTC().Format(time.RFC3339))
}

// operatorError turns a grant failure into what an operator can act on.
func operatorError(cerr *client.Error) error {
	switch cerr.Kind {
	case client.KindInvalidClient:
		return fmt.Errorf("WeTix rejected the client credentials (%s). Fix them with `vault write <mount>/config client_id=... client_secret=...`", cerr.Error())
	case client.KindPermanent:
		return fmt.Errorf("WeTix refused the token request (%s). Check the OAuth URL with `vault read <mount>/config` (environment, base_url)", cerr.Error())
	case client.KindRejected:
		return fmt.Errorf("WeTix rejected the client-credentials grant as if it were a bad refresh token (%s). Check the OAuth URL with `vault read <mount>/config`", cerr.Error())
	case client.KindUntrusted:
		return fmt.Errorf("%s. Check that base_url (`vault read <mount>/config`) names WeTix's OAuth server; if a private CA or an intercepting proxy signs its certificate, give the plugin that CA: register the plugin again with `vault plugin register -env SSL_CERT_FILE=<CA bundle> ...` and reload it (docs/network.md), or add the CA to the system CA store of every Vault node", cerr.Error())
	default:
		return fmt.Errorf("WeTix is unavailable (%s) and the current access token cannot be served; try again later, `vault read <mount>/status` shows the last error", cerr.Error())
	}
}

// storageErr marks a failure to persist tokens, so that it is never
// mistaken for an upstream failure.
type storageErr struct {
	err error
	// kept: a new pair exists only in memory and is stored first on the
	// next attempt.
	kept bool
}

func (e *storageErr) Error() string {
	if e.kept {
		return "storing the new WeTix tokens failed (they are kept in memory and stored first on the next attempt): " + e.err.Error()
	}
	return "storing the WeTix token state failed before WeTix was called; nothing was sent, try again: " + e.err.Error()
}
func (e *storageErr) Unwrap() error { return e.err }

func storageError(err error, kept bool) error {
	if errors.Is(err, logical.ErrReadOnly) {
		return logical.ErrReadOnly
	}
	return &storageErr{err: err, kept: kept}
}

// errorKind names a failure for status, so advice does not depend on
// WeTix's wording.
func errorKind(err error) string {
	var serr *storageErr
	if errors.As(err, &serr) {
		return "storage"
	}
	if cerr, ok := client.AsError(err); ok {
		return cerr.Kind.String()
	}
	return "other"
}
