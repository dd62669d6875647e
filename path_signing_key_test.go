package wetix

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

// testSigningKeyPEM is signature/testdata's throwaway key (PKCS#1).
func testSigningKeyPEM(t *testing.T) (string, *rsa.PrivateKey) {
	t.Helper()
	return signaturetest.Key(t)
}

func fingerprintOf(t *testing.T, pub *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// storageSnapshot copies every entry, to show a refused write changed
// nothing.
func storageSnapshot(t *testing.T, s logical.Storage) map[string]string {
	t.Helper()
	keys, err := logical.CollectKeys(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		e, err := s.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = string(e.Value)
	}
	return out
}

func (h *harness) mustWrite(path string, data map[string]interface{}) *logical.Response {
	h.t.Helper()
	resp, err := h.request(logical.UpdateOperation, path, data)
	if err != nil || resp.IsError() {
		h.t.Fatalf("write %s: resp=%v err=%v", path, resp, err)
	}
	return resp
}

// wantRefused checks an error response that mentions each of wants, and
// that storage did not change.
func (h *harness) wantRefused(op logical.Operation, path string, data map[string]interface{}, wants ...string) string {
	h.t.Helper()
	before := storageSnapshot(h.t, h.storage)
	resp, err := h.request(op, path, data)
	if resp == nil || !resp.IsError() {
		h.t.Fatalf("%s %s: want an error response, got %v (err %v)", op, path, resp, err)
	}
	msg := resp.Error().Error()
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			h.t.Errorf("%s %s: error %q does not mention %q", op, path, msg, w)
		}
	}
	if after := storageSnapshot(h.t, h.storage); !reflect.DeepEqual(before, after) {
		h.t.Errorf("%s %s: a refused write changed storage", op, path)
	}
	return msg
}

func (h *harness) fingerprint(path string) string {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp == nil {
		return ""
	}
	return resp.Data["fingerprint"].(string)
}

func TestSigningKeyGenerateReadDelete(t *testing.T) {
	h := newHarness(t)
	resp, err := h.request(logical.CreateOperation, "signing-key", nil)
	if err != nil || resp.IsError() {
		t.Fatalf("generate: %v %v", resp, err)
	}
	block, _ := pem.Decode([]byte(resp.Data["public_key"].(string)))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public_key is not a PEM PUBLIC KEY: %q", resp.Data["public_key"])
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := pub.(*rsa.PublicKey)
	if resp.Data["key_bits"] != 2048 || rsaPub.N.BitLen() != 2048 {
		t.Errorf("key_bits = %v, modulus %d; want 2048 by default", resp.Data["key_bits"], rsaPub.N.BitLen())
	}
	if resp.Data["fingerprint"] != fingerprintOf(t, rsaPub) || resp.Data["source"] != "generated" {
		t.Errorf("fingerprint/source = %v/%v", resp.Data["fingerprint"], resp.Data["source"])
	}
	if resp.Data["created_at"] != h.clock.Now().UTC().Format("2006-01-02T15:04:05Z") {
		t.Errorf("created_at = %v", resp.Data["created_at"])
	}
	for k, v := range resp.Data {
		if s, ok := v.(string); ok && strings.Contains(s, "PRIVATE") {
			t.Errorf("field %s carries private material", k)
		}
	}
	read, _ := h.request(logical.ReadOperation, "signing-key", nil)
	if !reflect.DeepEqual(read.Data["public_key"], resp.Data["public_key"]) {
		t.Error("read returns another public key than the write")
	}
	entry, _ := h.storage.Get(context.Background(), signingKeysStoragePath)
	if entry == nil || !strings.Contains(string(entry.Value), `"schema_version":1`) {
		t.Fatalf("stored entry: %v", entry)
	}

	// The key signs, and the signature verifies with the public key read.
	h.configure(nil)
	sig := h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"a":1}`, "include_plaintext": true})
	if err := signature.Verify(rsaPub, []byte(sig.Data["plaintext"].(string)), sig.Data["hash"].(string)); err != nil {
		t.Fatalf("signature does not verify with the read public key: %v", err)
	}

	if resp, err := h.request(logical.DeleteOperation, "signing-key", nil); err != nil || resp.IsError() {
		t.Fatalf("delete: %v %v", resp, err)
	}
	if fp := h.fingerprint("signing-key"); fp != "" {
		t.Fatal("key still readable after delete")
	}
	if keys, _ := logical.CollectKeys(context.Background(), h.storage); strings.Contains(strings.Join(keys, ","), "signing-key") {
		t.Fatalf("entries left after delete: %v", keys)
	}
	h.wantRefused(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{}`}, "no signing key", "vault write -f <mount>/signing-key")
}

