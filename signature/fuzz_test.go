package signature

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
)

// FuzzCanonicalize checks the invariants of any accepted input: the result
// is a fixed point, is valid JSON that decodes to the same value, is
// minified, and keeps every number's text.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"b":1,"a":[{"d":null,"c":1.50}]}`, `{"x":12345678901234567890,"y":-0.0e-0}`,
		`{"s":"<&>\u2028\n\"\\\u0001é😀"}`, `{"a":{"a":{"a":[[],{}]}}}`, " {\t\"k\" : \"v\"\r\n}",
		`{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	for _, v := range signaturetest.Vectors(f) {
		f.Add([]byte(v.Input))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c1, err := Canonicalize(raw)
		if err != nil {
			return
		}
		c2, err := Canonicalize(c1)
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", raw, c1, c2, err)
		}
		if !json.Valid(c1) {
			t.Fatalf("output is not JSON: %q", c1)
		}
		var a, b any
		if err := decodeNumbers(raw, &a); err != nil {
			t.Fatalf("accepted input the standard decoder refuses: %q: %v", raw, err)
		}
		if err := decodeNumbers(c1, &b); err != nil {
			t.Fatal(err)
		}
		if !equalJSON(a, b) {
			t.Fatalf("value changed: %q -> %q", raw, c1)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, c1); err != nil || !bytes.Equal(buf.Bytes(), c1) {
			t.Fatalf("output is not minified: %q", c1)
		}
	})
}

func decodeNumbers(raw []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// equalJSON compares decoded values, numbers by their text.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && strings.Compare(string(x), string(y)) == 0
	default:
		return a == b
	}
}
