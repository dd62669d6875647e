package wetix

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

type failingStorage struct {
	logical.Storage
	countdown atomic.Int64
}

func (s *failingStorage) fail() bool { return s.countdown.Add(-1) == 0 }

func (s *failingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.fail() {
		return errStorageDown
	}
	return s.Storage.Put(ctx, e)
}

func (s *failingStorage) Delete(ctx context.Context, k string) error {
	if s.fail() {
		return errStorageDown
	}
	return s.Storage.Delete(ctx, k)
}

func TestSigningKeyInterruptedHandover(t *testing.T) {
	for _, op := range []string{"promote", "rollback"} {
		for n := int64(1); n <= 3; n++ {
			t.Run(fmt.Sprintf("%s-write-%d", op, n), func(t *testing.T) {
				h := newHarness(t)
				fs := &failingStorage{Storage: h.storage.Storage}
				h.storage.Storage = fs
				h.configure(nil)
				a := h.mustWrite("signing-key", nil).Data["fingerprint"]
				b := h.mustWrite("signing-key/next", nil).Data["fingerprint"]
				before, after := a, b
				if op == "rollback" {
					h.mustWrite("signing-key/promote", nil)
					before, after = b, a
				}
				fs.countdown.Store(n)
				resp, err := h.request(logical.UpdateOperation, "signing-key/"+op, nil)
				if err == nil && !resp.IsError() {
					t.Fatalf("write %d did not fail", n)
				}
				h.b.signing.dropCache()
				fp := h.fingerprint("signing-key")
				if fp != before && fp != after {
					t.Fatalf("after the failure, %s signs", fp)
				}
				h.wantSignedBy(fp)
				if fp == before {
					// Reads as not done: the retry does it.
					h.mustWrite("signing-key/"+op, nil)
				}
				cur, _ := h.request(logical.ReadOperation, "signing-key", nil)
				want := map[string]interface{}{"fingerprint": after, "next_fingerprint": "", "previous_fingerprint": before}
				if op == "rollback" {
					want = map[string]interface{}{"fingerprint": after, "next_fingerprint": before, "previous_fingerprint": ""}
				}
				for k, v := range want {
					if cur.Data[k] != v {
						t.Errorf("%s = %v, want %v", k, cur.Data[k], v)
					}
				}
			})
		}
	}
}

func TestSigningKeyConcurrentWrites(t *testing.T) {
	h := newHarness(t)
	const n = 8
	var wg sync.WaitGroup
	fps := make(chan string, n)
	var refused atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.request(logical.UpdateOperation, "signing-key/next", nil)
			switch {
			case err == nil && !resp.IsError():
				fps <- resp.Data["fingerprint"].(string)
			case resp != nil && resp.IsError() && strings.Contains(resp.Error().Error(), "never replaces"):
				refused.Add(1)
			default:
				t.Errorf("unexpected answer %v %v", resp, err)
			}
		}()
	}
	wg.Wait()
	close(fps)
	var won []string
	for fp := range fps {
		won = append(won, fp)
	}
	if len(won) != 1 || refused.Load() != n-1 {
		t.Fatalf("%d writes landed and %d were refused; want 1 and %d", len(won), refused.Load(), n-1)
	}
	if h.fingerprint("signing-key/next") != won[0] {
		t.Fatal("the stored key is not the one the successful write returned")
	}
}

func TestSigningKeySchemaVersion(t *testing.T) {
	for v, want := range map[int]string{2: "written by a newer version of this plugin", 0: "no schema_version"} {
		h := newHarness(t)
		h.mustWrite("signing-key", nil)
		e, _ := h.storage.Get(context.Background(), signingCurrentStoragePath)
		changed := strings.Replace(string(e.Value), `"schema_version":1`, fmt.Sprintf(`"schema_version":%d`, v), 1)
		h.storage.Put(context.Background(), &logical.StorageEntry{Key: signingCurrentStoragePath, Value: []byte(changed)})
		h.b.signing.dropCache()
		_, err := h.request(logical.ReadOperation, "signing-key", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("schema_version %d: err = %v, want %q", v, err, want)
		}
	}
}

func TestSigningKeyInvalidate(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.mustWrite("signing-key", nil)
	b := h.mustWrite("signing-key/next", nil).Data["fingerprint"]
	other := newTestBackend(t, h.clock, h.logs, logical.TestSystemView())
	key, err := other.signing.signer(context.Background(), h.storage)
	if err != nil {
		t.Fatal(err)
	}
	h.mustWrite("signing-key/promote", nil)
	if cached, _ := other.signing.signer(context.Background(), h.storage); cached != key {
		t.Fatal("the other node re-read storage without an invalidation (the cache is not used)")
	}
	for _, p := range signingStoragePaths {
		other.Invalidate(context.Background(), p)
	}
	if k, _ := other.signing.signer(context.Background(), h.storage); k.fingerprint != b {
		t.Fatalf("after invalidation the other node signs with %s, want %s", k.fingerprint, b)
	}
}
