package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind says what a caller may do after a failed grant.
type Kind int

const (
	// KindTransient: try again later (5xx, 429, network trouble, an answer
	// that could not be read).
	KindTransient Kind = iota
	// KindRejected: WeTix refused the refresh token (invalid_grant, or a
	// 400/401 on /auth/refresh). The client-credentials grant may still work.
	KindRejected
	// KindInvalidClient: WeTix refused the client credentials. Only the
	// operator can fix this.
	KindInvalidClient
	// KindPermanent: any other refusal that retrying will not cure (403, 404:
	// usually a wrong base URL).
	KindPermanent
	// KindUntrusted: the server's TLS certificate failed verification (a
	// wrong base_url host, an intercepting proxy, a missing CA). Retrying
	// cannot cure it, and the request never left the handshake.
	KindUntrusted
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindRejected:
		return "refresh token rejected"
	case KindInvalidClient:
		return "client credentials rejected"
	case KindUntrusted:
		return "tls certificate not trusted"
	default:
		return "permanent"
	}
}

// Error is every failure of a grant. Message is safe to show to operators.
type Error struct {
	Grant Grant
	Kind  Kind
	// Sent is true when the request may have reached WeTix. For the refresh
	// grant that means the refresh token must be assumed spent.
	Sent       bool
	Status     int    // HTTP status, 0 when no answer came
	Code       string // the OAuth error code, e.g. invalid_grant, when WeTix gave one
	Message    string
	RetryAfter time.Duration // from a Retry-After header, 0 when absent
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wetix %s grant failed", e.Grant)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// AsError unwraps err to an *Error.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func transportError(grant Grant, host string, err error, wroteRequest bool) *Error {
	e := &Error{Grant: grant, Kind: KindTransient, Sent: wroteRequest, Message: scrubURLError(err)}
	if reason, ok := certificateFailure(err); ok {
		// The handshake failed, so nothing reached the server: the refresh
		// token is unspent.
		e.Kind, e.Sent = KindUntrusted, false
		e.Message = fmt.Sprintf("the TLS certificate of %s was not trusted (%s)", host, reason)
		return e
	}
	// A refused or unresolvable connection never carried the request, even if
	// the trace hook is unreliable for some transports.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED) {
		e.Sent = false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		e.Sent = false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		e.Message = "no answer before the request timeout"
	}
	if errors.Is(err, context.Canceled) {
		e.Message = "request cancelled"
	}
	return e
}

// certificateFailure says whether err is a failed certificate check, and why
// in words an operator can act on.
func certificateFailure(err error) (string, bool) {
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return "it is not valid for that host name: " + hostErr.Error(), true
	}
	var authErr x509.UnknownAuthorityError
	if errors.As(err, &authErr) {
		return "it is signed by an authority that the system CA store does not know", true
	}
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &invalidErr) {
		return invalidErr.Error(), true
	}
	var verifyErr *tls.CertificateVerificationError
	if errors.As(err, &verifyErr) {
		return verifyErr.Err.Error(), true
	}
	return "", false
}

// scrubURLError drops the URL wrapper: its text repeats the request URL, which
// is harmless today but would leak anything a future caller puts in a query.
func scrubURLError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Op + ": " + uerr.Err.Error()
	}
	return err.Error()
}

