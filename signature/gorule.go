package signature

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The canonical rule is the one WeTix's server most probably applies: it is
// written in Go (its ticket keys are gobs, its object keys sqlike protobufs)
// by the team whose client for a payment gateway with the same signing
// scheme (wetix/rm-go-client v3/rm.go) rebuilds the signed JSON with
// json.Marshal -> mxj.NewMapJson (numbers become float64) -> m.Json(true)
// (HTML-safe escaping kept) -> json.Compact. So the bytes signed are Go's
// encoding/json re-encoding of the parsed input: map keys sorted by byte
// order, '<' '>' '&' U+2028 U+2029 escaped as \u003c \u003e \u0026 \u2028
// \u2029, '/' and other non-ASCII raw, and every number printed from a
// float64 (1.50 -> 1.5, 1e2 -> 100, 12345678901234567890 ->
// 12345678901234567000). WeTix's docs are silent on escaping and numbers;
// the sandbox check is how an integrator confirms this.

// maxExactInteger is the largest integer every smaller one of which a float64
// holds exactly (2^53).
const maxExactInteger = 1 << 53

// Canonicalize returns the canonical form of the JSON object in raw (see the
// package documentation). raw must hold exactly one JSON object.
func Canonicalize(raw []byte) ([]byte, error) {
	c, _, err := CanonicalizeWithWarnings(raw)
	return c, err
}

// CanonicalizeWithWarnings is Canonicalize, also returning one warning per
// number whose value does not survive WeTix's float64 parse: what is signed
// is what the server will see, which is not what the app wrote.
func CanonicalizeWithWarnings(raw []byte) ([]byte, []string, error) {
	if _, err := canonicalizeLiteral(raw); err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, syntaxError(err)
	}
	var warnings []string
	v, err := toFloats(v, "input", &warnings)
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("input cannot be re-encoded: %v", err)
	}
	return out, warnings, nil
}

// toFloats turns each json.Number into the float64 WeTix's decoder makes of
// it, noting integers that lose digits on the way.
func toFloats(v any, path string, warnings *[]string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			conv, err := toFloats(e, path+"."+k, warnings)
			if err != nil {
				return nil, err
			}
			t[k] = conv
		}
	case []any:
		for i, e := range t {
			conv, err := toFloats(e, fmt.Sprintf("%s[%d]", path, i), warnings)
			if err != nil {
				return nil, err
			}
			t[i] = conv
		}
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			// Go's decoder refuses it the same way (1e400): WeTix would too.
			return nil, fmt.Errorf("%s: the number %s is out of the float64 range WeTix's server parses; send it as a string", path, t)
		}
		if isIntegerText(string(t)) {
			if seen := formatLikeGo(f); seen != strings.TrimPrefix(string(t), "+") && math.Abs(f) >= maxExactInteger {
				*warnings = append(*warnings, fmt.Sprintf("%s: the integer %s is larger than 2^53 and WeTix's server reads it as %s; that is what was signed. Send it as a JSON string if it is an identifier", path, t, seen))
			}
		}
		return f, nil
	}
	return v, nil
}

func isIntegerText(s string) bool {
	return !strings.ContainsAny(s, ".eE")
}

// formatLikeGo prints f as encoding/json does.
func formatLikeGo(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// CanonicalizeValue is Canonicalize for an input that was already decoded
// into Go values, as Vault hands a JSON object in a request body to a
// plugin: map[string]any, []any, string, bool, nil and float64. Numbers are
// float64 here, as they are on WeTix's server, so they give the same bytes
// as the text form.
func CanonicalizeValue(v any) ([]byte, error) {
	c, _, err := CanonicalizeValueWithWarnings(v)
	return c, err
}

// CanonicalizeValueWithWarnings also warns about integers at or beyond 2^53:
// Vault's plugin protocol delivered them as float64, so digits may already
// have been lost before the plugin saw them.
func CanonicalizeValueWithWarnings(v any) ([]byte, []string, error) {
	if _, ok := v.(map[string]any); !ok {
		return nil, nil, ErrNotObject
	}
	var warnings []string
	// Vault delivers float64 today; a json.Number (a future SDK decoding
	// with UseNumber) is read as WeTix's server would read its text.
	v, err := toFloats(v, "input", &warnings)
	if err != nil {
		return nil, nil, err
	}
	if err := checkValue(v, "input", 1, &warnings); err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("input cannot be re-encoded: %v", err)
	}
	return out, warnings, nil
}

// checkValue counts depth as readObject and readValue do: an object or an
// array is a level, a scalar inside it is not, so a string and an object
// holding the same input meet the same limit.
func checkValue(v any, path string, depth int, warnings *[]string) error {
	deeper := func() error {
		if depth > MaxDepth {
			return fmt.Errorf("input is nested deeper than %d levels", MaxDepth)
		}
		return nil
	}
	switch t := v.(type) {
	case map[string]any:
		if err := deeper(); err != nil {
			return err
		}
		for k, e := range t {
			if !utf8.ValidString(k) {
				return fmt.Errorf("%s has a key that is not valid UTF-8", path)
			}
			if err := checkValue(e, path+"."+k, depth+1, warnings); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if err := deeper(); err != nil {
			return err
		}
		for i, e := range t {
			if err := checkValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1, warnings); err != nil {
				return err
			}
		}
		return nil
	case string:
		if !utf8.ValidString(t) {
			return fmt.Errorf("%s is not valid UTF-8", path)
		}
		return nil
	case bool, nil:
		return nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return fmt.Errorf("%s is not a finite number", path)
		}
		if t == math.Trunc(t) && math.Abs(t) >= maxExactInteger {
			*warnings = append(*warnings, fmt.Sprintf("%s: the integer %s is at or beyond 2^53; Vault passes a JSON object's numbers to plugins as float64, so digits may have been lost before signing. Send input as a JSON string (input=@order.json) to sign exactly what the app sends", path, formatLikeGo(t)))
		}
		return nil
	}
	return fmt.Errorf("%s has a value of type %T, which JSON cannot hold", path, v)
}
