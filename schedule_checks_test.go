package wetix

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// violation names the invariant a step broke; inv is its number in the
// test's doc comment (TestLifecycleSchedules).
type violation struct {
	inv int
	msg string
}

func (v *violation) Error() string { return fmt.Sprintf("invariant %d: %s", v.inv, v.msg) }

func broke(inv int, format string, args ...any) error {
	return &violation{inv: inv, msg: fmt.Sprintf(format, args...)}
}

// jwtHeaderPrefix starts every WeTix token; no error or warning may hold one.
const jwtHeaderPrefix = "eyJhbGciOiJIUzI1NiJ9"

// checkStorage holds after every step, whatever ran: invariants 1 and 2, and
// that a generation's pair only moves forward.
func (w *world) checkStorage(before, after storedView, st step) error {
	if n := w.wetix.Replays(); n != 0 {
		return broke(1, "WeTix saw %d replays of spent refresh tokens", n)
	}
	if c := after.credential(); c.refresh != "" && !c.refreshSent && w.wetix.IsRefreshTokenSpent(c.refresh) {
		where := "the tokens entry"
		if c.fromSeed {
			where = "the config's seed (no tokens entry of its generation)"
		}
		return broke(2, "storage holds a refresh token spent at WeTix but not marked sent, in %s", where)
	}
	// Within one config generation the stored pair is only ever replaced by
	// a newer one: nothing servable is lost. A delete may drop it (the
	// operator asked for that), so steps with one are exempt.
	if st.Kind == stConfigDelete || burstHas(st, stConfigDelete) {
		return nil
	}
	if before.cfg == nil || after.cfg == nil || before.cfg.Generation != after.cfg.Generation {
		return nil
	}
	bt, at := before.tok, after.tok
	if bt == nil || bt.Generation != before.cfg.Generation {
		return nil
	}
	switch {
	case at == nil || at.Generation != bt.Generation:
		return broke(2, "the tokens entry of the current config generation vanished (now %s)", describeTokens(at))
	case bt.AccessToken != "" && at.AccessToken == "":
		return broke(2, "the stored access token was dropped (refreshes %d -> %d)", bt.Stats.Refreshes, at.Stats.Refreshes)
	case at.Stats.Refreshes < bt.Stats.Refreshes:
		return broke(2, "stored refresh count went back from %d to %d", bt.Stats.Refreshes, at.Stats.Refreshes)
	}
	if bt.AccessToken != "" && at.AccessToken != bt.AccessToken {
		_, be, _ := jwtTimes(bt.AccessToken)
		_, ae, _ := jwtTimes(at.AccessToken)
		if ae.Before(be) {
			return broke(2, "the stored access token was replaced by an older one")
		}
	}
	return nil
}

func describeTokens(t *rawTokens) string {
	if t == nil {
		return "no tokens entry"
	}
	return fmt.Sprintf("generation %q, access token %v, refresh token %v", t.Generation, t.AccessToken != "", t.RefreshToken != "")
}

func burstHas(st step, k stepKind) bool {
	return slices.ContainsFunc(st.Burst, func(m step) bool { return m.Kind == k })
}

// checkDeleted is invariant 3, probed after every step while the last config
// change was a successful delete.
func (w *world) checkDeleted() error {
	if keys := w.view().keys; len(keys) != 0 {
		return broke(3, "after a successful delete storage still holds %v", keys)
	}
	resp, err := w.request(logical.ReadOperation, "token", nil)
	if got, text := classify(resp, err); got != oNotConf {
		return broke(3, "after a successful delete a token read gives %s %s", got, text)
	}
	resp, err = w.request(logical.ReadOperation, "status", nil)
	if err != nil || resp == nil || resp.Data["configured"] != false {
		return broke(3, "after a successful delete status says configured=%v (err %v)", dataOf(resp, "configured"), err)
	}
	resp, err = w.request(logical.ReadOperation, "config", nil)
	if err != nil || (resp != nil && resp.Data != nil) {
		return broke(3, "after a successful delete the config still reads (err %v)", err)
	}
	w.settle()
	if keys := w.view().keys; len(keys) != 0 {
		return broke(3, "after a successful delete, probing wrote %v", keys)
	}
	w.checked++
	return nil
}

func dataOf(resp *logical.Response, k string) any {
	if resp == nil || resp.Data == nil {
		return nil
	}
	return resp.Data[k]
}

// checkToken is invariant 4 for one served token; ttls are the ttl values
// that may be in effect (a burst may change it).
func (w *world) checkToken(resp *logical.Response, now time.Time, ttls ...time.Duration) error {
	at, _ := resp.Data["access_token"].(string)
	if !w.wetix.IsAccessTokenValid(at) {
		return broke(4, "the served access token is not valid at WeTix")
	}
	iat, exp, _ := jwtTimes(at)
	if resp.Secret == nil {
		return broke(4, "token served without a lease")
	}
	lease, left := resp.Secret.TTL, exp.Sub(now)
	if lease <= 0 || lease >= left {
		return broke(4, "lease %s does not end before the token, which has %s left", lease, left)
	}
	// The plugin may report up to a second early (expires_in is whole
	// seconds against a clock read after WeTix's), never late.
	if got, _ := resp.Data["expires_at"].(string); got != exp.UTC().Format(time.RFC3339) && got != exp.Add(-time.Second).UTC().Format(time.RFC3339) {
		return broke(4, "expires_at %v, but the token expires at %s", got, exp.UTC().Format(time.RFC3339))
	}
	if len(resp.Warnings) > 0 {
		return nil
	}
	// Never a lease under 2 s where the token and ttl allow one: Agent
	// re-reads at 90% of a lease and must land in a later second.
	if lease < 2*time.Second && slices.Min(ttls) >= 2*time.Second {
		long := true
		for _, r := range readings {
			life, _, _ := lifeOf(at, now, r)
			long = long && life-leaseMarginOf(life) >= 2*time.Second
		}
		if long {
			return broke(4, "healthy read gives a %s lease although the token and ttl allow 2 s", lease)
		}
	}
	for _, ttl := range ttls {
		if lease == ttl {
			return nil
		}
		for _, r := range readings {
			if life, _, _ := lifeOf(at, now, r); !carriesFullLease(life, ttl) {
				return nil
			}
		}
	}
	life := exp.Sub(iat)
	return broke(4, "healthy read of a %s token gives a %s lease, want exactly ttl %v", life, lease, ttls)
}

// checkNoSecrets: no error, warning or status field carries a client secret
// or any token.
func (w *world) checkNoSecrets(resp *logical.Response, err error, isToken bool) error {
	var texts []string
	if err != nil {
		texts = append(texts, err.Error())
	}
	if resp != nil {
		texts = append(texts, resp.Warnings...)
		if resp.IsError() {
			texts = append(texts, resp.Error().Error())
		}
		if !isToken {
			for _, v := range resp.Data {
				if s, ok := v.(string); ok {
					texts = append(texts, s)
				}
			}
		}
	}
	for _, t := range texts {
		if strings.Contains(t, jwtHeaderPrefix) {
			return broke(7, "a token appears in %q", t)
		}
		for l, s := range w.secrets {
			if strings.Contains(t, s) {
				return broke(7, "client secret %s appears in an answer", l)
			}
		}
	}
	return nil
}
