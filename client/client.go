package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"
)

// Base URLs of the WeTix OAuth server, from the provider's current docs. The
// refresh-token page still names the pre-2021 hosts (oauth2.*); those were
// renamed and are deliberately not used.
const (
	ProductionURL = "https://oauth.wetix.my"
	SandboxURL    = "https://sb-oauth.wetix.my"
)

// MaxResponseBytes caps how much of an answer is read. A real token answer is
// about 1 KiB; anything near the cap is an error page or an attack, and reading
// it whole would let a misbehaving upstream exhaust the plugin's memory.
const MaxResponseBytes = 64 << 10

const (
	tokenPath   = "/auth/token"
	refreshPath = "/auth/refresh"
)

// Grant names the OAuth grant a request used.
type Grant string

const (
	GrantClientCredentials Grant = "client_credentials"
	GrantRefresh           Grant = "refresh_token"
)

// Pair is what a successful grant returns. Expiry times are absolute, computed
// from expires_in against the caller's clock when the answer arrived.
type Pair struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string    // empty when the answer carried none
	RefreshExpiresAt time.Time // zero when unknown
	TokenType        string
	IssuedAt         time.Time
	Grant            Grant
}

// Client calls one WeTix OAuth server with one set of client credentials.
type Client struct {
	baseURL      string
	clientID     string
	clientSecret string
	httpClient   *http.Client
	timeout      time.Duration
	userAgent    string
	now          func() time.Time
}

// Config holds what New needs.
type Config struct {
	BaseURL      string
	ClientID     string
	ClientSecret string
	// Timeout bounds each HTTP request, on top of the caller's context.
	Timeout time.Duration
	// HTTPClient is optional; its Timeout is ignored in favour of Timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request, so that WeTix's support can tell
	// this plugin's traffic (and its version) apart; empty means
	// DefaultUserAgent.
	UserAgent string
	// Now is optional; tests inject a clock to compute expiry times.
	Now func() time.Time
}

// DefaultUserAgent replaces Go's "Go-http-client/1.1", which names no one.
const DefaultUserAgent = "vault-plugin-secrets-wetix"

// New builds a Client. It does not contact WeTix.
func New(cfg Config) *Client {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	// A redirect would resend the Basic header and the refresh token to
	// wherever Location points, past the base_url rules; never follow one.
	noRedirects := *hc
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc = &noRedirects
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return &Client{
		baseURL:      strings.TrimRight(cfg.BaseURL, "/"),
		userAgent:    ua,
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		httpClient:   hc,
		timeout:      cfg.Timeout,
		now:          now,
	}
}

func defaultTransport() *http.Transport {
	// A clone of Go's default keeps its Proxy (HTTPS_PROXY, NO_PROXY) and the
	// system roots (SSL_CERT_FILE, SSL_CERT_DIR): operators behind an egress
	// proxy or a private CA set those with `vault plugin register -env`.
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Token calls are rare (one per token lifetime); idle connections would
	// only hold sockets open for weeks.
	t.DisableKeepAlives = true
	return t
}

// ClientCredentials mints a fresh pair from the client credentials alone.
func (c *Client) ClientCredentials(ctx context.Context) (*Pair, error) {
	return c.do(ctx, GrantClientCredentials, tokenPath, map[string]string{"grant_type": "client_credentials"})
}

// Refresh trades a refresh token for a new pair. Unless the error says the
// request was never sent (Error.Sent false), the refresh token must be
// assumed spent, whatever the outcome.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Pair, error) {
	if refreshToken == "" {
		return nil, &Error{Grant: GrantRefresh, Kind: KindRejected, Message: "no refresh token to use"}
	}
	return c.do(ctx, GrantRefresh, refreshPath, map[string]string{
		"grant_type":    "refresh_token",
		"refresh_token": refreshToken,
	})
}

