package signature

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of the input. WeTix inputs are three levels
// deep; the bound keeps a hostile input from exhausting the stack.
const MaxDepth = 64

var (
	// ErrNotObject: the input argument of a mutation is always an object.
	ErrNotObject = errors.New("input must be a JSON object, like {\"referenceId\":\"123\",...}")
)

// canonicalizeLiteral is the v0.1 rule: keys sorted, minified, each string
// written as JSON.stringify writes it and each number's text kept. The Go
// rule runs it first because it is also the strict validator: it refuses
// duplicate keys, lone surrogates and over-deep nesting, which encoding/json
// would accept silently (keeping the last duplicate, writing U+FFFD).
func canonicalizeLiteral(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("input is not valid UTF-8")
	}
	if err := checkSurrogates(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, errors.New("input is empty; give a JSON object")
	}
	if err != nil {
		return nil, syntaxError(err)
	}
	if tok != json.Delim('{') {
		return nil, ErrNotObject
	}
	out := make([]byte, 0, len(raw))
	out, err = readObject(dec, out, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("input has more after its closing brace; give exactly one JSON object")
	}
	return out, nil
}

func syntaxError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("input is not valid JSON: it ends before the object is closed")
	}
	return fmt.Errorf("input is not valid JSON: %v", err)
}

type member struct {
	key string
	val []byte // canonical encoding
}

// readObject reads the members of an object whose '{' was consumed, and
// appends its canonical form to out.
func readObject(dec *json.Decoder, out []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("input is nested deeper than %d levels", MaxDepth)
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("input is not valid JSON: object key %v is not a string", tok)
		}
		val, err := readValue(dec, nil, depth)
		if err != nil {
			return nil, err
		}
		members = append(members, member{key, val})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, syntaxError(err)
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(members); i++ {
		if members[i].key == members[i-1].key {
			return nil, fmt.Errorf("input has the key %q twice in one object; give each key once", members[i].key)
		}
	}
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, m.key)
		out = append(out, ':')
		out = append(out, m.val...)
	}
	return append(out, '}'), nil
}

func readValue(dec *json.Decoder, out []byte, depth int) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return readObject(dec, out, depth+1)
		}
		// The decoder only hands out '[' here: '}' and ']' are syntax errors.
		if depth+1 > MaxDepth {
			return nil, fmt.Errorf("input is nested deeper than %d levels", MaxDepth)
		}
		out = append(out, '[')
		for i := 0; dec.More(); i++ {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = readValue(dec, out, depth+1); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, syntaxError(err)
		}
		return append(out, ']'), nil
	case string:
		return appendString(out, t), nil
	case json.Number:
		// The decoder hands out the literal exactly as written.
		return append(out, t...), nil
	case bool:
		return strconv.AppendBool(out, t), nil
	case nil:
		return append(out, "null"...), nil
	}
	return nil, fmt.Errorf("input is not valid JSON: unexpected %v", tok)
}

// appendString writes s as JSON.stringify does.
func appendString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// checkSurrogates refuses \uD800-\uDFFF escapes that are not a high
// surrogate followed by a low one: Go would turn them into U+FFFD, so the
// text signed would differ from the text the app sends.
func checkSurrogates(raw []byte) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 < len(raw) && raw[i+1] == 'u' {
				r, ok := hex4(raw, i+2)
				switch {
				case !ok:
					// Malformed: the decoder reports it.
				case r >= 0xD800 && r <= 0xDBFF:
					lo, ok := rune(0), false
					if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
						lo, ok = hex4(raw, i+8)
					}
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return errors.New(`input has a lone UTF-16 surrogate escape (\uD800-\uDBFF not followed by \uDC00-\uDFFF); send the character itself or a valid pair`)
					}
					i += 11
					continue
				case r >= 0xDC00 && r <= 0xDFFF:
					return errors.New(`input has a lone UTF-16 surrogate escape (\uDC00-\uDFFF without a high surrogate before it); send the character itself or a valid pair`)
				}
			}
			i++ // skip the escaped character
		}
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return rune(v), err == nil
}
