// Package signaturetest holds what the signing tests of every package share:
// the golden vectors and the throwaway key that signed them. Tests only.
package signaturetest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Vector is one golden case. Input is the JSON text exactly as an app would
// send it, kept as a string so its number text survives the file.
type Vector struct {
	Name      string `json:"name"`
	ClientID  string `json:"client_id"`
	Mutation  string `json:"mutation"`
	Timestamp int64  `json:"timestamp"`
	Rule      string `json:"rule,omitempty"` // "" is the default rule ("go"); "literal" the v0.1 rule
	Input     string `json:"input"`
	Canonical string `json:"canonical"`
	Plaintext string `json:"plaintext"`
	Signature string `json:"signature"`
}

// testdata is signature/testdata, wherever the test runs from.
func testdata(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", name)
}

// VectorsFile is the golden vectors' path.
func VectorsFile() string { return testdata("vectors.json") }

// Vectors reads every golden vector.
func Vectors(tb testing.TB) []Vector {
	tb.Helper()
	raw, err := os.ReadFile(VectorsFile())
	if err != nil {
		tb.Fatal(err)
	}
	var vs []Vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		tb.Fatal(err)
	}
	if len(vs) == 0 {
		tb.Fatal("no golden vectors")
	}
	return vs
}

// Named returns the golden vector called name.
func Named(tb testing.TB, name string) Vector {
	tb.Helper()
	for _, v := range Vectors(tb) {
		if v.Name == name {
			return v
		}
	}
	tb.Fatalf("no golden vector %q", name)
	return Vector{}
}

// Key is the throwaway key (PKCS#1 PEM) the vectors were signed with. It
// signs nothing real and must never be registered with WeTix.
func Key(tb testing.TB) (pemText string, key *rsa.PrivateKey) {
	tb.Helper()
	raw, err := os.ReadFile(testdata("test-key.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		tb.Fatal("test-key.pem holds no PEM block")
	}
	key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return string(raw), key
}

// PublicPEM is key's public half as an integrator sends it to WeTix (PEM
// "PUBLIC KEY"), for tests that register it with the emulator.
func PublicPEM(tb testing.TB, key *rsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
