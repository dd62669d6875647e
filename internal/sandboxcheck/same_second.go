package sandboxcheck

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

// sameSecond asks whether WeTix checks a second, different order signed in
// the same second as the first. WeTix documents the timestamp only as "the
// UNIX timestamp": a replay guard keyed on it alone would refuse every
// order but the first in each second, and the plugin signs with Vault's
// clock in whole seconds, so apps placing orders together share one. The
// two inputs differ (their referenceId), so a guard keyed on the input or
// the signature lets both through; only a timestamp guard tells them apart.
func (r *run) sameSecond(ctx context.Context, accessToken string, found ruleFound) Answer {
	a := Answer{ID: QSameSecond, Question: questionText[QSameSecond],
		Assumed: "yes: orders signed in the same second (the plugin signs in whole seconds of Vault's clock) are each checked; no replay guard on the timestamp alone"}
	if found.rule == "" {
		a.Verdict, a.Finding = Unanswered, "not asked"
		a.Advice = "the rule question (line above) found no signature WeTix lets past; answer it first"
		return a
	}
	at := r.cfg.Now().Unix()
	send := func(referenceID string) graphQLAnswer {
		input := probeInput(r.cfg.SessionKey)
		input["referenceId"] = referenceID
		inputJSON, err := json.Marshal(input)
		if err != nil {
			return graphQLAnswer{err: err}
		}
		canonical, _, err := found.rule.Canonicalize(inputJSON)
		if err != nil {
			return graphQLAnswer{err: err}
		}
		sig, _, err := signature.SignInput(r.cfg.SigningKey, r.cfg.ClientID, signature.CreateMovieOrder, canonical, at)
		if err != nil {
			return graphQLAnswer{err: err}
		}
		return r.sendSigned(ctx, accessToken, inputJSON, sig)
	}
	first, second := send("wetix-check-same-second-1"), send("wetix-check-same-second-2")
	for _, g := range []graphQLAnswer{first, second} {
		if g.err != nil {
			a.Verdict, a.Finding, a.Advice = Unanswered, "no answer: "+g.err.Error(), "check the GraphQL URL and the network, and run again"
			return a
		}
	}
	a.Finding = fmt.Sprintf("first: %s; second, same second: %s", r.outcome(first), r.outcome(second))
	switch {
	case first.fingerprint() == found.refusal.fingerprint():
		a.Verdict = Unanswered
		a.Advice = fmt.Sprintf("the first order was refused like a wrong signature, though the rule question's %s signature got past: run again, and if it repeats open an issue with this line", found.rule)
	case first.fingerprint() == second.fingerprint():
		a.Verdict = AsAssumed
		a.Finding = "yes: both were checked and answered alike; " + a.Finding
	case r.cfg.SessionKey != "" && first.Status == 200 && len(first.Errors) == 0:
		// A real session: the first order may have used it up, which
		// would explain the second's refusal as well as a guard would.
		a.Verdict = Unanswered
		a.Advice = "the first order was accepted (a real session), so the second's refusal may be the session's: run again with a made-up session (unset WETIX_CHECK_SESSION_KEY)"
	default:
		a.Verdict = Differs
		a.Finding = "no: the second order, signed in the same second, was answered differently; " + a.Finding
		a.Advice = "WeTix seems to refuse a second order signed in the same second by this client (if the second answer is a rate limit instead, run again in a few minutes). The plugin signs in whole seconds of Vault's clock, so until it spaces timestamps apart, apps of this client must not sign two orders within one second: queue them, and tell us in an issue with this line"
	}
	return a
}
