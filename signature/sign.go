package signature

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Algorithm is both the plaintext's shaType and the signature argument's
// algorithm: the only one WeTix supports.
const Algorithm = "SHA256"

// The mutations WeTix wants signed.
const (
	CreateMovieOrder  = "createMovieOrder"
	ConfirmMovieOrder = "confirmMovieOrder"
)

// Mutations lists the signed mutations, for error messages and schemas.
var Mutations = []string{CreateMovieOrder, ConfirmMovieOrder}

// CheckMutation refuses a mutation name WeTix does not sign.
func CheckMutation(name string) error {
	switch name {
	case CreateMovieOrder, ConfirmMovieOrder:
		return nil
	case "":
		return fmt.Errorf("mutation is required; give %q or %q", CreateMovieOrder, ConfirmMovieOrder)
	}
	return fmt.Errorf("mutation %q is not one WeTix signs; give %q or %q (names are case-sensitive)", name, CreateMovieOrder, ConfirmMovieOrder)
}

// Plaintext builds step 3 from the canonical input (Canonicalize's output).
// Values are written raw; see the package documentation for the separators.
func Plaintext(clientID string, canonical []byte, mutation string, timestamp int64) []byte {
	enc := base64.StdEncoding
	out := make([]byte, 0, 64+len(clientID)+enc.EncodedLen(len(canonical))+len(mutation))
	out = append(out, "clientId="...)
	out = append(out, clientID...)
	out = append(out, "&data="...)
	out = enc.AppendEncode(out, canonical)
	out = append(out, "&mutation="...)
	out = append(out, mutation...)
	out = append(out, "&shaType="+Algorithm+"&timestamp="...)
	return strconv.AppendInt(out, timestamp, 10)
}

// Sign is step 4: RSA PKCS#1 v1.5 over SHA-256 of plaintext, base64. signer
// must hold an RSA key; PKCS#1 v1.5 is deterministic, so the same key and
// plaintext always give the same signature.
func Sign(signer crypto.Signer, plaintext []byte) (string, error) {
	if _, ok := signer.Public().(*rsa.PublicKey); !ok {
		return "", errors.New("signing key is not RSA")
	}
	digest := sha256.Sum256(plaintext)
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a base64 signature over plaintext, as WeTix does.
func Verify(pub *rsa.PublicKey, plaintext []byte, signatureB64 string) error {
	sig, err := base64.StdEncoding.DecodeString(signatureB64)
	if err != nil {
		return fmt.Errorf("signature is not standard base64: %w", err)
	}
	digest := sha256.Sum256(plaintext)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
}

// Signature is the mutation's signature argument.
type Signature struct {
	Algorithm string `json:"algorithm"`
	Timestamp int64  `json:"timestamp"`
	Hash      string `json:"hash"`
}

// SignInput runs steps 2-5 over a canonical input. It returns the
// signature argument and the plaintext that was signed.
func SignInput(signer crypto.Signer, clientID, mutation string, canonical []byte, timestamp int64) (Signature, []byte, error) {
	if err := CheckMutation(mutation); err != nil {
		return Signature{}, nil, err
	}
	pt := Plaintext(clientID, canonical, mutation, timestamp)
	hash, err := Sign(signer, pt)
	if err != nil {
		return Signature{}, nil, err
	}
	return Signature{Algorithm: Algorithm, Timestamp: timestamp, Hash: hash}, pt, nil
}
