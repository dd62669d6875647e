package wetix

import (
	"context"
	"errors"
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
// token's expiry less the margin, never longer than ttl; it is refused with a
// 400 saying what to do whenever the README says the token must be read
// again (config gone, token replaced, token unable to carry a full ttl lease)
// and granted whenever a read would serve the same token on a full lease;
// where the model cannot tell, either answer passes but a grant still obeys
// the limits.
func (w *world) renew(st step, v storedView) error {
	if len(w.held) == 0 {
		return nil
	}
	h := w.held[st.Lease%len(w.held)]
	now := w.clock.Now()
	resp, err := w.renewLease(h, st.Inc)
	if err != nil {
		return err
	}
	granted := resp != nil
	c := v.credential()
	mustRefuse, mustGrant := false, false
	switch {
	case v.cfg == nil:
		mustRefuse = true
	case h.token != c.access:
		// Memory may briefly hold a state storage lacks after faults; the
		// grant's limits below still apply.
		mustRefuse = !w.m.fuzzy(now)
	default:
		yes, maybe := servable(c, v.ttl(), now)
		mustRefuse = !yes && !maybe
		mustGrant = yes && !w.m.fuzzy(now)
	}
	switch {
	case !granted && mustGrant:
		return broke(8, "renewal of the current token, which can still carry a full ttl lease, refused; state: %s", w.describe(v, now))
	case granted && mustRefuse:
		return broke(8, "renewal granted although the token must be read again; state: %s", w.describe(v, now))
	case granted:
		return w.checkGrant(h, resp, st.Inc, v.ttl(), now)
	}
	return nil
}

// renewLease sends Vault's renewal of h and checks what every answer must
// obey: no WeTix call, no secret, a refusal is a 400 with the way out. resp
// is nil when the renewal was refused.
func (w *world) renewLease(h heldLease, inc time.Duration) (*logical.Response, error) {
	calls := w.wetix.TotalCalls()
	lease := *h.secret
	lease.Increment = inc
	resp, err := w.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation,
		Path:      "token",
		Secret:    &lease,
		Data:      h.data,
		Storage:   w.storage,
	})
	if got := w.wetix.TotalCalls(); got != calls {
		return nil, broke(8, "a renewal called WeTix %d times", got-calls)
	}
	if err := w.checkNoSecrets(resp, err, false); err != nil {
		return nil, err
	}
	if err != nil {
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) || coded.Code() != 400 {
			return nil, broke(8, "renewal failed with an internal error on healthy storage: %v", err)
		}
		if !strings.Contains(err.Error(), "read <mount>/token again") && !strings.Contains(err.Error(), "vault write <mount>/config") {
			return nil, broke(8, "renewal refused without saying what to do: %q", err)
		}
		renewalsRefused.Add(1)
		return nil, nil
	}
	if resp == nil || resp.IsError() {
		return nil, broke(8, "renewal answered %v; want a lease or a 400", resp)
	}
	renewalsGranted.Add(1)
	return resp, nil
}

func (w *world) checkGrant(h heldLease, resp *logical.Response, inc, ttl time.Duration, now time.Time) error {
	if len(resp.Data) != 0 {
		return broke(8, "renewal answered data %v; the token belongs only in the token read", keysOf(resp.Data))
	}
	if resp.Secret == nil || !resp.Secret.Renewable {
		return broke(8, "renewal granted without a renewable lease: %+v", resp.Secret)
	}
	got := resp.Secret.TTL
	if got < time.Second || got > ttl {
		return broke(8, "renewal granted a %s lease; ttl is %s", got, ttl)
	}
	if inc >= time.Second && got > inc {
		return broke(8, "renewal granted %s for an increment of %s", got, inc)
	}
	// Vault caps a renewal at IssueTime, truncated to the second, + MaxTTL.
	if end := h.secret.IssueTime.Truncate(time.Second).Add(resp.Secret.MaxTTL); end.After(now.Add(ttl)) {
		return broke(8, "renewal lets Vault extend to %s, past now+ttl", end.Sub(now))
	}
	iat, exp, ok := jwtTimes(h.token)
	if !ok {
		return broke(8, "renewal granted on a token without exp")
	}
	left := exp.Sub(now)
	if margin := leaseMarginOf(exp.Sub(iat)); got+margin > left+time.Second {
		return broke(8, "renewed lease %s leaves less than the %s margin before the token's expiry (%s left)", got, margin, left)
	}
	return nil
}

// renewAtOnce: a renewable lease a read hands out is renewable right away.
// Agent renews as soon as it holds a lease and reads again when refused; a
// read that served the same token on a lease it then refused would loop.
func (w *world) renewAtOnce(resp *logical.Response, now time.Time) error {
	if resp.Secret == nil || !resp.Secret.Renewable {
		return nil
	}
	lease := *resp.Secret
	lease.IssueTime = now
	at, _ := resp.Data["access_token"].(string)
	// Agent's renewal lands a moment after the read, maybe in the next
	// second: the lease must stay renewable for 2 s.
	if yes, maybe := servable(credential{access: at}, lease.TTL, now.Add(2*time.Second)); !yes && !maybe {
		return broke(8, "a read handed out a renewable %s lease whose token cannot carry it 2 s later (Agent's renewal would be refused)", lease.TTL)
	}
	h := heldLease{secret: &lease, data: resp.Data, token: at}
	granted, err := w.renewLease(h, 0)
	if err != nil {
		return err
	}
	if granted == nil {
		return broke(8, "a read handed out a renewable lease whose renewal right away is refused (Agent would loop read/renew)")
	}
	return w.checkGrant(h, granted, 0, resp.Secret.TTL, now)
}

func keysOf(m map[string]interface{}) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
