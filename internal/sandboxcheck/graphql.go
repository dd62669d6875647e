package sandboxcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// cheapQuery is the smallest authenticated read in WeTix's docs
// (wetix/openapi-doc docs/graphql/queries.md, cinemas; CinemaConnection
// has totalCount): one number, no customer data.
const cheapQuery = `query { cinemas(first: 1) { totalCount } }`

// graphQLAnswer is a GraphQL response, kept raw for the report.
type graphQLAnswer struct {
	capturedAnswer
	Data   map[string]json.RawMessage
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	err error // no answer at all
}

// code is the first error's extensions.code, "" if none.
func (g graphQLAnswer) code() string {
	if len(g.Errors) == 0 {
		return ""
	}
	c, _ := g.Errors[0].Extensions["code"].(string)
	return c
}

// fingerprint is what tells two refusals apart: status, code and message.
// WeTix's error codes are undocumented, so the message has to count; but a
// message may carry a request ID or a time that differs on every answer,
// which would make two refusals for the same reason look apart (and the
// rule question unanswerable). Every word holding a digit is one placeholder.
func (g graphQLAnswer) fingerprint() string {
	msg := ""
	if len(g.Errors) > 0 {
		msg = wordsWithADigit.ReplaceAllString(g.Errors[0].Message, "#")
	}
	return fmt.Sprintf("%d|%s|%s", g.Status, g.code(), msg)
}

var wordsWithADigit = regexp.MustCompile(`[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*`)

func (r *run) postGraphQL(ctx context.Context, accessToken string, body any) graphQLAnswer {
	raw, err := json.Marshal(body)
	if err != nil {
		return graphQLAnswer{err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.GraphQLURL, bytes.NewReader(raw))
	if err != nil {
		return graphQLAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", client.DefaultUserAgent+" wetix-check")
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		r.capture.take()
		return graphQLAnswer{err: fmt.Errorf("%s", r.red.clean(err.Error()))}
	}
	resp.Body.Close()
	g := graphQLAnswer{capturedAnswer: r.capture.take()}
	var out struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors json.RawMessage            `json:"errors"`
	}
	if json.Unmarshal(g.Body, &out) == nil {
		g.Data = out.Data
		json.Unmarshal(out.Errors, &g.Errors)
	}
	return g
}

// queryWorks asks the cheap query with a token: true when it is answered
// with data and no error.
func (r *run) query(ctx context.Context, accessToken string) (bool, graphQLAnswer) {
	g := r.postGraphQL(ctx, accessToken, map[string]string{"query": cheapQuery})
	works := g.err == nil && g.Status == http.StatusOK && len(g.Errors) == 0 && len(g.Data["cinemas"]) > 0 && string(g.Data["cinemas"]) != "null"
	return works, g
}

func (r *run) describeGraphQL(g graphQLAnswer) string {
	if g.err != nil {
		return "no answer: " + g.err.Error()
	}
	return fmt.Sprintf("HTTP %d %s", g.Status, r.red.bodyShape(g.capturedAnswer))
}

// calibrated runs the query with the current token (must work) and with no
// token (must be refused), so that what a third token gets means something:
// a query that works without a token proves nothing about the token.
func (r *run) calibrated(ctx context.Context, current string) (ok bool, why string) {
	if works, g := r.query(ctx, current); !works {
		return false, "the cheap query (" + cheapQuery + ") failed with the newest access token: " + r.describeGraphQL(g)
	}
	if works, _ := r.query(ctx, ""); works {
		return false, "the cheap query works without any token, so it cannot tell a live token from a dead one"
	}
	return true, ""
}

func (r *run) oldAccessAfterRefresh(ctx context.Context, old, current string) Answer {
	a := Answer{ID: QAccessAfterRefr, Question: questionText[QAccessAfterRefr],
		Assumed: "undocumented, so the plugin assumes it may not: every consumer moves to the new token within one lease `ttl` of a refresh; a yes means no app is ever refused in that window"}
	if ok, why := r.calibrated(ctx, current); !ok {
		a.Verdict, a.Finding, a.Advice = Unanswered, why, "check the GraphQL URL (-graphql-url) and that the client may query cinemas"
		return a
	}
	works, g := r.query(ctx, old)
	if works {
		a.Verdict, a.Finding = AsAssumed, "yes: the access token from before the refresh still answers the query"
		return a
	}
	a.Verdict = Differs
	a.Finding = "no: the access token from before the refresh is refused: " + r.describeGraphQL(g)
	a.Advice = "every refresh kills the token apps already hold, so an app is refused until it reads again (up to one lease `ttl` after each refresh, about every 60 days): make apps read the token again on a 401, keep `ttl` short, or use `static-token`; and tell us in an issue"
	return a
}

func (r *run) afterClientCredentials(ctx context.Context, before, recovered *client.Pair) (Answer, *client.Pair) {
	a := Answer{ID: QAfterClientCreds, Question: questionText[QAfterClientCreds],
		Assumed: "not relied on: the plugin is the only user of its tokens; what a 'no' breaks is an app still doing its own grants with the same client during a migration"}
	var parts []string
	a.Verdict = AsAssumed
	if works, g := r.query(ctx, before.AccessToken); works {
		parts = append(parts, "an access token issued before it still works")
	} else if ok, why := r.calibrated(ctx, recovered.AccessToken); !ok {
		parts = append(parts, "access token: not known ("+why+")")
		a.Verdict = Unanswered
	} else {
		parts = append(parts, "an access token issued before it is refused ("+r.describeGraphQL(g)+")")
		a.Verdict = Differs
	}
	var after *client.Pair
	if before.RefreshToken != "" {
		p, answer, err := r.grant(ctx, r.good, before.RefreshToken)
		if p != nil {
			parts = append(parts, "a refresh token issued before it still refreshes")
			after = p
		} else {
			parts = append(parts, fmt.Sprintf("a refresh token issued before it is refused (HTTP %d; %s)", answer.Status, describeErr(err)))
			if a.Verdict == AsAssumed {
				a.Verdict = Differs
			}
		}
	}
	a.Finding = joinParts(parts)
	if a.Verdict == Differs {
		a.Advice = "a client-credentials grant revokes earlier tokens: once the plugin serves a client, no app may keep doing its own grants with it (each side would kill the other's tokens); move every app to Vault before enabling the mount"
	}
	return a, after
}

func joinParts(parts []string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	return b.String()
}
