package reliability

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

const pluginVersion = "v0.1.0"

// cooldown is the plugin's failureCooldown (backend.go): reads within it
// after a failed refresh answer from that failure without calling WeTix.
const cooldown = 5 * time.Second

// vaultEnv is a real Vault server with the plugin registered in its catalog.
type vaultEnv struct {
	srv    *vaulttest.Server
	plugin vaulttest.Plugin
}

func startVault(t *testing.T, opts vaulttest.Options) *vaultEnv {
	t.Helper()
	vaulttest.RequireLong(t)
	opts.PluginDir = t.TempDir()
	p := vaulttest.BuildPlugin(t, opts.PluginDir, pluginVersion)
	srv := vaulttest.Start(t, opts)
	srv.RegisterPlugin(p)
	return &vaultEnv{srv: srv, plugin: p}
}

func (e *vaultEnv) client() *api.Client { return e.srv.Client }

// mount enables the plugin at path. Unlike Server.Mount it returns the error,
// so it can be called from any goroutine.
func (e *vaultEnv) mount(path string) error {
	return e.client().Sys().Mount(path, &api.MountInput{
		Type:   vaulttest.CatalogName,
		Config: api.MountConfigInput{PluginVersion: e.plugin.Version},
	})
}

// configure writes the mount's config pointing at the emulator.
func (e *vaultEnv) configure(mount string, em *wetixtest.Server, clientID, secret string, extra map[string]interface{}) error {
	data := map[string]interface{}{
		"client_id":     clientID,
		"client_secret": secret,
		"base_url":      em.URL(),
	}
	for k, v := range extra {
		data[k] = v
	}
	_, err := e.client().Logical().Write(mount+"/config", data)
	return err
}

// tokenRead is one read of <mount>/token as an app sees it.
type tokenRead struct {
	Secret      *api.Secret
	Err         error
	AccessToken string
	Warnings    []string
	Start, End  time.Time
}

func (r tokenRead) Elapsed() time.Duration { return r.End.Sub(r.Start) }

func (e *vaultEnv) readToken(mount string) tokenRead {
	r := tokenRead{Start: time.Now()}
	r.Secret, r.Err = e.client().Logical().Read(mount + "/token")
	r.End = time.Now()
	if r.Err == nil && r.Secret == nil {
		r.Err = errors.New("empty answer (no secret)")
	}
	if r.Err == nil {
		r.AccessToken, _ = r.Secret.Data["access_token"].(string)
		r.Warnings = r.Secret.Warnings
	}
	return r
}

// status reads <mount>/status.
func (e *vaultEnv) status(mount string) (map[string]interface{}, error) {
	s, err := e.client().Logical().Read(mount + "/status")
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("status: empty answer")
	}
	return s.Data, nil
}

// errText is what the CLI would print for err: Vault's error strings.
func errText(err error) string {
	if err == nil {
		return ""
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return strings.Join(re.Errors, "; ")
	}
	return err.Error()
}

// oneLine squeezes a multi-line Vault error into one line for tables.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "1 error occurred:", "")
	s = strings.Join(strings.Fields(s), " ")
	return strings.TrimPrefix(s, "* ")
}

func randomSuffix() string { return strings.ToLower(rand.Text()[:10]) }

// upstreamCalls is a snapshot of the emulator's counters.
type upstreamCalls struct{ cc, rf int }

func callsOf(em *wetixtest.Server) upstreamCalls {
	return upstreamCalls{em.Calls(wetixtest.GrantClientCredentials), em.Calls(wetixtest.GrantRefresh)}
}

func (a upstreamCalls) minus(b upstreamCalls) upstreamCalls {
	return upstreamCalls{a.cc - b.cc, a.rf - b.rf}
}
func (a upstreamCalls) total() int { return a.cc + a.rf }
func (a upstreamCalls) String() string {
	return fmt.Sprintf("%d refresh + %d client_credentials", a.rf, a.cc)
}

// waitStatus polls status until cond holds or the timeout passes.
func (e *vaultEnv) waitStatus(mount string, timeout time.Duration, cond func(map[string]interface{}) bool) (map[string]interface{}, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.status(mount)
		if err == nil && cond(st) {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("condition not met in %s; last status %v", timeout, st)
			}
			return st, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func boolField(m map[string]interface{}, k string) bool {
	b, _ := m[k].(bool)
	return b
}

func stringField(m map[string]interface{}, k string) string {
	s, _ := m[k].(string)
	return s
}

// intField reads a JSON number field (the api client decodes into json.Number).
func intField(m map[string]interface{}, k string) int64 {
	switch v := m[k].(type) {
	case interface{ Int64() (int64, error) }:
		n, _ := v.Int64()
		return n
	case float64:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	}
	return -1
}
