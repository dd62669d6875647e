package sandboxcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// Question IDs, in the order asked; docs/sandbox-check.md explains each.
const (
	QGrantFields       = "client-credentials-answer"
	QRefreshFields     = "refresh-answer"
	QAccessAfterRefr   = "old-access-token-after-refresh"
	QWrongSecret       = "wrong-client-secret"
	QDeadRefresh       = "dead-refresh-token"
	QSingleUse         = "refresh-token-single-use"
	QAfterClientCreds  = "tokens-after-client-credentials"
	QCanonicalRule     = "canonical-json-rule"
	madeUpRefreshToken = "wetix-check-made-up-refresh-token"
)

// ask runs the questions in an order where each one's tokens are the next
// one's subject: the first pair is refreshed, then its spent refresh token
// and its old access token are tried, then the client-credentials grant
// recovers and the refreshed pair is tried after it.
func (r *run) ask(ctx context.Context) {
	first, answer, err := r.grant(ctx, r.good, "")
	r.add(fieldsAnswer(QGrantFields, "Does POST /auth/token (client credentials) answer the documented fields?", r.red, answer, first, err))
	if first == nil {
		r.skipRest("the client-credentials grant failed (first line); fix the client ID, secret or URL and run again",
			QRefreshFields, QAccessAfterRefr, QWrongSecret, QDeadRefresh, QSingleUse, QAfterClientCreds, QCanonicalRule)
		return
	}
	var second *client.Pair
	if first.RefreshToken == "" {
		r.skipRest("the client-credentials answer carried no refresh_token", QRefreshFields, QAccessAfterRefr, QSingleUse)
	} else {
		second, answer, err = r.grant(ctx, r.good, first.RefreshToken)
		r.add(fieldsAnswer(QRefreshFields, "Does POST /auth/refresh answer the documented fields?", r.red, answer, second, err))
		if second != nil {
			r.add(r.oldAccessAfterRefresh(ctx, first.AccessToken, second.AccessToken))
		} else {
			r.skipRest("the refresh grant failed (line above)", QAccessAfterRefr)
		}
	}
	r.add(r.wrongSecret(ctx))
	r.add(r.deadRefreshToken(ctx))
	latest := first
	if second != nil {
		latest = second
	}
	if first.RefreshToken != "" && second != nil {
		var recovered *client.Pair
		var a Answer
		a, recovered = r.singleUse(ctx, first.RefreshToken)
		r.add(a)
		if recovered != nil {
			var after *client.Pair
			a, after = r.afterClientCredentials(ctx, second, recovered)
			r.add(a)
			latest = recovered
			if after != nil {
				latest = after
			}
		} else {
			r.skipRest("the client-credentials grant did not recover (line above)", QAfterClientCreds)
		}
	} else if second == nil && first.RefreshToken != "" {
		r.skipRest("the refresh grant failed", QSingleUse, QAfterClientCreds)
	}
	r.add(r.canonicalRule(ctx, latest.AccessToken))
}

func (r *run) skipRest(why string, ids ...string) {
	for _, id := range ids {
		if r.answered(id) {
			continue
		}
		r.add(Answer{ID: id, Question: questionText[id], Verdict: Unanswered, Finding: "not asked", Advice: why})
	}
}

func (r *run) answered(id string) bool {
	for _, a := range r.answers {
		if a.ID == id {
			return true
		}
	}
	return false
}

var questionText = map[string]string{
	QGrantFields:      "Does POST /auth/token (client credentials) answer the documented fields?",
	QRefreshFields:    "Does POST /auth/refresh answer the documented fields?",
	QAccessAfterRefr:  "Does the previous access token still work after a refresh?",
	QWrongSecret:      "What does a wrong client secret get?",
	QDeadRefresh:      "What does a refresh token WeTix never issued get?",
	QSingleUse:        "Is a refresh token single-use?",
	QAfterClientCreds: "Does a client-credentials grant leave earlier tokens working?",
	QCanonicalRule:    "Which canonical JSON rule does the signature check apply?",
}

// documentedFields are the five fields both grants answer in WeTix's docs.
var documentedFields = []struct {
	name, kind string
}{{"access_token", "string"}, {"expires_in", "number"}, {"refresh_token", "string"}, {"refresh_token_expires_in", "number"}, {"token_type", "string"}}

