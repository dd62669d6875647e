package wetixtest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
)

// The emulator rebuilds what it verifies the way WeTix's Go server most
// probably does, and deliberately shares no code with the plugin's
// signature package: a test in which both sides ran the same canonicalizer
// could only prove that the plugin agrees with itself. The recipe is the one
// WeTix's own team uses for the same scheme (wetix/rm-go-client v3/rm.go:
// json.Marshal, mxj.NewMapJson, m.Json(true), json.Compact): parse the input
// into Go values (numbers as float64) and re-encode it with encoding/json
// (sorted keys, <, >, &, U+2028, U+2029 escaped).
func rebuildSignedJSON(input json.RawMessage) ([]byte, error) {
	var v any
	if err := json.Unmarshal(input, &v); err != nil {
		return nil, errors.New("not valid JSON")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("must be an object")
	}
	return json.Marshal(v)
}

// CanonicalRule is how the emulator rebuilds the signed JSON, so a test can
// play a WeTix that verifies either way.
type CanonicalRule string

const (
	// RuleGo (the default) is encoding/json's re-encoding of the parsed
	// input: rebuildSignedJSON.
	RuleGo CanonicalRule = "go"
	// RuleLiteral plays a WeTix that signs the characters and number text
	// the app sent, sorted and minified, with nothing escaped beyond what
	// JSON requires (JSON.stringify's output): literalSignedJSON.
	RuleLiteral CanonicalRule = "literal"
)

func (r CanonicalRule) rebuild(input json.RawMessage) ([]byte, error) {
	if r == RuleLiteral {
		return literalSignedJSON(input)
	}
	return rebuildSignedJSON(input)
}

// literalSignedJSON keeps each number's text (json.Number) and turns off
// HTML escaping; encoding/json still escapes U+2028 and U+2029, which
// JSON.stringify writes raw, so those two escapes are undone afterwards.
func literalSignedJSON(input json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("not valid JSON")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("must be an object")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return unescapeLineSeparators(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// unescapeLineSeparators replaces the escapes \u2028 and \u2029 with the
// characters, stepping over every other escape so that an escaped
// backslash followed by "u2028" is left alone.
func unescapeLineSeparators(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "2028":
				out = append(out, "\u2028"...)
				i += 5
				continue
			case "2029":
				out = append(out, "\u2029"...)
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// signedPlaintext is step 3 of WeTix's "Signature Algorithm" page, written
// out here again for the reason above.
func signedPlaintext(clientID string, canonical []byte, mutation string, timestamp int64) []byte {
	return []byte("clientId=" + clientID +
		"&data=" + base64.StdEncoding.EncodeToString(canonical) +
		"&mutation=" + mutation +
		"&shaType=SHA256&timestamp=" + strconv.FormatInt(timestamp, 10))
}

func verifiesRSASHA256(pub *rsa.PublicKey, plaintext []byte, hashB64 string) bool {
	sig, err := base64.StdEncoding.DecodeString(hashB64)
	if err != nil {
		return false
	}
	digest := sha256.Sum256(plaintext)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
}
