package wetix

// Tests from the review of the signing feature (issue 10,
// /work/notes/review-signing.md), named after the behaviour they hold.

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

func (h *harness) readData(path string) map[string]interface{} {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, path, nil)
	if err != nil {
		h.t.Fatalf("read %s: %v", path, err)
	}
	if resp == nil {
		return nil
	}
	return resp.Data
}

// TestSigningKeyInterruptedPromoteKeepsPrevious (review finding 2)
// Scenario: A signs, B was promoted over it (previous = A), C waits in next.
// The operator promotes C, and storage fails the write. Expected: the state
// reads as before (signing B, next C, previous A: rollback to A still
// possible once C is dealt with), and a retry does the promote. With three
// entries, a failure after the first write read as signing B, next C and
// previous gone; the keys now live in one entry, written once per step.
func TestSigningKeyInterruptedPromoteKeepsPrevious(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	a := h.mustWrite("signing-key", nil).Data["fingerprint"]
	b := h.mustWrite("signing-key/next", nil).Data["fingerprint"]
	h.mustWrite("signing-key/promote", nil)
	c := h.mustWrite("signing-key/next", nil).Data["fingerprint"]

	before := h.readData("signing-key")
	if before["fingerprint"] != b || before["next_fingerprint"] != c || before["previous_fingerprint"] != a {
		t.Fatalf("setup: %v", before)
	}

	writes := h.countWrites(true)
	resp, err := h.request(logical.UpdateOperation, "signing-key/promote", nil)
	h.storage.setHook(nil)
	if err == nil && !resp.IsError() {
		t.Fatal("the promote succeeded with its write failing")
	}
	if writes.Load() != 1 {
		t.Errorf("the promote tried %d writes; want 1", writes.Load())
	}
	h.b.signing.dropCache()
	got := h.readData("signing-key")
	if got["fingerprint"] != b || got["next_fingerprint"] != c || got["previous_fingerprint"] != a {
		t.Fatalf("an interrupted promote does not read as not done: signing %v, next %v, previous %v; want B=%v, C=%v, A=%v",
			got["fingerprint"], got["next_fingerprint"], got["previous_fingerprint"], b, c, a)
	}
	h.wantSignedBy(b)
	after := h.mustWrite("signing-key/promote", nil).Data
	if after["fingerprint"] != c || after["next_fingerprint"] != "" || after["previous_fingerprint"] != b {
		t.Fatalf("the retried promote: %v", after)
	}
}

// TestSigningKeyDeleteLeavesNoKey (review finding 3)
// Scenario: A signs, B waits; a promote fails, its retry succeeds (B signs,
// previous A, no next); the operator then deletes signing-key ("deletes the
// signing key and the previous one"). Expected: signing-key/next reads as
// it did just before the delete (empty), and no key entry is left in
// storage. With three entries, a leftover next entry equal to B resurfaced
// as a waiting key that a promote would put back in service.
func TestSigningKeyDeleteLeavesNoKey(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.mustWrite("signing-key", nil)
	b := h.mustWrite("signing-key/next", nil).Data["fingerprint"]

	h.countWrites(true)
	h.request(logical.UpdateOperation, "signing-key/promote", nil)
	h.storage.setHook(nil)
	h.b.signing.dropCache()
	h.mustWrite("signing-key/promote", nil)
	if got := h.readData("signing-key"); got["fingerprint"] != b || got["next_fingerprint"] != "" {
		t.Fatalf("setup: after the retried promote: %v", got)
	}
	if next := h.readData("signing-key/next"); next != nil {
		t.Fatalf("setup: next reads %v before the delete", next["fingerprint"])
	}

	if resp, err := h.request(logical.DeleteOperation, "signing-key", nil); err != nil || resp.IsError() {
		t.Fatalf("delete: %v %v", resp, err)
	}
	h.b.signing.dropCache()
	if next := h.readData("signing-key/next"); next != nil {
		t.Fatalf("after deleting signing-key, %v waits as signing-key/next (it was not there before the delete)", next["fingerprint"])
	}
	keys, _ := logical.CollectKeys(context.Background(), h.storage)
	if strings.Contains(strings.Join(keys, ","), "signing-key") {
		t.Fatalf("key entries left after the delete: %v", keys)
	}
}

