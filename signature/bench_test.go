package signature

import (
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
)

// BenchmarkCanonicalize and BenchmarkSignInput show how canonicalization
// compares with the RSA operation it precedes: it should be a small share.
func BenchmarkCanonicalize(b *testing.B) {
	in := []byte(signaturetest.Vectors(b)[0].Input)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignInput(b *testing.B) {
	key := testKey(b)
	in := []byte(signaturetest.Vectors(b)[0].Input)
	b.ReportAllocs()
	for b.Loop() {
		c, err := Canonicalize(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := SignInput(key, "1612417576451877743", CreateMovieOrder, c, 1634616725); err != nil {
			b.Fatal(err)
		}
	}
}
