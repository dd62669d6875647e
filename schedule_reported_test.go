package wetix

import (
	"net/http"
	"regexp"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/metricstest"
)

// checkReported is invariants 8 and 9: what metrics and status report after
// a step, probed without changing anything.
func (w *world) checkReported(st step, after storedView) error {
	if err := w.checkCountersMonotone(st, after); err != nil {
		return err
	}
	return w.checkServedUntil(after)
}

// checkCountersMonotone is invariant 8: no counter of the metrics path ever
// goes below its value after the previous step (Prometheus would read a
// reset, and alerts on increase() would fire), across crashes, reloads,
// storage faults and config writes; only a config delete may reset them,
// which their HELP says.
func (w *world) checkCountersMonotone(st step, after storedView) error {
	resp, err := w.request(logical.ReadOperation, "metrics", nil)
	if err != nil || resp == nil || resp.IsError() || resp.Data[logical.HTTPStatusCode] != http.StatusOK {
		return broke(8, "metrics read failed: %v %v", err, dataOf(resp, "error"))
	}
	body, _ := resp.Data[logical.HTTPRawBody].([]byte)
	now := counterSamples(metricstest.Parse(w.t, body))
	if st.Kind == stConfigDelete || burstHas(st, stConfigDelete) || after.cfg == nil {
		w.counters = now
		return nil
	}
	for series, was := range w.counters {
		if got, ok := now[series]; !ok || got < was {
			return broke(8, "counter %s went from %v to %v (present %v)", series, was, got, ok)
		}
	}
	w.counters = now
	return nil
}

var servedUntilInAdvice = regexp.MustCompile(`served until (\S+?)[ .,;)]`)

// checkServedUntil is invariant 9: status's served_until (and any "served
// until" in its advice) is the last instant a read is still served the
// token status reports, by the oracle's own reckoning of the README's rule
// (servable), not the plugin's.
func (w *world) checkServedUntil(after storedView) error {
	resp, err := w.request(logical.ReadOperation, "status", nil)
	if err != nil || resp == nil || resp.IsError() {
		return broke(9, "status read failed: %v", err)
	}
	raw, _ := resp.Data["served_until"].(string)
	advice, _ := resp.Data["advice"].(string)
	if m := servedUntilInAdvice.FindStringSubmatch(advice); m != nil && m[1] != raw {
		return broke(9, "advice says served until %s, served_until is %q: %q", m[1], raw, advice)
	}
	c := after.credential()
	if raw == "" || c.access == "" {
		return nil
	}
	// Status reports the token it holds, which may be newer than storage's
	// (a pair kept in memory while storage failed): judge only the stored one.
	if _, exp, ok := jwtTimes(c.access); !ok || !closeTo(resp.Data["access_token_expires_at"], exp) {
		return nil
	}
	until, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return broke(9, "served_until %q is not RFC 3339: %v", raw, err)
	}
	ttl := after.ttl()
	// Through an outage a read is served while the token is not due, and
	// once due while it can carry a full ttl lease (servable); a token
	// obtained with a since-replaced secret is due whatever the clock says.
	// After a refusal (the README: a due token is served through WeTix
	// being unavailable or storage failing, nothing else) the next refresh
	// is taken to be refused too, so only a token that is not due is.
	pending := after.secretChangePending()
	refused := after.refusedSinceLastRefresh()
	served := func(at time.Time) (yes, maybe bool) {
		yes, maybe = servable(c, ttl, at)
		if pending {
			return yes, maybe
		}
		if refused {
			yes, maybe = false, false
		}
		allDue, someDue := due(c, ttl, at)
		return yes || !someDue, maybe || !allDue
	}
	// RFC 3339 drops the fraction: the true instant is in [until, until+1s).
	if yes, maybe := served(until); !yes && !maybe {
		return broke(9, "served_until %s, but a read at that instant is not served (ttl %s)", raw, ttl)
	}
	if yes, _ := served(until.Add(2 * time.Second)); yes {
		return broke(9, "served_until %s, but a read 2 s later is still served (ttl %s)", raw, ttl)
	}
	return nil
}

// closeTo: status's expiry (RFC 3339) is exp or a second before it (the
// plugin may count expires_in from a clock read after WeTix's).
func closeTo(v any, exp time.Time) bool {
	s, _ := v.(string)
	return s == exp.UTC().Format(time.RFC3339) || s == exp.Add(-time.Second).UTC().Format(time.RFC3339)
}
