package vaulttest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// FailureCooldown is the plugin's failure cooldown (tokenSource.failureCooldown,
// set in backend.go): reads within it after a failed refresh answer from that
// failure without calling WeTix. The suites that run the real plugin wait it
// out; a root-package test keeps the two equal.
const FailureCooldown = 5 * time.Second

// StartWithPlugin runs a Vault server with the plugin built at PluginVersion
// into opts.PluginDir (a fresh temp dir when empty) and registered in the
// catalog, as an operator would do it. Under -short it skips the test.
func StartWithPlugin(tb testing.TB, opts Options) (*Server, Plugin) {
	tb.Helper()
	RequireLong(tb)
	if opts.PluginDir == "" {
		opts.PluginDir = tb.TempDir()
	}
	p := BuildPlugin(tb, opts.PluginDir, PluginVersion)
	s := Start(tb, opts)
	s.RegisterPlugin(p)
	return s, p
}

// Configure writes mount/config pointing at emu with the credentials it
// accepts (wetixtest.Server.MountConfig); extra adds fields or overrides them.
func Configure(tb testing.TB, c *api.Client, mount string, emu *wetixtest.Server, extra map[string]interface{}) {
	tb.Helper()
	if _, err := c.Logical().Write(mount+"/config", emu.MountConfig(extra)); err != nil {
		tb.Fatalf("writing %s/config: %v", mount, err)
	}
}

// TokenRead is one read of <mount>/token as an app sees it.
type TokenRead struct {
	Secret *api.Secret
	// Err is Vault's error answer, a transport error, a redirect the client
	// was told not to follow, or an empty answer.
	Err         error
	AccessToken string // "" when the answer carried none
	Warnings    []string
	Start, End  time.Time
}

// Elapsed is how long the read took.
func (r TokenRead) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// Token is the access token, or why there is none.
func (r TokenRead) Token() (string, error) {
	switch {
	case r.Err != nil:
		return "", r.Err
	case r.AccessToken == "":
		return "", fmt.Errorf("no access_token in %v", r.Secret.Data)
	}
	return r.AccessToken, nil
}

// ReadToken reads mount/token with c. It reads the raw answer, so that a
// standby's redirect (with a client that does not follow redirects) shows as
// an error rather than as an empty secret.
func ReadToken(c *api.Client, mount string) TokenRead {
	path := mount + "/token"
	r := TokenRead{Start: time.Now()}
	r.Secret, r.Err = readSecret(c, path)
	r.End = time.Now()
	if r.Err == nil && r.Secret == nil {
		r.Err = fmt.Errorf("%s: empty answer (no secret)", path)
	}
	if r.Err == nil {
		r.AccessToken, _ = r.Secret.Data["access_token"].(string)
		r.Warnings = r.Secret.Warnings
	}
	return r
}

func readSecret(c *api.Client, path string) (*api.Secret, error) {
	resp, err := c.Logical().ReadRaw(path)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" {
			return nil, fmt.Errorf("%s: HTTP %d to %s (the standby did not forward the request)", path, resp.StatusCode, loc)
		}
		if rerr := resp.Error(); rerr != nil {
			return nil, fmt.Errorf("%s: %w", path, rerr)
		}
		return nil, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	s, err := api.ParseSecret(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// MustReadToken reads mount/token and fails the test unless it served an
// access token; it returns the token and the secret around it.
func MustReadToken(tb testing.TB, c *api.Client, mount string) (string, *api.Secret) {
	tb.Helper()
	r := ReadToken(c, mount)
	tok, err := r.Token()
	if err != nil {
		tb.Fatalf("reading %s/token: %v", mount, err)
	}
	return tok, r.Secret
}

// WaitFor polls cond until it holds or d passes, and reports whether it held.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// Await is WaitFor that fails the test, naming what it waited for.
func Await(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !WaitFor(d, cond) {
		tb.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// ErrText is what the CLI would print for err: Vault's error strings.
func ErrText(err error) string {
	if err == nil {
		return ""
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return strings.Join(re.Errors, "; ")
	}
	return err.Error()
}

// LiveLeases counts the live leases of mount's token path, as an operator
// would: vault list sys/leases/lookup/<mount>/token/.
func LiveLeases(tb testing.TB, c *api.Client, mount string) int {
	tb.Helper()
	s, err := c.Logical().List("sys/leases/lookup/" + mount + "/token/")
	if err != nil {
		tb.Fatalf("LIST sys/leases/lookup/%s/token/: %v", mount, err)
	}
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]interface{})
	return len(keys)
}
