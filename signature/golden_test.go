package signature

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// -update rewrites the expected fields of testdata/vectors.json from their
// inputs with the current code. Review the diff: any change to an existing
// vector means apps' signatures change.
var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the current code")

// vector is one golden case. Input is the JSON text exactly as an app would
// send it, kept as a string so its number text survives this file.
type vector struct {
	Name      string `json:"name"`
	ClientID  string `json:"client_id"`
	Mutation  string `json:"mutation"`
	Timestamp int64  `json:"timestamp"`
	Input     string `json:"input"`
	Canonical string `json:"canonical"`
	Plaintext string `json:"plaintext"`
	Signature string `json:"signature"`
}

const vectorsFile = "testdata/vectors.json"

// testKey is a throwaway key committed for the vectors only. It signs
// nothing real and must never be registered with WeTix.
func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "test-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}

func TestGoldenVectors(t *testing.T) {
	key := testKey(t)
	vs := loadVectors(t)
	for i := range vs {
		v := &vs[i]
		canonical, err := Canonicalize([]byte(v.Input))
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
		if err := os.WriteFile(vectorsFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s (%d vectors)", vectorsFile, len(vs))
	}
}
