package sandboxcheck

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

// probeInput is a createMovieOrder input in the shape of WeTix's signature
// example, whose strings hold the characters the two rules write
// differently (& < >), so exactly one of the two signatures can verify. The
// session key is made up unless Config.SessionKey is set: WeTix should then
// refuse the order for its session, after the signature check.
func probeInput(sessionKey string) map[string]any {
	if sessionKey == "" {
		sessionKey = "wetix-check-no-such-session"
	}
	return map[string]any{
		"concessions": nil,
		"customer": map[string]any{
			"email":      "wetix-check+a&b@example.com",
			"externalId": "wetix-check",
			"phoneNo":    "0123456789",
		},
		"promoCode":   nil,
		"redirectUrl": "https://example.com/return?a=1&b=<2>",
		"referenceId": "wetix-check-a&b<c>",
		"sessionKey":  sessionKey,
		"tickets":     []any{map[string]any{"key": "wetix-check-ticket", "quantity": 1}},
	}
}

// signedMutation is what an app sends: the mutation with $input and
// $signature variables, as WeTix's docs show it.
const signedMutation = `mutation Order($input: CreateMovieOrderInput!, $signature: SignatureInput!) { createMovieOrder(input: $input, signature: $signature) { id referenceId } }`

func (r *run) sendSigned(ctx context.Context, accessToken string, inputJSON []byte, sig signature.Signature) graphQLAnswer {
	return r.postGraphQL(ctx, accessToken, map[string]any{
		"query":     signedMutation,
		"variables": map[string]any{"input": json.RawMessage(inputJSON), "signature": sig},
	})
}

// canonicalRule sends the same input signed under each rule, between two
// sends signed over other bytes. Those two answers are what a signature
// refusal looks like on this WeTix (its codes are undocumented); a rule
// whose answer differs from it got past the signature check.
func (r *run) canonicalRule(ctx context.Context, accessToken string) Answer {
	a := Answer{ID: QCanonicalRule, Question: questionText[QCanonicalRule],
		Assumed: "`go` (the default canonical_json: Go's encoding/json re-encoding, < > & escaped, numbers as float64)"}
	if r.cfg.SigningKey == nil {
		a.Verdict, a.Finding = Unanswered, "not asked: no signing key"
		a.Advice = "set WETIX_SIGNING_KEY_FILE to the PEM private key whose public key WeTix holds for this sandbox client"
		return a
	}
	inputJSON, err := json.Marshal(probeInput(r.cfg.SessionKey))
	if err != nil {
		a.Verdict, a.Finding = Unanswered, err.Error()
		return a
	}
	// Four sends: a wrong signature first and last, the two rules between.
	// Each gets its own timestamp, one second apart and rising, so a WeTix
	// that refuses a timestamp it has seen (undocumented: assume it may)
	// checks every signature; and the two wrong ones must be answered
	// alike, or the answers depend on what came before (a replay guard on
	// the input, a rate limit) and the rule cannot be read from them.
	now := r.cfg.Now().Unix()
	sendAt := func(secondsAgo int64, canonical []byte) (graphQLAnswer, error) {
		sig, _, err := signature.SignInput(r.cfg.SigningKey, r.cfg.ClientID, signature.CreateMovieOrder, canonical, now-secondsAgo)
		if err != nil {
			return graphQLAnswer{}, err
		}
		return r.sendSigned(ctx, accessToken, inputJSON, sig), nil
	}
	otherBytes := []byte(`{"wetix-check":"these bytes are not the input"}`)
	rules := int64(len(signature.Rules))
	control, err := sendAt(rules+1, otherBytes)
	if err != nil {
		a.Verdict, a.Finding = Unanswered, err.Error()
		a.Advice = "the signing key could not sign: it must be an RSA private key in PEM"
		return a
	}
	results := map[string]graphQLAnswer{}
	for i, rule := range signature.Rules {
		canonical, _, err := rule.Canonicalize(inputJSON)
		if err == nil {
			if results[string(rule)], err = sendAt(rules-int64(i), canonical); err == nil {
				continue
			}
		}
		a.Verdict, a.Finding = Unanswered, fmt.Sprintf("signing under %s: %v", rule, err)
		a.Advice = "the signing key could not sign: it must be an RSA private key in PEM"
		return a
	}
	lastControl, err := sendAt(0, otherBytes)
	if err != nil {
		a.Verdict, a.Finding = Unanswered, err.Error()
		return a
	}
	for _, g := range append([]graphQLAnswer{control, lastControl}, results["go"], results["literal"]) {
		if g.err != nil {
			a.Verdict, a.Finding, a.Advice = Unanswered, "no answer: "+g.err.Error(), "check the GraphQL URL and the network, and run again"
			return a
		}
	}
	if control.fingerprint() != lastControl.fingerprint() {
		a.Verdict = Unanswered
		a.Finding = fmt.Sprintf("a wrong signature, sent first: %s; the same, sent last: %s; go: %s; literal: %s",
			r.outcome(control), r.outcome(lastControl), r.outcome(results["go"]), r.outcome(results["literal"]))
		a.Advice = "two identical wrong signatures were answered differently, so WeTix's answer depended on the requests before it (a replay guard or a rate limit) or on the seconds between them (a timestamp window of a second or two: check this machine's clock): run again in a few minutes, and if it repeats open an issue with this line"
		return a
	}
	passed := func(g graphQLAnswer) bool { return g.fingerprint() != control.fingerprint() }
	goPassed, literalPassed := passed(results["go"]), passed(results["literal"])
	a.Finding = fmt.Sprintf("go: %s; literal: %s; a wrong signature: %s",
		r.outcome(results["go"]), r.outcome(results["literal"]), r.outcome(control))
	switch {
	case goPassed && !literalPassed:
		a.Verdict = AsAssumed
		a.Finding = "go (only the go signature got past the signature check); " + a.Finding
	case literalPassed && !goPassed:
		a.Verdict = Differs
		a.Finding = "literal (only the literal signature got past the signature check); " + a.Finding
		a.Advice = "switch every mount: `vault write wetix/config canonical_json=literal`, and tell us in an issue"
	case goPassed && literalPassed:
		a.Verdict = Unanswered
		a.Advice = "both signatures got past, so WeTix did not tell them apart: open an issue with this line"
	default:
		a.Verdict = Unanswered
		a.Advice = "all four were answered alike, so WeTix refused the order before (or without) checking the signature: check that WeTix holds this key's public key and that this machine's clock is right (a refusal naming the timestamp means WeTix's window is narrower than the few seconds the check spans), or give a real order session with WETIX_CHECK_SESSION_KEY and run again"
	}
	return a
}

// outcome is one answer in a few words: accepted, or the refusal's status,
// code and message.
func (r *run) outcome(g graphQLAnswer) string {
	if g.Status == 200 && len(g.Errors) == 0 {
		return "accepted"
	}
	msg := ""
	if len(g.Errors) > 0 {
		msg = g.Errors[0].Message
		if len(msg) > 80 {
			msg = msg[:80] + "…"
		}
	}
	return fmt.Sprintf("HTTP %d %s %s", g.Status, g.code(), quoteForTable(r.red.clean(msg)))
}
