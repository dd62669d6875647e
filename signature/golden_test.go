package signature

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"os"
	"testing"
)

// -update rewrites the expected fields of testdata/vectors.json from their
// inputs with the current code. Review the diff: any change to an existing
// vector means apps' signatures change.
var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the current code")

// testKey is signaturetest's throwaway key.
func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	_, key := signaturetest.Key(t)
	return key
}

func TestGoldenVectors(t *testing.T) {
	key := testKey(t)
	vs := signaturetest.Vectors(t)
	for i := range vs {
		v := &vs[i]
		rule, err := ParseRule(v.Rule)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		canonical, _, err := rule.Canonicalize([]byte(v.Input))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		sig, pt, err := SignInput(key, v.ClientID, v.Mutation, canonical, v.Timestamp)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if *update {
			v.Canonical, v.Plaintext, v.Signature = string(canonical), string(pt), sig.Hash
			continue
		}
		if string(canonical) != v.Canonical {
			t.Errorf("%s: canonical drifted\n got %s\nwant %s", v.Name, canonical, v.Canonical)
		}
		if string(pt) != v.Plaintext {
			t.Errorf("%s: plaintext drifted\n got %s\nwant %s", v.Name, pt, v.Plaintext)
		}
		if sig.Hash != v.Signature {
			t.Errorf("%s: signature drifted\n got %s\nwant %s", v.Name, sig.Hash, v.Signature)
		}
		// The stored signature must verify on its own, as WeTix would check it.
		if err := Verify(&key.PublicKey, []byte(v.Plaintext), v.Signature); err != nil {
			t.Errorf("%s: stored signature does not verify: %v", v.Name, err)
		}
		if sig.Algorithm != "SHA256" || sig.Timestamp != v.Timestamp {
			t.Errorf("%s: signature argument %+v", v.Name, sig)
		}
	}
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(vs); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(signaturetest.VectorsFile(), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s (%d vectors)", signaturetest.VectorsFile(), len(vs))
	}
}
