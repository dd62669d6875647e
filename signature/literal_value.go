package signature

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// ErrInexactNumber: under the literal rule, an already-decoded input holds
// a number, whose original text cannot be known.
var ErrInexactNumber = errors.New("a number in input arrived as a floating-point value whose exact text is lost")

// canonicalizeValueLiteral is the literal rule for an input Vault already
// decoded. Every number is refused with ErrInexactNumber, naming its path:
// Vault's plugin protocol re-decodes request data without UseNumber, so a
// number reaches the plugin as a float64 whose text is lost (12.0, 1e0 and
// 1.50 arrive as 12, 1 and 1.5), and under this rule WeTix would verify over
// the app's own text. No guess is safe, so the app must send such input as
// a JSON string.
func canonicalizeValueLiteral(v any) ([]byte, error) {
	if _, ok := v.(map[string]any); !ok {
		return nil, ErrNotObject
	}
	return appendValue(nil, v, "input", 1)
}

// appendValue counts depth as readObject and readValue do: an object or an
// array is a level, a scalar inside it is not, so a string and an object
// holding the same input meet the same limit.
func appendValue(out []byte, v any, path string, depth int) ([]byte, error) {
	deeper := func() error {
		if depth > MaxDepth {
			return fmt.Errorf("input is nested deeper than %d levels", MaxDepth)
		}
		return nil
	}
	var err error
	switch t := v.(type) {
	case map[string]any:
		if err := deeper(); err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			if !utf8.ValidString(k) {
				return nil, fmt.Errorf("%s has a key that is not valid UTF-8", path)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out = append(out, '{')
		for i, k := range keys {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendString(out, k)
			out = append(out, ':')
			if out, err = appendValue(out, t[k], path+"."+k, depth+1); err != nil {
				return nil, err
			}
		}
		return append(out, '}'), nil
	case []any:
		if err := deeper(); err != nil {
			return nil, err
		}
		out = append(out, '[')
		for i, e := range t {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = appendValue(out, e, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return nil, err
			}
		}
		return append(out, ']'), nil
	case string:
		if !utf8.ValidString(t) {
			return nil, fmt.Errorf("%s is not valid UTF-8", path)
		}
		return appendString(out, t), nil
	case bool:
		return strconv.AppendBool(out, t), nil
	case nil:
		return append(out, "null"...), nil
	case float64, float32, json.Number, int, int64, int32, uint64:
		return nil, fmt.Errorf("%s: %w", path, ErrInexactNumber)
	}
	return nil, fmt.Errorf("%s has a value of type %T, which JSON cannot hold", path, v)
}
