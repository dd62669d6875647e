package signature

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
)

// FuzzCanonicalize checks, for any accepted input: under the default rule
// the result is exactly encoding/json's re-encoding of the parsed input (the
// stdlib is the oracle: it is what WeTix's server runs) and a fixed point;
// under the literal rule it is a fixed point that decodes to the same value
// with every number's text kept; both rules accept the same inputs and give
// minified output.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"b":1,"a":[{"d":null,"c":1.50}]}`, `{"x":12345678901234567890,"y":-0.0e-0}`,
		`{"s":"<&>\u2028\n\"\\\u0001é😀"}`, `{"a":{"a":{"a":[[],{}]}}}`, " {\t\"k\" : \"v\"\r\n}",
		`{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `{"a":1e400}`, `{"a":"\u2029/\/"}`,
	} {
		f.Add([]byte(s))
	}
	for _, v := range signaturetest.Vectors(f) {
		f.Add([]byte(v.Input))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		lit, errLit := canonicalizeLiteral(raw)
		c1, err := Canonicalize(raw)
		if err != nil {
			// Only a number beyond float64 is refused by one rule alone.
			if errLit == nil && !strings.Contains(err.Error(), "float64 range") {
				t.Fatalf("the literal rule accepts %q, the Go rule refuses it: %v", raw, err)
			}
			return
		}
		if errLit != nil {
			t.Fatalf("the Go rule accepts %q, the literal rule refuses it: %v", raw, errLit)
		}
		var parsed any
		if err := json.Unmarshal(raw, &parsed); err != nil {
			t.Fatalf("accepted input the standard decoder refuses: %q: %v", raw, err)
		}
		if want, _ := json.Marshal(parsed); !bytes.Equal(c1, want) {
			t.Fatalf("Go rule: %q -> %q; encoding/json writes %q", raw, c1, want)
		}
		for name, c := range map[string][]byte{"go": c1, "literal": lit} {
			var again []byte
			if name == "go" {
				again, err = Canonicalize(c)
			} else {
				again, err = canonicalizeLiteral(c)
			}
			if err != nil || !bytes.Equal(c, again) {
				t.Fatalf("%s rule: not a fixed point: %q -> %q -> %q (%v)", name, raw, c, again, err)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, c); err != nil || !bytes.Equal(buf.Bytes(), c) {
				t.Fatalf("%s rule: output is not minified JSON: %q", name, c)
			}
		}
		var a, b any
		if err := decodeNumbers(raw, &a); err != nil {
			t.Fatal(err)
		}
		if err := decodeNumbers(lit, &b); err != nil {
			t.Fatal(err)
		}
		if !equalJSON(a, b) {
			t.Fatalf("literal rule: value changed: %q -> %q", raw, lit)
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
