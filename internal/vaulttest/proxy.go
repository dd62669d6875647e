package vaulttest

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// ProxyOptions shape a Vault Proxy.
type ProxyOptions struct {
	// LogLevel defaults to "info". Proxy logs every request it receives at
	// info, which costs it CPU under load: a load test wants "warn".
	LogLevel string
}

// Proxy is a running `vault proxy` with a caching API proxy in front of one
// Vault server.
type Proxy struct {
	*Daemon
	Addr string // http://127.0.0.1:port, where apps send their requests
}

// StartProxy runs `vault proxy` against s as an operator sets it up for
// apps: auto-auth with token (a token_file method), `cache {}` (leased
// dynamic secrets of the auto-auth token are cached and renewed),
// `api_proxy { use_auto_auth_token = "force" }` (every request goes to Vault
// with the auto-auth token, whatever token header the app sends or omits)
// and a plain-HTTP listener on a free loopback port. It returns once a
// request through the Proxy is answered with the auto-auth token; the Proxy
// is killed when the test ends.
func StartProxy(tb testing.TB, s *Server, token string, opts ProxyOptions) *Proxy {
	tb.Helper()
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	dir := tb.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	conf := fmt.Sprintf(`log_level = %q
vault { address = %q }
%scache {}
api_proxy { use_auto_auth_token = "force" }
listener "tcp" {
  address     = %q
  tls_disable = true
}
`, opts.LogLevel, s.Addr, TokenFileAutoAuth(WriteTokenFile(tb, dir, token)), addr)
	p := &Proxy{Daemon: StartDaemon(tb, "proxy", dir, conf), Addr: "http://" + addr}
	p.awaitAutoAuth(tb)
	return p
}

// awaitAutoAuth waits until a request without a token, sent through the
// Proxy, is answered as the auto-auth token: until then the Proxy forwards
// it with no token and Vault answers 403.
func (p *Proxy) awaitAutoAuth(tb testing.TB) {
	tb.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			tb.Fatalf("vault proxy exited while starting; log:\n%s", p.Log())
		}
		resp, err := c.Get(p.Addr + "/v1/auth/token/lookup-self")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("vault proxy at %s did not answer with its auto-auth token in 30s (last: %s); log:\n%s", p.Addr, last, p.Log())
}