func (c *Client) do(ctx context.Context, grant Grant, path string, body map[string]string) (*Pair, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, &Error{Grant: grant, Kind: KindPermanent, Message: "encoding request: " + err.Error()}
	}

	// wroteRequest tells a failure before WeTix could have seen the request
	// (DNS, refused connection) from one after (timeout, reset), which is the
	// difference between "retry the refresh token" and "it may be spent".
	var wroteRequest atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wroteRequest.Store(true) }}
	ctx = httptrace.WithClientTrace(ctx, trace)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(payload))
	if err != nil {
		return nil, &Error{Grant: grant, Kind: KindPermanent, Message: "building request: " + scrubURLError(err)}
	}
	req.SetBasicAuth(c.clientID, c.clientSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	// Expiry is counted from before the request left, so clock time spent in
	// flight only ever makes the plugin think a token expires sooner.
	sentAt := c.now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, transportError(grant, req.URL.Host, err, wroteRequest.Load())
	}
	defer resp.Body.Close()

	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if readErr != nil {
		return nil, transportError(grant, req.URL.Host, readErr, true)
	}
	if len(raw) > MaxResponseBytes {
		return nil, &Error{Grant: grant, Kind: KindTransient, Sent: true, Status: resp.StatusCode,
			Message: fmt.Sprintf("answer larger than %d bytes", MaxResponseBytes)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(grant, resp, raw, c.secrets(body))
	}
	pair, err := parsePair(raw, sentAt)
	if err != nil {
		// WeTix answered 200, so it probably issued tokens we cannot read: the
		// refresh token is spent. Transient, so the caller retries through the
		// client-credentials grant.
		return nil, &Error{Grant: grant, Kind: KindTransient, Sent: true, Status: resp.StatusCode, Message: err.Error()}
	}
	pair.Grant = grant
	return pair, nil
}

// secrets lists the strings an upstream error body must never carry back into
// an error message.
func (c *Client) secrets(body map[string]string) []string {
	basic := base64.StdEncoding.EncodeToString([]byte(c.clientID + ":" + c.clientSecret))
	return []string{c.clientSecret, basic, body["refresh_token"]}
}

type tokenAnswer struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             *int64 `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn *int64 `json:"refresh_token_expires_in"`
	TokenType             string `json:"token_type"`
}

func parsePair(raw []byte, sentAt time.Time) (*Pair, error) {
	var a tokenAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("answer is not the documented JSON (%s: %s)", describeBody(raw), jsonErrorText(err))
	}
	if a.AccessToken == "" {
		return nil, errors.New("answer has no access_token")
	}
	if a.TokenType != "" && !strings.EqualFold(a.TokenType, "Bearer") {
		return nil, fmt.Errorf("answer has token_type %q, want Bearer", truncate(a.TokenType, 20))
	}
	// The docs do not say expires_in is always present. Without it the only
	// other hint is the JWT's exp claim, which the docs call informative.
	var accessExp time.Time
	switch {
	case a.ExpiresIn != nil && *a.ExpiresIn > 0:
		accessExp = sentAt.Add(wholeSeconds(*a.ExpiresIn))
	default:
		exp, ok := jwtExpiry(a.AccessToken)
		if !ok {
			return nil, errors.New("answer has no usable expires_in and the access token carries no exp claim")
		}
		accessExp = exp
	}
	// Whole seconds, rounded down: expires_at is shown to apps in RFC 3339
	// seconds, and a lease computed from a later instant could end after it.
	accessExp = accessExp.Truncate(time.Second)
	if !accessExp.After(sentAt) {
		return nil, errors.New("answer's access token is already expired")
	}
	p := &Pair{
		AccessToken:     a.AccessToken,
		AccessExpiresAt: accessExp,
		RefreshToken:    a.RefreshToken,
		TokenType:       "Bearer",
		IssuedAt:        sentAt,
	}
	if a.RefreshToken != "" {
		if a.RefreshTokenExpiresIn != nil && *a.RefreshTokenExpiresIn > 0 {
			p.RefreshExpiresAt = sentAt.Add(wholeSeconds(*a.RefreshTokenExpiresIn)).Truncate(time.Second)
		} else if exp, ok := jwtExpiry(a.RefreshToken); ok {
			p.RefreshExpiresAt = exp
		}
	}
	return p, nil
}

// wholeSeconds turns an expires_in into a duration one second short: WeTix
// counts in whole seconds from its own clock's second (the JWT's exp is iat +
// expires_in, both truncated), so the token may die up to a second before
// sentAt + expires_in.
func wholeSeconds(n int64) time.Duration {
	if n > 1 {
		n--
	}
	return time.Duration(n) * time.Second
}

// jsonErrorText keeps encoding/json's description of what was wrong but not
// the offending value, which could be a token.
func jsonErrorText(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %s is a JSON %s, want %s", typeErr.Field, typeErr.Value, typeErr.Type)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("invalid JSON at byte %d", syntaxErr.Offset)
	}
	return "unreadable JSON"
}