func TestSigningKeyBits(t *testing.T) {
	h := newHarness(t)
	resp := h.mustWrite("signing-key/next", map[string]interface{}{"key_bits": 3072})
	if resp.Data["key_bits"] != 3072 {
		t.Fatalf("key_bits = %v", resp.Data["key_bits"])
	}
	for _, bits := range []interface{}{1024, 1000, 8192, "lots"} {
		h.wantRefused(logical.UpdateOperation, "signing-key", map[string]interface{}{"key_bits": bits}, "key_bits")
	}
}

func TestSigningKeyImport(t *testing.T) {
	pkcs1, key := testSigningKeyPEM(t)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	// Mislabelled exports: the bytes, not the header, say which format it is.
	pkcs8AsRSA := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
	pkcs1AsPKCS8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	for name, text := range map[string]string{
		"pkcs1": pkcs1, "pkcs8": pkcs8, "pkcs8-padded": "\n\n  " + pkcs8 + "\n  ",
		"pkcs8-labelled-rsa": pkcs8AsRSA, "pkcs1-labelled-pkcs8": pkcs1AsPKCS8,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			resp := h.mustWrite("signing-key", map[string]interface{}{"private_key": text})
			// The README's check: openssl pkey -pubin -in public.pem -outform DER | sha256sum
			const opensslFingerprint = "04e97ae15a864738ffacd393619b2693490ad4baebd59933e7fee79ac183a28f"
			if resp.Data["fingerprint"] != opensslFingerprint || resp.Data["source"] != "imported" {
				t.Fatalf("imported key reads as %v", resp.Data)
			}
			// Signing with the imported key gives the golden signature.
			h.configure(nil)
			v := signaturetest.Named(t, "nested-objects-in-arrays-sorted")
			sig := h.mustWrite("sign", map[string]interface{}{"mutation": v.Mutation, "input": v.Input, "timestamp": v.Timestamp})
			if sig.Data["hash"] != v.Signature {
				t.Fatalf("hash %v, want the golden %v", sig.Data["hash"], v.Signature)
			}
		})
	}
}

func TestSigningKeyImportRefused(t *testing.T) {
	pkcs1, rsaKey := testSigningKeyPEM(t)
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(ed)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	block, _ := pem.Decode([]byte(pkcs1))
	body := strings.Split(pkcs1, "\n")[5] // a line of key material, to look for in errors
	corrupt := pemOf("RSA PRIVATE KEY", block.Bytes[:len(block.Bytes)-40])

	h := newHarness(t)
	h.mustWrite("signing-key", nil) // refused imports must leave this key alone
	fp := h.fingerprint("signing-key")
	for _, c := range []struct {
		name  string
		data  map[string]interface{}
		wants []string
	}{
		{"not-pem", map[string]interface{}{"private_key": "MIIEowIBAAKCAQEA" + body}, []string{"private_key is not PEM", "@key.pem"}},
		{"empty", map[string]interface{}{"private_key": ""}, []string{"private_key is not PEM"}},
		{"small", map[string]interface{}{"private_key": pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))}, []string{"1024-bit", "at least 2048"}},
		{"ec-sec1", map[string]interface{}{"private_key": pemOf("EC PRIVATE KEY", ecDER)}, []string{"EC key", "RSA"}},
		{"ec-pkcs8", map[string]interface{}{"private_key": pemOf("PRIVATE KEY", ecPKCS8)}, []string{"EC key", "RSA"}},
		{"ed25519", map[string]interface{}{"private_key": pemOf("PRIVATE KEY", edPKCS8)}, []string{"Ed25519", "RSA"}},
		{"public", map[string]interface{}{"private_key": pemOf("PUBLIC KEY", pubDER)}, []string{"public key", "give the private key"}},
		{"encrypted", map[string]interface{}{"private_key": pemOf("ENCRYPTED PRIVATE KEY", block.Bytes)}, []string{"encrypted", "decrypt it first"}},
		{"two-blocks", map[string]interface{}{"private_key": pkcs1 + pkcs1}, []string{"more than one PEM block"}},
		{"corrupt", map[string]interface{}{"private_key": corrupt}, []string{"private_key does not parse"}},
		{"wrong-type", map[string]interface{}{"private_key": pemOf("OPENSSH PRIVATE KEY", block.Bytes)}, []string{"PRIVATE KEY", "PKCS#8"}},
		{"bits-and-import", map[string]interface{}{"private_key": pkcs1, "key_bits": 2048}, []string{"key_bits", "omit it"}},
	} {
		// The slot is taken, so test each refusal on next, which is empty.
		msg := h.wantRefused(logical.UpdateOperation, "signing-key/next", c.data, c.wants...)
		if strings.Contains(msg, body[:20]) {
			t.Errorf("%s: the error quotes the key", c.name)
		}
	}
	if h.fingerprint("signing-key") != fp || h.fingerprint("signing-key/next") != "" {
		t.Fatal("a refused import changed the keys")
	}
	if strings.Contains(h.logs.String(), body[:20]) {
		t.Fatal("the key was logged")
	}
}

