package wetix

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// Two OAuth URLs that never work, shared by every schedule: a closed port
// (connection refused, a transient failure) and an https server whose
// certificate nobody trusts (a configuration error).
var (
	badURLsOnce      sync.Once
	deadURL, tlsURL  string
	scheduleClientID = "client-1"
)

func badURLs() (dead, tls string) {
	badURLsOnce.Do(func() {
		// Port 1 is privileged and unused: a closed port that no later
		// emulator can be handed, unlike a released ephemeral one.
		deadURL = "http://127.0.0.1:1"
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "should never be reached: the certificate is untrusted", http.StatusTeapot)
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // every handshake fails, by design
		srv.StartTLS()
		tlsURL = srv.URL // lives for the whole test binary
	})
	return deadURL, tlsURL
}

// world is one schedule's universe: a clock, WeTix, storage, and the
// backend of the moment.
type world struct {
	t       *testing.T
	sch     schedule
	clock   *wetixtest.Clock
	wetix   *wetixtest.Server
	storage *faultyStorage
	logs    *logCapture
	b       *backend
	m       model
	secrets map[string]string
	upLog   *logCapture // WeTix's view of each call: grant, status, fault
	checked int         // steps checked, probes included
	// blurAfter: the step's effect on the cooldown is unknown (a burst).
	blurAfter bool
	// held are leases plain reads were given, as Vault keeps them, for
	// renewal steps.
	held []heldLease
	// counters are the metrics' counter samples after the previous step
	// (invariant 8).
	counters map[string]float64
}

func newWorld(t *testing.T, sch schedule) *world {
	clock := wetixtest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	w := &world{
		t:       t,
		sch:     sch,
		clock:   clock,
		storage: newFaultyStorage(),
		logs:    &logCapture{},
		secrets: map[string]string{},
		upLog:   &logCapture{},
	}
	for _, l := range []string{"A", "B", "C"} {
		w.secrets[l] = fmt.Sprintf("secret-%s-%d-vR9xq", l, sch.Seed)
	}
	w.wetix = wetixtest.New(wetixtest.Options{
		ClientID:     scheduleClientID,
		ClientSecret: w.secrets["A"],
		AccessTTL:    sch.Params.AccessTTL,
		RefreshTTL:   sch.Params.RefreshTTL,
		Now:          clock.Now,
		OnRequest: func(ri wetixtest.RequestInfo) {
			fmt.Fprintf(w.upLog, "%s %s status=%d fault=%s\n", ri.Path, ri.Grant, ri.Status, ri.Fault)
		},
	})
	w.m.wetixSecret = "A"
	w.startBackend()
	return w
}

func (w *world) close() {
	w.b.Cleanup(context.Background())
	w.wetix.Close()
}

// startBackend builds a backend on the shared storage with knobs sized for
// fast schedules.
func (w *world) startBackend() {
	w.logs = &logCapture{} // one backend's logs at a time keeps memory flat
	b := newTestBackend(w.t, w.clock, w.logs, logical.TestSystemView(), w.storage)
	b.tokens.failureCooldown = scheduleCooldown
	// Long enough that a read waiting on a retry during an outage always
	// gets that retry's verdict (a round takes well under a second here),
	// so the answer does not depend on scheduling.
	b.tokens.outageGrace = 3 * time.Second
	b.tokens.retry = retryPolicy{attempts: scheduleAttempts, base: time.Millisecond, max: retryCap, budget: 10 * time.Second}
	clock := w.clock
	b.tokens.newClient = func(cfg *wetixConfig) grantClient {
		return client.New(client.Config{
			BaseURL:      cfg.oauthURL(),
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Timeout:      scheduleClientTimeout,
			Now:          clock.Now,
		})
	}
	w.b = b
}

// settle waits for refreshes running without a caller, so that checks see
// a quiet system.
func (w *world) settle() { w.b.tokens.background.Wait() }

func (w *world) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	return w.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   w.storage,
	})
}

func (w *world) tick() error {
	_, err := w.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: w.storage})
	return err
}

func (w *world) view() storedView {
	v, err := readView(w.storage.inner)
	if err != nil {
		panic("reading the schedule's own storage: " + err.Error())
	}
	return v
}

func (w *world) urlOf(label string) string {
	dead, tls := badURLs()
	switch label {
	case "dead":
		return dead
	case "tls":
		return tls
	}
	return w.wetix.URL()
}

func (w *world) labelOfURL(u string) string {
	dead, tls := badURLs()
	switch u {
	case dead:
		return "dead"
	case tls:
		return "tls"
	}
	return "emu"
}

func (w *world) labelOfSecret(s string) string {
	for l, v := range w.secrets {
		if v == s {
			return l
		}
	}
	return "?"
}

// env is what a refresh round would meet now.
func (w *world) env(v storedView) roundEnv {
	if v.cfg == nil {
		return roundEnv{}
	}
	c := v.credential()
	now := w.clock.Now()
	return roundEnv{
		url:         w.labelOfURL(v.cfg.BaseURL),
		secretOK:    w.labelOfSecret(v.cfg.ClientSecret) == w.m.wetixSecret,
		usable:      c.refresh != "" && !c.refreshSent && (c.refreshExpires.IsZero() || now.Before(c.refreshExpires)),
		refreshLive: c.refresh != "" && w.wetix.IsRefreshTokenLive(c.refresh),
	}
}

// configData turns a cfgWrite into request fields for the current config.
func (w *world) configData(c cfgWrite, v storedView) map[string]interface{} {
	creating := v.cfg == nil
	d := map[string]interface{}{}
	if creating {
		d["client_id"] = scheduleClientID
		d["client_secret"] = w.secrets["A"]
		d["base_url"] = w.wetix.URL()
	}
	newGen := creating
	if c.Secret != "" {
		d["client_secret"] = w.secrets[c.Secret]
		newGen = newGen || v.cfg.ClientSecret != w.secrets[c.Secret]
	}
	if c.URL != "" {
		d["base_url"] = w.urlOf(c.URL)
		newGen = newGen || v.cfg.BaseURL != w.urlOf(c.URL)
	}
	if c.TTL != 0 {
		d["ttl"] = c.TTL
	}
	switch c.Seed {
	case "fresh":
		d["refresh_token"] = w.wetix.SeedRefreshToken()
	case "same":
		// Only the seed the config already holds, and only when nothing
		// else starts a new generation: anything else would hand the
		// plugin a token it may have spent, which is the operator's
		// replay, not the plugin's.
		if !newGen && v.cfg != nil && v.cfg.Seed != "" {
			d["refresh_token"] = v.cfg.Seed
		}
	}
	if c.SyncWeTix && c.Secret != "" {
		w.wetix.SetClientSecret(w.secrets[c.Secret])
		w.m.wetixSecret = c.Secret
	}
	return d
}

func (w *world) writeConfig(c cfgWrite) (*logical.Response, error) {
	v := w.view()
	var op logical.Operation = logical.UpdateOperation
	if v.cfg == nil {
		op = logical.CreateOperation
	}
	return w.request(op, "config", w.configData(c, v))
}
