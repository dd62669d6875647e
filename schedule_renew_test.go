package wetix

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// withRenewals inserts lease renewals between a schedule's steps, drawn from
// a stream of their own so that a seed's other steps are what they were
// before renewals existed (seeds in old notes still replay).
func withRenewals(s schedule) schedule {
	r := rand.New(rand.NewPCG(s.Seed, 0x7e7e))
	var out []step
	for _, st := range s.Steps {
		if r.IntN(100) < 15 {
			ren := step{Kind: stRenew, Lease: r.IntN(8)}
			switch r.IntN(4) {
			case 0:
				ren.Inc = time.Duration(1+r.IntN(120)) * time.Second
			case 1:
				ren.Inc = time.Duration(1+r.IntN(48)) * time.Hour
			}
			out = append(out, ren)
		}
		out = append(out, st)
	}
	s.Steps = out
	return s
}

// heldLease is a lease as Vault keeps it: the secret with its issue time,
// and the data Vault stored with it.
type heldLease struct {
	secret *logical.Secret
	data   map[string]interface{}
	token  string
}

const maxHeldLeases = 8

var renewalsGranted, renewalsRefused atomic.Int64

func (w *world) hold(resp *logical.Response, now time.Time) {
	lease := *resp.Secret
	lease.IssueTime = now
	at, _ := resp.Data["access_token"].(string)
	h := heldLease{secret: &lease, data: resp.Data, token: at}
	if len(w.held) < maxHeldLeases {
		w.held = append(w.held, h)
		return
	}
	copy(w.held, w.held[1:])
	w.held[len(w.held)-1] = h
}

// renew is invariant 8: a renewal never calls WeTix and never answers the
// token; it is granted only on the token the mount holds, never past that
// token's expiry less the margin, never longer than ttl; it is refused, with
// the way out, whenever the README says the token must be read again (config
// gone, token replaced, secret change pending, token due); and where the
// model cannot tell, either answer passes but a grant still obeys the limits.
func (w *world) renew(st step, v storedView) error {
	if len(w.held) == 0 {
		return nil
	}
	h := w.held[st.Lease%len(w.held)]
	now := w.clock.Now()
	calls := w.wetix.TotalCalls()
	lease := *h.secret
	lease.Increment = st.Inc
	resp, err := w.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation,
		Path:      "token",
		Secret:    &lease,
		Data:      h.data,
		Storage:   w.storage,
	})
	if err != nil {
		return broke(8, "renewal failed with an internal error on healthy storage: %v", err)
	}
	if resp == nil {
		return broke(8, "renewal answered nothing")
	}
	if got := w.wetix.TotalCalls(); got != calls {
		return broke(8, "a renewal called WeTix %d times", got-calls)
	}
	if err := w.checkNoSecrets(resp, nil, false); err != nil {
		return err
	}
	granted := !resp.IsError()
	if !granted && !strings.Contains(resp.Error().Error(), "read <mount>/token again") && !strings.Contains(resp.Error().Error(), "vault write <mount>/config") {
		return broke(8, "renewal refused without saying what to do: %q", resp.Error())
	}

	c := v.credential()
	mustRefuse := false
	switch {
	case v.cfg == nil:
		mustRefuse = true
	case h.token != c.access:
		// Memory may briefly hold a state storage lacks after faults; the
		// grant's limits below still apply.
		mustRefuse = !w.m.fuzzy(now)
	case v.secretChangePending():
		mustRefuse = true
	default:
		all, some := due(c, v.ttl(), now)
		mustRefuse = all
		if !some && !w.m.fuzzy(now) && !granted {
			return broke(8, "renewal of the current, not-due token refused: %q; state: %s", resp.Error(), w.describe(v, now))
		}
	}
	if !granted {
		renewalsRefused.Add(1)
		return nil
	}
	renewalsGranted.Add(1)
	if mustRefuse {
		return broke(8, "renewal granted although the token must be read again; state: %s", w.describe(v, now))
	}
	if len(resp.Data) != 0 {
		return broke(8, "renewal answered data %v; the token belongs only in the token read", keysOf(resp.Data))
	}
	if resp.Secret == nil || !resp.Secret.Renewable {
		return broke(8, "renewal granted without a renewable lease: %+v", resp.Secret)
	}
	ttl := resp.Secret.TTL
	if ttl < time.Second || ttl > v.ttl() {
		return broke(8, "renewal granted a %s lease; ttl is %s", ttl, v.ttl())
	}
	if st.Inc >= time.Second && ttl > st.Inc {
		return broke(8, "renewal granted %s for an increment of %s", ttl, st.Inc)
	}
	if end := h.secret.IssueTime.Add(resp.Secret.MaxTTL); end.After(now.Add(v.ttl())) {
		return broke(8, "renewal lets Vault extend to %s, past now+ttl", end.Sub(now))
	}
	iat, exp, ok := jwtTimes(h.token)
	if !ok {
		return broke(8, "renewal granted on a token without exp")
	}
	left := exp.Sub(now)
	if margin := leaseMarginOf(exp.Sub(iat)); ttl+margin > left+time.Second {
		return broke(8, "renewed lease %s leaves less than the %s margin before the token's expiry (%s left)", ttl, margin, left)
	}
	return nil
}

func keysOf(m map[string]interface{}) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
