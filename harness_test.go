package wetix

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// flakyStorage fails Put on demand, to model a storage outage after WeTix
// has already rotated the refresh token; hook can block or fail any single
// operation, to place an interleaving exactly.
type flakyStorage struct {
	logical.Storage
	failPuts atomic.Bool
	puts     atomic.Int64

	hookMu sync.Mutex
	hook   func(op, key string) error
}

var errStorageDown = errors.New("storage backend unavailable")

// setHook runs fn on every Get, Put and Delete; its error fails the
// operation. nil removes it.
func (s *flakyStorage) setHook(fn func(op, key string) error) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.hook = fn
}

func (s *flakyStorage) runHook(op, key string) error {
	s.hookMu.Lock()
	fn := s.hook
	s.hookMu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(op, key)
}

// Get runs the hook after reading, so a hook that blocks holds a read that
// already has its (soon stale) answer.
func (s *flakyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := s.Storage.Get(ctx, key)
	if herr := s.runHook("get", key); herr != nil {
		return nil, herr
	}
	return e, err
}

func (s *flakyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := s.runHook("put", e.Key); err != nil {
		return err
	}
	if s.failPuts.Load() {
		return errStorageDown
	}
	s.puts.Add(1)
	return s.Storage.Put(ctx, e)
}

func (s *flakyStorage) Delete(ctx context.Context, key string) error {
	if err := s.runHook("delete", key); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

type harness struct {
	t       *testing.T
	b       *backend
	storage *flakyStorage
	clock   *wetixtest.Clock // shared by the backend and the emulator: tests move time instead of sleeping
	wetix   *wetixtest.Server
	logs    *logCapture
}

type harnessOption func(*wetixtest.Options)

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	clock := wetixtest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	wopts := wetixtest.Options{
		ClientID:     "client-1",
		ClientSecret: "s3cret-client-secret-value",
		AccessTTL:    time.Hour,
		RefreshTTL:   24 * time.Hour,
		Now:          clock.Now,
	}
	for _, o := range opts {
		o(&wopts)
	}
	srv := wetixtest.New(wopts)
	t.Cleanup(srv.Close)

	logs := &logCapture{}
	storage := &flakyStorage{Storage: &logical.InmemStorage{}}
	b := newTestBackend(t, clock, logs, logical.TestSystemView(), storage)
	return &harness{t: t, b: b, storage: storage, clock: clock, wetix: srv, logs: logs}
}

// newTestBackend builds a backend with test-sized retries and no cooldown,
// logging into logs, as Vault would set it up with the given system view.
func newTestBackend(t *testing.T, clock *wetixtest.Clock, logs *logCapture, sys logical.SystemView, storage logical.Storage) *backend {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	b := newBackend(logger, clock.Now)
	b.tokens.failureCooldown = 0
	b.tokens.outageGrace = 200 * time.Millisecond
	b.tokens.retry = retryPolicy{attempts: 4, base: 5 * time.Millisecond, max: 3 * time.Second, budget: 20 * time.Second}
	conf := logical.TestBackendConfig()
	conf.Logger = logger
	conf.System = sys
	conf.StorageView = storage // as Vault gives it: the storage of every request
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	h.t.Helper()
	return h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   h.storage,
	})
}

// configure writes a valid config pointing at the emulator, plus extra fields.
func (h *harness) configure(extra map[string]interface{}) {
	h.t.Helper()
	data := map[string]interface{}{
		"client_id":     "client-1",
		"client_secret": "s3cret-client-secret-value",
		"base_url":      h.wetix.URL(),
	}
	for k, v := range extra {
		data[k] = v
	}
	resp, err := h.request(logical.CreateOperation, "config", data)
	if err != nil || resp.IsError() {
		h.t.Fatalf("config write: resp=%v err=%v", resp, err)
	}
}

// readToken reads the token path and fails the test on any error.
func (h *harness) readToken() *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if err != nil || resp.IsError() {
		h.t.Fatalf("token read: resp=%v err=%v", resp, err)
	}
	return resp
}

func (h *harness) stored() *tokenState {
	h.t.Helper()
	st, err := readTokenState(context.Background(), h.storage.Storage)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) calls() (clientCredentials, refresh int) {
	return h.wetix.Calls(wetixtest.GrantClientCredentials), h.wetix.Calls(wetixtest.GrantRefresh)
}

func (h *harness) wantCalls(clientCredentials, refresh int) {
	h.t.Helper()
	cc, rf := h.calls()
	if cc != clientCredentials || rf != refresh {
		h.t.Fatalf("upstream calls: client_credentials=%d refresh=%d, want %d and %d", cc, rf, clientCredentials, refresh)
	}
}

// logCapture collects the plugin's log output so tests can look for leaks.
type logCapture struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// statusServedUntil is status's served_until, as text and as a time.
func (h *harness) statusServedUntil() (string, time.Time) {
	h.t.Helper()
	raw, _ := h.status()["served_until"].(string)
	until, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		h.t.Fatalf("served_until %q: %v", raw, err)
	}
	return raw, until
}

// halfFailedConfigDelete deletes the config while deleting the tokens entry
// fails: the config is gone, its tokens entry left behind, and the delete
// answers an error. keepFailing leaves tokens deletes failing afterwards.
func (h *harness) halfFailedConfigDelete(keepFailing bool) {
	h.t.Helper()
	h.storage.setHook(func(op, key string) error {
		if op == "delete" && key == tokensStoragePath {
			return errStorageDown
		}
		return nil
	})
	if r, err := h.request(logical.DeleteOperation, "config", nil); errText(r, err) == "" {
		h.t.Fatal("scenario: want the config delete's second step (the tokens entry) to fail")
	}
	if !keepFailing {
		h.storage.setHook(nil)
	}
}
