package wetix

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	defaultSigningKeyBits = 2048
	minSigningKeyBits     = 2048
	// maxImportedKeyBits: larger keys only make every sign slower.
	maxImportedKeyBits = 8192
)

var generatedKeyBits = []int{2048, 3072, 4096}

const (
	keySourceGenerated = "generated"
	keySourceImported  = "imported"
)

// signingKey is a parsed key entry with what reads and signs need,
// computed once when the entry is loaded.
type signingKey struct {
	entry       signingKeyEntry
	key         *rsa.PrivateKey
	publicPEM   string
	fingerprint string
}

func newSigningKey(e signingKeyEntry) (*signingKey, error) {
	der, err := e.der()
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("stored signing key does not parse: %w", err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("stored signing key is %T, not RSA", parsed)
	}
	key.Precompute()
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	return &signingKey{
		entry:       e,
		key:         key,
		publicPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		fingerprint: hex.EncodeToString(sum[:]),
	}, nil
}

// info is what a read returns: public material only.
func (k *signingKey) info() map[string]interface{} {
	return map[string]interface{}{
		"public_key":  k.publicPEM,
		"key_bits":    k.key.N.BitLen(),
		"fingerprint": k.fingerprint,
		"source":      k.entry.Source,
		"created_at":  k.entry.CreatedAt.UTC().Format(time.RFC3339),
	}
}

// generateSigningKey makes a new key pair. bits 0 means the default.
func generateSigningKey(bits int, now time.Time) (signingKeyEntry, error) {
	if bits == 0 {
		bits = defaultSigningKeyBits
	}
	allowed := false
	for _, b := range generatedKeyBits {
		allowed = allowed || b == bits
	}
	if !allowed {
		return signingKeyEntry{}, fmt.Errorf("key_bits %d is not offered; give 2048 (the default), 3072 or 4096", bits)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return signingKeyEntry{}, fmt.Errorf("generating an RSA key: %w", err)
	}
	return entryFor(key, keySourceGenerated, now)
}

// parseImportedKey checks a PEM private key the operator gives. Its errors
// name the field and the fix, and never quote the key.
func parseImportedKey(pemText string, now time.Time) (signingKeyEntry, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(pemText)))
	if block == nil {
		return signingKeyEntry{}, errors.New(`private_key is not PEM; give the key file itself, as private_key=@key.pem, starting with "-----BEGIN PRIVATE KEY-----" (PKCS#8) or "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1)`)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return signingKeyEntry{}, errors.New("private_key holds more than one PEM block; give only the private key")
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
		return signingKeyEntry{}, errors.New("private_key is encrypted with a passphrase; decrypt it first (openssl pkey -in key.pem -out plain.pem) and import plain.pem")
	}
	switch block.Type {
	case "RSA PRIVATE KEY", "PRIVATE KEY":
	case "EC PRIVATE KEY":
		return signingKeyEntry{}, errors.New("private_key is an EC key; WeTix signatures need an RSA key (or generate one: vault write -f <mount>/signing-key)")
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return signingKeyEntry{}, fmt.Errorf("private_key holds a %s, not a private key; give the private key (the public key is what you send to WeTix)", strings.ToLower(block.Type))
	default:
		return signingKeyEntry{}, fmt.Errorf(`private_key is a PEM %q block; give "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1)`, block.Type)
	}
	parsed, err := parsePrivateDER(block.Bytes)
	if err != nil {
		return signingKeyEntry{}, err
	}
	var key *rsa.PrivateKey
	switch k := parsed.(type) {
	case *rsa.PrivateKey:
		key = k
	case *ecdsa.PrivateKey, *ecdh.PrivateKey:
		return signingKeyEntry{}, errors.New("private_key is an EC key; WeTix signatures need an RSA key")
	case ed25519.PrivateKey:
		return signingKeyEntry{}, errors.New("private_key is an Ed25519 key; WeTix signatures need an RSA key")
	default:
		return signingKeyEntry{}, fmt.Errorf("private_key is a %T; WeTix signatures need an RSA key", parsed)
	}
	if bits := key.N.BitLen(); bits < minSigningKeyBits {
		return signingKeyEntry{}, fmt.Errorf("private_key is a %d-bit RSA key; WeTix signing needs at least %d bits: make a new one (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) or let Vault generate it (vault write -f <mount>/signing-key)", bits, minSigningKeyBits)
	} else if bits > maxImportedKeyBits {
		return signingKeyEntry{}, fmt.Errorf("private_key is a %d-bit RSA key; at most %d bits are accepted (4096 is plenty)", bits, maxImportedKeyBits)
	}
	if err := key.Validate(); err != nil {
		return signingKeyEntry{}, fmt.Errorf("private_key is not a consistent RSA key: %v", err)
	}
	return entryFor(key, keySourceImported, now)
}

// parsePrivateDER reads a private key whatever its PEM label says: a PKCS#8
// key labelled "RSA PRIVATE KEY" (or the reverse) is a common export
// mix-up, and the bytes say which it is. Its errors say what the bytes are
// and what to do; the parsers' own messages (ASN.1 tags, Go function names)
// mean nothing to an operator and are dropped.
func parsePrivateDER(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	// The public key's base64 pasted under a private key's header: the
	// copy/paste mix-up this most often is.
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return nil, errPublicGivenAsPrivate
	}
	if _, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return nil, errPublicGivenAsPrivate
	}
	return nil, errors.New("private_key does not parse as a PKCS#8 or PKCS#1 private key (truncated or damaged?); check the file with openssl pkey -in key.pem -noout, and if it is another format, convert it: openssl pkey -in key.pem -out plain.pem, then import plain.pem")
}

var errPublicGivenAsPrivate = errors.New("private_key holds a public key under a private key's header; give the private key (the public key is what you send to WeTix)")

func entryFor(key *rsa.PrivateKey, source string, now time.Time) (signingKeyEntry, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return signingKeyEntry{}, err
	}
	e := signingKeyEntry{Source: source, CreatedAt: now.UTC()}
	e.setDER(der)
	return e, nil
}