// TestSigningKeyImportErrorsNameTheFix (review finding 5)
// Scenario: the operator imports key material under the wrong PEM label:
// a public key's body under "PRIVATE KEY" / "RSA PRIVATE KEY" (copying the
// wrong file's base64), or a PKCS#8 key labelled "RSA PRIVATE KEY".
// Expected (standards: "a clear error naming the field and the fix"): the
// error says what was given (a public key; a PKCS#8 key) and what to do,
// and carries no Go parser internals (the review saw "asn1: structure error:
// tags don't match ...", "integer too large", and "(use
// ParsePKCS8PrivateKey instead for this key format)"). The mislabelled
// PKCS#8 key is now accepted (TestSigningKeyImport pins that).
func TestSigningKeyImportErrorsNameTheFix(t *testing.T) {
	_, key := testSigningKeyPEM(t)
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	pkix, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	h := newHarness(t)
	for _, c := range []struct {
		name, pem string
		wants     []string
	}{
		{"public key under PRIVATE KEY", pemOf("PRIVATE KEY", pkix), []string{"public key"}},
		{"PKCS#1 public key under RSA PRIVATE KEY", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PublicKey(&key.PublicKey)), []string{"public key"}},
		{"PKCS#8 key under RSA PRIVATE KEY", pemOf("RSA PRIVATE KEY", pkcs8), []string{"PKCS#8", "BEGIN PRIVATE KEY"}},
	} {
		resp, _ := h.request(logical.UpdateOperation, "signing-key", map[string]interface{}{"private_key": c.pem})
		if resp == nil || !resp.IsError() {
			// Accepting the mislabelled PKCS#8 key would be fine too.
			if c.name == "PKCS#8 key under RSA PRIVATE KEY" {
				h.request(logical.DeleteOperation, "signing-key", nil)
				continue
			}
			t.Fatalf("%s: accepted", c.name)
		}
		msg := resp.Error().Error()
		for _, internal := range []string{"asn1:", "Parse", "{class:", "integer too large"} {
			if strings.Contains(msg, internal) {
				t.Errorf("%s: error shows parser internals (%q): %s", c.name, internal, msg)
				break
			}
		}
		for _, w := range c.wants {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error does not say %q: %s", c.name, w, msg)
			}
		}
	}
}

// TestSignObjectAndStringSameDepthLimit (review finding 6)
// Scenario: the same input, 64 objects deep, sent as a JSON string and as a
// JSON object. Expected: both signed alike (a string and an object are two
// encodings of the same input), and one level deeper both refused. The
// review saw the object form count the innermost scalar as a level and
// refuse what the string form took. The scalar is a string: an object input
// holding a number is refused anyway (finding 4).
func TestSignObjectAndStringSameDepthLimit(t *testing.T) {
	h := signHarness(t)
	for _, levels := range []int{signature.MaxDepth, signature.MaxDepth + 1} {
		text := strings.Repeat(`{"a":`, levels) + `"x"` + strings.Repeat("}", levels)
		var obj interface{}
		if err := json.Unmarshal([]byte(text), &obj); err != nil {
			t.Fatal(err)
		}
		var hashes []interface{}
		for _, in := range []interface{}{text, obj} {
			resp, err := h.request(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "createMovieOrder", "input": in, "timestamp": 1634638112})
			switch {
			case levels > signature.MaxDepth && (resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "nested deeper")):
				t.Errorf("%d levels (%T): %v %v; want refused as nested too deep", levels, in, resp, err)
			case levels <= signature.MaxDepth && (err != nil || resp.IsError()):
				t.Errorf("%d levels (%T) refused: %v %v", levels, in, resp, err)
			case levels <= signature.MaxDepth:
				hashes = append(hashes, resp.Data["hash"])
			}
		}
		if len(hashes) == 2 && hashes[0] != hashes[1] {
			t.Errorf("%d levels: the string and the object sign differently", levels)
		}
	}
}

// TestSigningSignDuringHandover: apps sign continuously while the operator
// promotes and rolls back; no sign fails, each verifies under one of the two
// keys, and a sign started after a promote or rollback returned uses the key
// it made current (no stale cache).
func TestSigningSignDuringHandover(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	pubOf := map[string]*rsa.PublicKey{}
	for _, p := range []string{"signing-key", "signing-key/next"} {
		h.mustWrite(p, nil)
		k, err := h.b.signing.keys(context.Background(), h.storage)
		if err != nil {
			t.Fatal(err)
		}
		for _, sk := range []*signingKey{k.current, k.next} {
			if sk != nil {
				pubOf[sk.fingerprint] = &sk.key.PublicKey
			}
		}
	}
	sign := func() (*logical.Response, error) {
		return h.request(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"referenceId":"r"}`, "include_plaintext": true})
	}
	verifiesWith := func(resp *logical.Response) string {
		for fp, pub := range pubOf {
			if signature.Verify(pub, []byte(resp.Data["plaintext"].(string)), resp.Data["hash"].(string)) == nil {
				return fp
			}
		}
		return ""
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var signs atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := sign()
				if err != nil || resp.IsError() {
					t.Errorf("a sign failed during the handover: %v %v", resp, err)
					return
				}
				if verifiesWith(resp) == "" {
					t.Error("a signature verifies under neither key")
					return
				}
				signs.Add(1)
			}
		}()
	}
	for i := 0; i < 20 && !t.Failed(); i++ {
		op := "signing-key/promote"
		if i%2 == 1 {
			op = "signing-key/rollback"
		}
		now := h.mustWrite(op, nil).Data["fingerprint"].(string)
		resp, err := sign()
		if err != nil || resp.IsError() {
			t.Fatalf("sign after %s: %v %v", op, resp, err)
		}
		if got := verifiesWith(resp); got != now {
			t.Fatalf("a sign after %s returned is made with %s, want %s", op, got, now)
		}
	}
	close(stop)
	wg.Wait()
	if signs.Load() == 0 {
		t.Fatal("no sign ran concurrently; the test proves nothing")
	}
}
