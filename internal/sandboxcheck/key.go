package sandboxcheck

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseSigningKey reads the PEM private key an integrator registered the
// public half of with WeTix (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE
// KEY", RSA). Errors never quote the key.
func ParseSigningKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("signing key is not PEM (want -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("signing key: the RSA PRIVATE KEY block does not parse")
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("signing key: the PRIVATE KEY block does not parse")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key is %T; WeTix signs with RSA", k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("signing key is a PEM %q block; want a private key", block.Type)
}