func statusError(grant Grant, resp *http.Response, raw []byte, secrets []string) *Error {
	// Redact before parsing: parsing truncates, and a secret cut in half by
	// truncation would no longer match.
	code, desc := parseErrorBody([]byte(redact(string(raw), secrets)), resp.Header.Get("Content-Type"), secrets)
	e := &Error{
		Grant:   grant,
		Status:  resp.StatusCode,
		Sent:    true,
		Code:    code,
		Message: desc,
	}
	e.Kind = classify(grant, resp.StatusCode, code)
	if e.Kind == KindTransient {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// classify goes by status first, since WeTix's error bodies are undocumented,
// and lets an RFC 6749 error code refine it.
func classify(grant Grant, status int, code string) Kind {
	switch code {
	case "invalid_client", "unauthorized_client":
		return KindInvalidClient
	case "invalid_grant":
		return KindRejected
	}
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return KindTransient
	case status >= 300 && status < 400:
		// Redirects are not followed (see New); a moved OAuth server is a
		// base_url the operator must fix.
		return KindPermanent
	case status == http.StatusBadRequest || status == http.StatusUnauthorized:
		// On /auth/refresh a bare 400/401 most likely means the refresh token
		// is dead; the client-credentials grant will tell whether the client
		// credentials are bad too.
		if grant == GrantRefresh {
			return KindRejected
		}
		if status == http.StatusUnauthorized {
			return KindInvalidClient
		}
		return KindPermanent
	default:
		return KindPermanent
	}
}

var (
	htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
	spaces    = regexp.MustCompile(`\s+`)
	oauthCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	// A JWT (or anything shaped like one) is never echoed, whoever it belongs to.
	jwtLike = regexp.MustCompile(`[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)
)

// parseErrorBody reads the undocumented error body in the shapes seen from
// OAuth and GraphQL servers: RFC 6749 JSON, GraphQL errors[], plain text, HTML.
//
// The caller redacts raw first; the JSON branch redacts again after decoding,
// since JSON escapes can hide a token from the first pass.
func parseErrorBody(raw []byte, contentType string, secrets []string) (code, desc string) {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" {
		return "", "empty body"
	}
	if strings.HasPrefix(trimmed, "{") {
		var body struct {
			Error            json.RawMessage `json:"error"`
			ErrorDescription string          `json:"error_description"`
			Message          string          `json:"message"`
			Errors           []struct {
				Message string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(raw, &body) == nil {
			var errCode string
			_ = json.Unmarshal(body.Error, &errCode)
			// An RFC 6749 code is a short token like invalid_grant; anything
			// else is prose and goes with the description.
			if !oauthCode.MatchString(errCode) {
				body.ErrorDescription = strings.TrimSpace(errCode + " " + body.ErrorDescription)
				errCode = ""
			}
			var msgs []string
			for _, m := range body.Errors {
				if m.Message != "" {
					msgs = append(msgs, m.Message)
				}
			}
			desc := firstNonEmpty(body.ErrorDescription, body.Message, strings.Join(msgs, "; "))
			if errCode != "" || desc != "" {
				return redact(errCode, secrets), truncate(redact(clean(desc), secrets), 200)
			}
		}
	}
	if strings.Contains(strings.ToLower(contentType), "html") || strings.HasPrefix(strings.ToLower(trimmed), "<") {
		if m := htmlTitle.FindStringSubmatch(trimmed); m != nil {
			return "", "HTML page: " + truncate(clean(m[1]), 120)
		}
		return "", "HTML page: " + truncate(clean(htmlTag.ReplaceAllString(trimmed, " ")), 120)
	}
	return "", truncate(clean(trimmed), 200)
}

// describeBody says what a 200 answer that could not be parsed looked like
// without quoting it: a success answer carries fresh tokens that are in no
// redaction list yet. An HTML page's title is safe enough to name.
func describeBody(raw []byte) string {
	trimmed := strings.TrimSpace(string(raw))
	if strings.HasPrefix(strings.ToLower(trimmed), "<") {
		if m := htmlTitle.FindStringSubmatch(trimmed); m != nil {
			return fmt.Sprintf("%d bytes, an HTML page titled %q", len(raw), truncate(redact(clean(m[1]), nil), 80))
		}
		return fmt.Sprintf("%d bytes of HTML", len(raw))
	}
	return fmt.Sprintf("%d bytes", len(raw))
}

func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(spaces.ReplaceAllString(s, " "))
}

// redact removes known secrets and anything token-shaped from text that came
// from upstream, in case WeTix ever echoes a request back in an error.
func redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if len(secret) < 4 {
			continue
		}
		for _, form := range encodedForms(secret) {
			s = strings.ReplaceAll(s, form, "[redacted]")
		}
	}
	return jwtLike.ReplaceAllString(s, "[redacted]")
}

// encodedForms are the ways an upstream page may echo a secret: as sent, or
// escaped for HTML, a URL query or a path (with either case of hex digits).
func encodedForms(secret string) []string {
	forms := []string{secret, html.EscapeString(secret), url.QueryEscape(secret), url.PathEscape(secret),
		strings.ReplaceAll(url.QueryEscape(secret), "+", "%20")}
	for _, f := range forms[2:] {
		forms = append(forms, lowerHexEscapes(f))
	}
	return forms
}

func lowerHexEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + ('a' - 'A')
	}
	return c
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the message stays valid UTF-8.
	for n > 0 && n < len(s) && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n] + "..."
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// parseRetryAfter accepts both forms RFC 9110 allows: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