func fieldsAnswer(id, question string, red *redactor, answer capturedAnswer, p *client.Pair, err error) Answer {
	a := Answer{ID: id, Question: question,
		Assumed: "HTTP 200 with access_token, expires_in, refresh_token, refresh_token_expires_in, token_type \"Bearer\"; the plugin copes without refresh_token (keeps the old one) or expires_in (reads the JWT's exp)"}
	if err != nil {
		a.Verdict = Differs
		a.Finding = fmt.Sprintf("HTTP %d %s; %s", answer.Status, red.bodyShape(answer), describeErr(err))
		a.Advice = "the grant failed: if the status says the credentials or URL are wrong, fix them; otherwise open an issue with this line"
		if answer.Status == 0 {
			a.Verdict = Unanswered
			a.Finding = describeErr(err)
			a.Advice = "no answer from WeTix: check the URL, the network and any proxy (docs/network.md)"
		}
		return a
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(answer.Body, &fields)
	var missing, wrongType []string
	for _, f := range documentedFields {
		raw, ok := fields[f.name]
		if !ok || string(raw) == "null" {
			missing = append(missing, f.name)
			continue
		}
		if jsonKind(raw) != f.kind {
			wrongType = append(wrongType, f.name+" is a "+jsonKind(raw))
		}
	}
	var extra []string
	for k := range fields {
		if !isDocumented(k) {
			extra = append(extra, k)
		}
	}
	a.Finding = fmt.Sprintf("HTTP %d %s", answer.Status, red.bodyShape(answer))
	switch {
	case len(wrongType) > 0:
		a.Verdict = Differs
		a.Finding += "; " + strings.Join(wrongType, ", ")
		a.Advice = "a documented field has another type: open an issue with this line"
	case len(missing) > 0:
		a.Verdict = Harmless
		a.Finding += "; missing " + strings.Join(missing, ", ")
	default:
		a.Verdict = AsAssumed
	}
	if len(extra) > 0 {
		a.Finding += fmt.Sprintf("; %d undocumented field(s), ignored by the plugin", len(extra))
	}
	if p.TokenType != "" && !strings.EqualFold(p.TokenType, "Bearer") {
		a.Verdict = Differs
	}
	return a
}

func isDocumented(name string) bool {
	for _, f := range documentedFields {
		if f.name == name {
			return true
		}
	}
	return false
}

func jsonKind(raw json.RawMessage) string {
	switch strings.TrimSpace(string(raw))[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func (r *run) wrongSecret(ctx context.Context) Answer {
	// Derived from nothing secret, so it is safe to blank like a secret and
	// cannot be a working one by accident.
	wrong := "wetix-check-wrong-secret"
	r.red.addClient(r.cfg.ClientID, wrong)
	p, answer, err := r.grant(ctx, r.clientWith(wrong), "")
	a := Answer{ID: QWrongSecret, Question: questionText[QWrongSecret],
		Assumed: `refused as "client credentials rejected" (invalid_client, or 401): the plugin stops trying and status names the fix (write the right client_secret)`}
	return r.classified(a, answer, p, err, client.KindInvalidClient,
		"WeTix accepted a made-up client secret: report it to WeTix",
		"the plugin would read a wrong client secret as something else and not tell the operator to fix the secret: open an issue with this line")
}

func (r *run) deadRefreshToken(ctx context.Context) Answer {
	p, answer, err := r.grant(ctx, r.good, madeUpRefreshToken)
	a := Answer{ID: QDeadRefresh, Question: questionText[QDeadRefresh],
		Assumed: `refused as "refresh token rejected" (invalid_grant, or 400/401 on /auth/refresh): the plugin falls back to the client-credentials grant`}
	return r.classified(a, answer, p, err, client.KindRejected,
		"WeTix accepted a made-up refresh token: report it to WeTix",
		"the plugin would not fall back to the client-credentials grant for a dead refresh token the way it should: open an issue with this line")
}

// classified compares the plugin client's reading of an answer with the
// kind the plugin's lifecycle relies on.
func (r *run) classified(a Answer, answer capturedAnswer, p *client.Pair, err error, want client.Kind, acceptedAdvice, mismatchAdvice string) Answer {
	if p != nil {
		a.Verdict, a.Finding, a.Advice = Differs, fmt.Sprintf("HTTP %d: accepted", answer.Status), acceptedAdvice
		return a
	}
	if answer.Status == 0 {
		a.Verdict, a.Finding = Unanswered, describeErr(err)
		a.Advice = "no answer from WeTix: check the network and run again"
		return a
	}
	a.Finding = fmt.Sprintf("HTTP %d %s; %s", answer.Status, r.red.bodyShape(answer), describeErr(err))
	if e, ok := client.AsError(err); ok && e.Kind == want {
		a.Verdict = AsAssumed
		return a
	}
	a.Verdict, a.Advice = Differs, mismatchAdvice
	return a
}

func (r *run) singleUse(ctx context.Context, spent string) (Answer, *client.Pair) {
	a := Answer{ID: QSingleUse, Question: questionText[QSingleUse],
		Assumed: "yes, and a refresh that got no answer may have spent it: the plugin never sends one twice, and falls back to the client-credentials grant"}
	p, answer, err := r.grant(ctx, r.good, spent)
	switch {
	case p != nil:
		a.Verdict, a.Finding = Harmless, fmt.Sprintf("no: the spent refresh token was accepted again (HTTP %d)", answer.Status)
	case answer.Status == 0:
		a.Verdict, a.Finding, a.Advice = Unanswered, describeErr(err), "no answer from WeTix: run again"
	default:
		a.Finding = fmt.Sprintf("yes: the spent one got HTTP %d %s; %s", answer.Status, r.red.bodyShape(answer), describeErr(err))
		if e, ok := client.AsError(err); ok && e.Kind == client.KindRejected {
			a.Verdict = AsAssumed
		} else {
			a.Verdict = Differs
			a.Advice = "the plugin would not read a spent refresh token as rejected, so it would not fall back at once: open an issue with this line"
		}
	}
	recovered, answer, err := r.grant(ctx, r.good, "")
	if recovered == nil {
		a.Verdict = Differs
		a.Finding += fmt.Sprintf("; then the client-credentials grant did NOT recover (HTTP %d; %s)", answer.Status, describeErr(err))
		a.Advice = "the plugin relies on the client-credentials grant to recover from a dead refresh token: report this line to WeTix and open an issue"
		return a, nil
	}
	a.Finding += "; the client-credentials grant then recovered"
	return a, recovered
}
