package sandboxcheck

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// redactor blanks every secret the check knows of. Tokens are added as they
// are issued, before anything about their answer is written down.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func (r *redactor) add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
}

func (r *redactor) addClient(clientID, clientSecret string) {
	r.add(clientSecret, base64.StdEncoding.EncodeToString([]byte(clientID+":"+clientSecret)))
}

// jwtShape catches a token the check did not see issued (one WeTix echoes
// back, say): three base64url parts, the first a JSON header.
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

func (r *redactor) clean(s string) string {
	r.mu.Lock()
	secrets := append([]string(nil), r.secrets...)
	r.mu.Unlock()
	// Longest first, so a secret containing another is blanked whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return jwtShape.ReplaceAllString(s, "[jwt redacted]")
}

// shownValues are the error fields whose text says what went wrong; every
// other string is reported by its length only, since it could be anything
// (a token under a name the docs do not give).
var shownValues = map[string]bool{
	"error": true, "error_description": true, "message": true, "code": true,
	"token_type": true, "status": true, "statusCode": true,
}

// bodyShape describes an answer for the report: its JSON structure, with the
// values of the fields above (redacted, cut to 80 characters), or the
// content type and size of anything that is not JSON.
func (r *redactor) bodyShape(a capturedAnswer) string {
	var v any
	if err := json.Unmarshal(a.Body, &v); err != nil {
		ct := a.ContentType
		if ct == "" {
			ct = "no content type"
		}
		return fmt.Sprintf("not JSON (%s, %d bytes)", ct, len(a.Body))
	}
	var b strings.Builder
	r.writeShape(&b, "", v, 0)
	return b.String()
}

func (r *redactor) writeShape(b *strings.Builder, key string, v any, depth int) {
	if depth > 4 {
		b.WriteString("…")
		return
	}
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(r.clean(k) + ": ")
			r.writeShape(b, k, t[k], depth+1)
		}
		b.WriteString("}")
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[")
		r.writeShape(b, key, t[0], depth+1)
		if len(t) > 1 {
			fmt.Fprintf(b, ", …%d more", len(t)-1)
		}
		b.WriteString("]")
	case string:
		if shownValues[key] {
			s := r.clean(t)
			if len(s) > 80 {
				s = s[:80] + "…"
			}
			b.WriteString(quoteForTable(s))
			return
		}
		fmt.Fprintf(b, "string(%d)", len(t))
	case float64:
		if shownValues[key] || strings.HasSuffix(key, "expires_in") {
			b.WriteString(strconv.FormatFloat(t, 'f', -1, 64))
			return
		}
		b.WriteString("number")
	case bool:
		fmt.Fprintf(b, "%v", t)
	case nil:
		b.WriteString("null")
	}
}

// quoteForTable quotes s so it cannot break a Markdown table row.
func quoteForTable(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.ReplaceAll(strings.TrimSuffix(b.String(), "\n"), "|", `\|`)
}