func TestSigningKeyWriteNeverReplaces(t *testing.T) {
	h := newHarness(t)
	pkcs1, _ := testSigningKeyPEM(t)
	for _, path := range []string{"signing-key", "signing-key/next"} {
		h.mustWrite(path, nil)
		fp := h.fingerprint(path)
		h.wantRefused(logical.UpdateOperation, path, nil, "never replaces", "delete")
		h.wantRefused(logical.UpdateOperation, path, map[string]interface{}{"private_key": pkcs1}, "never replaces")
		if h.fingerprint(path) != fp {
			t.Fatalf("%s was replaced", path)
		}
	}
}

// TestSigningKeyHandover walks next -> promote -> rollback -> promote and
// checks after each step which key signs.
func TestSigningKeyHandover(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	a := h.mustWrite("signing-key", nil).Data["fingerprint"]
	h.wantRefused(logical.UpdateOperation, "signing-key/promote", nil, "no next key", "signing-key/next")
	h.wantRefused(logical.UpdateOperation, "signing-key/rollback", nil, "no previous key")
	b := h.mustWrite("signing-key/next", nil).Data["fingerprint"]

	cur, _ := h.request(logical.ReadOperation, "signing-key", nil)
	if cur.Data["fingerprint"] != a || cur.Data["next_fingerprint"] != b || cur.Data["previous_fingerprint"] != "" {
		t.Fatalf("before promote: %v", cur.Data)
	}
	h.wantSignedBy(a)

	h.clock.Advance(3600e9)
	p := h.mustWrite("signing-key/promote", nil)
	if p.Data["fingerprint"] != b || p.Data["next_fingerprint"] != "" || p.Data["previous_fingerprint"] != a {
		t.Fatalf("after promote: %v", p.Data)
	}
	if p.Data["promoted_at"] != p.Data["previous_retired_at"] || p.Data["promoted_at"] == "" {
		t.Errorf("promoted_at %v / previous_retired_at %v", p.Data["promoted_at"], p.Data["previous_retired_at"])
	}
	h.wantSignedBy(b)

	// A second next blocks rollback, which would otherwise replace it.
	h.mustWrite("signing-key/next", nil)
	h.wantRefused(logical.UpdateOperation, "signing-key/rollback", nil, "next key is waiting")
	h.request(logical.DeleteOperation, "signing-key/next", nil)

	r := h.mustWrite("signing-key/rollback", nil)
	if r.Data["fingerprint"] != a || r.Data["next_fingerprint"] != b || r.Data["previous_fingerprint"] != "" {
		t.Fatalf("after rollback: %v", r.Data)
	}
	h.wantSignedBy(a)
	h.wantRefused(logical.UpdateOperation, "signing-key/rollback", nil, "no previous key")

	if p := h.mustWrite("signing-key/promote", nil); p.Data["fingerprint"] != b || p.Data["previous_fingerprint"] != a {
		t.Fatalf("promote after rollback: %v", p.Data)
	}
	h.wantSignedBy(b)
}

func (h *harness) wantSignedBy(fp interface{}) {
	h.t.Helper()
	resp := h.mustWrite("sign", map[string]interface{}{"mutation": "confirmMovieOrder", "input": `{"referenceId":"1"}`, "include_plaintext": true})
	key, err := h.b.signing.signer(context.Background(), h.storage)
	if err != nil {
		h.t.Fatal(err)
	}
	if key.fingerprint != fp {
		h.t.Fatalf("signing key is %s, want %s", key.fingerprint, fp)
	}
	if err := signature.Verify(&key.key.PublicKey, []byte(resp.Data["plaintext"].(string)), resp.Data["hash"].(string)); err != nil {
		h.t.Fatalf("signature does not verify with %s", fp)
	}
}
