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

// slotState names the keys in the three slots, current/next/previous,
// straight from storage ("-" for an empty slot).
func (h *harness) slotState() string {
	h.t.Helper()
	h.b.signing.dropCache()
	k, err := h.b.signing.keys(context.Background(), h.storage)
	if err != nil {
		h.t.Fatal(err)
	}
	fp := func(key *signingKey) string {
		if key == nil {
			return "-"
		}
		return key.fingerprint
	}
	return fp(k.current) + "/" + fp(k.next) + "/" + fp(k.previous)
}

// countWrites counts the storage writes (Put and Delete) from now on and,
// with fail, fails every one of them.
func (h *harness) countWrites(fail bool) *atomic.Int64 {
	var n atomic.Int64
	h.storage.setHook(func(op, _ string) error {
		if op == "get" {
			return nil
		}
		n.Add(1)
		if fail {
			return errStorageDown
		}
		return nil
	})
	return &n
}

// TestSigningKeyStepIsOneWrite: every step that changes the keys (generate
// or import into a slot, promote, rollback, delete of a slot) is exactly one
// storage write, so a step whose write fails reads as not done, with all
// three slots as they were; running it again does it.
func TestSigningKeyStepIsOneWrite(t *testing.T) {
	pkcs1, key := testSigningKeyPEM(t)
	imported := fingerprintOf(t, &key.PublicKey)
	// full: B signs, C waits, A is the previous key.
	full := func(h *harness) (a, b, c string) {
		a = h.mustWrite("signing-key", nil).Data["fingerprint"].(string)
		b = h.mustWrite("signing-key/next", nil).Data["fingerprint"].(string)
		h.mustWrite("signing-key/promote", nil)
		c = h.mustWrite("signing-key/next", nil).Data["fingerprint"].(string)
		return a, b, c
	}
	noNext := func(h *harness) (a, b, c string) {
		a, b, _ = full(h)
		if _, err := h.request(logical.DeleteOperation, "signing-key/next", nil); err != nil {
			t.Fatal(err)
		}
		return a, b, ""
	}
	empty := func(*harness) (a, b, c string) { return "", "", "" }
	for _, c := range []struct {
		name  string
		setup func(*harness) (a, b, c string)
		op    logical.Operation
		path  string
		data  map[string]interface{}
		after func(a, b, c, written string) string
	}{
		{"promote", full, logical.UpdateOperation, "signing-key/promote", nil, func(a, b, c, _ string) string { return c + "/-/" + b }},
		{"rollback", noNext, logical.UpdateOperation, "signing-key/rollback", nil, func(a, b, c, _ string) string { return a + "/" + b + "/-" }},
		{"delete next", full, logical.DeleteOperation, "signing-key/next", nil, func(a, b, c, _ string) string { return b + "/-/" + a }},
		{"delete signing-key", full, logical.DeleteOperation, "signing-key", nil, func(a, b, c, _ string) string { return "-/" + c + "/-" }},
		{"generate next", noNext, logical.UpdateOperation, "signing-key/next", nil, func(a, b, c, w string) string { return b + "/" + w + "/" + a }},
		{"import next", noNext, logical.UpdateOperation, "signing-key/next", map[string]interface{}{"private_key": pkcs1}, func(a, b, c, w string) string { return b + "/" + imported + "/" + a }},
		{"generate signing-key", empty, logical.UpdateOperation, "signing-key", nil, func(a, b, c, w string) string { return w + "/-/-" }},
		{"import signing-key", empty, logical.UpdateOperation, "signing-key", map[string]interface{}{"private_key": pkcs1}, func(a, b, c, w string) string { return imported + "/-/-" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.configure(nil)
			a, b, cc := c.setup(h)
			before := h.slotState()

			h.countWrites(true)
			resp, err := h.request(c.op, c.path, c.data)
			h.storage.setHook(nil)
			if err == nil && !resp.IsError() {
				t.Fatal("the step succeeded with every write failing")
			}
			if got := h.slotState(); got != before {
				t.Fatalf("a failed step changed the keys:\nbefore %s\nafter  %s", before, got)
			}
			if before != "-/-/-" {
				h.wantSignedBy(strings.Split(before, "/")[0])
			}

			writes := h.countWrites(false)
			resp, err = h.request(c.op, c.path, c.data)
			h.storage.setHook(nil)
			if err != nil || resp.IsError() {
				t.Fatalf("retry: %v %v", resp, err)
			}
			if n := writes.Load(); n != 1 {
				t.Errorf("the step made %d storage writes; want 1 (one write is what makes it atomic)", n)
			}
			written := ""
			if resp != nil && resp.Data != nil {
				written, _ = resp.Data["fingerprint"].(string)
			}
			if got, want := h.slotState(), c.after(a, b, cc, written); got != want {
				t.Fatalf("after the step: %s, want %s", got, want)
			}
		})
	}
}

// TestSigningKeyConcurrentWrites: of many simultaneous generates into one
// slot, exactly one lands and the others are refused.
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

// TestSigningKeySchemaVersion: an entry from a newer plugin is refused with
// the way forward; one without a version was not written by this plugin.
func TestSigningKeySchemaVersion(t *testing.T) {
	for v, want := range map[int]string{2: "written by a newer version of this plugin", 0: "no schema_version"} {
		h := newHarness(t)
		h.mustWrite("signing-key", nil)
		e, _ := h.storage.Get(context.Background(), signingKeysStoragePath)
		changed := strings.Replace(string(e.Value), `"schema_version":1`, fmt.Sprintf(`"schema_version":%d`, v), 1)
		if changed == string(e.Value) {
			t.Fatalf("the entry has no schema_version 1: %s", e.Value)
		}
		h.storage.Put(context.Background(), &logical.StorageEntry{Key: signingKeysStoragePath, Value: []byte(changed)})
		h.b.signing.dropCache()
		_, err := h.request(logical.ReadOperation, "signing-key", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("schema_version %d: err = %v, want %q", v, err, want)
		}
	}
}

// TestSigningKeyInvalidate: a node that cached the keys signs with the new
// one once Vault invalidates the entry another node wrote.
func TestSigningKeyInvalidate(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.mustWrite("signing-key", nil)
	b := h.mustWrite("signing-key/next", nil).Data["fingerprint"]
	other := newTestBackend(t, h.clock, h.logs, logical.TestSystemView(), h.storage)
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
