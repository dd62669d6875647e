package wetix

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// issuedLease is a token read's lease as Vault keeps it: with the issue time
// Vault stamps on it.
func (h *harness) issuedLease() (*logical.Secret, *logical.Response) {
	h.t.Helper()
	resp := h.readToken()
	lease := *resp.Secret
	lease.IssueTime = h.clock.Now()
	return &lease, resp
}

// renew sends the renewal Vault sends for lease, with the data Vault kept for it.
func (h *harness) renew(lease *logical.Secret, increment time.Duration, data map[string]interface{}) (*logical.Response, error) {
	h.t.Helper()
	l := *lease
	l.Increment = increment
	return h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation,
		Path:      "token",
		Secret:    &l,
		Data:      data,
		Storage:   h.storage,
	})
}

// wantRenewRefused: a 400 (Vault shows its text as is; an error response
// would reach the CLI as a Go struct dump) that says why and what to do.
func wantRenewRefused(t *testing.T, resp *logical.Response, err error, says string) {
	t.Helper()
	var coded logical.HTTPCodedError
	if err == nil || !errors.As(err, &coded) || coded.Code() != 400 || resp != nil {
		t.Fatalf("renewal: want a 400 refusal saying %q, got resp=%v err=%v", says, resp, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, says) || !strings.Contains(msg, "read <mount>/token again") {
		t.Fatalf("refusal %q does not say %q and how to get the current token", msg, says)
	}
}

func TestTokenLeaseIsRenewableUpToTheTokensLeasableLife(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "10m"})
	lease, resp := h.issuedLease()
	exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	if !lease.Renewable || lease.TTL != 10*time.Minute {
		t.Fatalf("lease: renewable=%v ttl=%v, want a renewable 10m lease", lease.Renewable, lease.TTL)
	}
	if end := lease.IssueTime.Add(lease.MaxTTL); end.After(exp.Add(-time.Minute)) || end.Before(exp.Add(-time.Minute-time.Second)) {
		t.Fatalf("max TTL ends %v; want the token's expiry %v less the 1m margin", end, exp)
	}
	if fp, _ := lease.InternalData[leaseTokenKey].(string); fp == "" || strings.Contains(fp, resp.Data["access_token"].(string)) {
		t.Fatalf("lease's internal data must carry a fingerprint of the token, not the token: %q", fp)
	}
}

func TestRenewalExtendsByTTLWithoutCallingWeTixOrReturningTheToken(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "10m"})
	lease, read := h.issuedLease()
	for i := 0; i < 4; i++ {
		h.clock.Advance(7 * time.Minute)
		resp, err := h.renew(lease, 0, read.Data)
		if err != nil || resp.IsError() {
			t.Fatalf("renewal %d at %v: resp=%v err=%v", i, h.clock.Now(), resp, err)
		}
		if resp.Secret == nil || resp.Secret.TTL != 10*time.Minute || !resp.Secret.Renewable {
			t.Fatalf("renewal %d: lease %+v, want a renewable 10m lease", i, resp.Secret)
		}
		if len(resp.Data) != 0 {
			t.Fatalf("renewal %d answered data %v: the access token belongs only in the token read", i, resp.Data)
		}
		if end := lease.IssueTime.Add(resp.Secret.MaxTTL); !end.Equal(h.clock.Now().Add(10 * time.Minute)) {
			t.Fatalf("renewal %d: max TTL lets Vault extend to %v, want now+ttl %v", i, end, h.clock.Now().Add(10*time.Minute))
		}
	}
	h.wantCalls(1, 0)
}

func TestRenewalHonoursAShorterIncrementAndCapsALongerOne(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "10m"})
	lease, read := h.issuedLease()
	h.clock.Advance(time.Minute)
	resp, err := h.renew(lease, 90*time.Second, read.Data)
	if err != nil || resp.IsError() || resp.Secret.TTL != 90*time.Second {
		t.Fatalf("increment 90s: resp=%v err=%v", resp, err)
	}
	resp, err = h.renew(lease, 24*time.Hour, read.Data)
	if err != nil || resp.IsError() || resp.Secret.TTL != 10*time.Minute {
		t.Fatalf("increment 24h: resp=%v err=%v", resp, err)
	}
	// Vault grants an increment up to IssueTime+MaxTTL: that must be now+ttl.
	if end := lease.IssueTime.Add(resp.Secret.MaxTTL); end.After(h.clock.Now().Add(10 * time.Minute)) {
		t.Fatalf("a 24h increment could extend the lease to %v, past now+ttl", end)
	}
}

func TestRenewalIsRefusedOnceTheTokenCannotCarryTTLAndAfterItIsReplaced(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "10m"})
	lease, read := h.issuedLease()
	// The token (1h less a second) can carry a full 10m lease until 10m+1m
	// before its expiry.
	h.clock.Advance(49*time.Minute + 30*time.Second)
	resp, err := h.renew(lease, 0, read.Data)
	wantRenewRefused(t, resp, err, "too close to its expiry")
	h.wantCalls(1, 0) // a renewal never calls WeTix

	fresh := h.readToken()
	h.wantCalls(1, 1)
	if fresh.Data["access_token"] == read.Data["access_token"] {
		t.Fatal("the read after the refused renewal did not refresh")
	}
	resp, err = h.renew(lease, 0, read.Data)
	wantRenewRefused(t, resp, err, "has been replaced")
}

func TestRenewalIsRefusedAfterRotateAndAfterConfigDelete(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "10m"})
	lease, read := h.issuedLease()
	if resp, err := h.request(logical.UpdateOperation, "rotate", nil); err != nil || resp.IsError() {
		t.Fatalf("rotate: %v %v", resp, err)
	}
	resp, err := h.renew(lease, 0, read.Data)
	wantRenewRefused(t, resp, err, "has been replaced")

	lease, read = h.issuedLease()
	if resp, err := h.request(logical.DeleteOperation, "config", nil); err != nil || resp.IsError() {
		t.Fatalf("config delete: %v %v", resp, err)
	}
	resp, err = h.renew(lease, 0, read.Data)
	var coded logical.HTTPCodedError
	if err == nil || !errors.As(err, &coded) || coded.Code() != 400 || !strings.Contains(err.Error(), "vault write <mount>/config") {
		t.Fatalf("renewal after delete: want a 400 naming the fix, got %v %v", resp, err)
	}
}

func TestRenewalOfALeaseWithoutAFingerprintIsRefused(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "10m"})
	lease, read := h.issuedLease()
	lease.InternalData = map[string]interface{}{"secret_type": secretAccessTokenType}
	resp, err := h.renew(lease, 0, read.Data)
	wantRenewRefused(t, resp, err, "has been replaced")
}

// Whatever the timing of renewals, a renewed lease never ends past its
// token's expiry less the margin, and a renewal is granted only on the token
// the mount serves.
func TestRenewedLeasesNeverOutliveTheirToken(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	for _, ttl := range []string{"5s", "10m", "50m"} {
		h := newHarness(t)
		h.configure(map[string]interface{}{"ttl": ttl})
		type held struct {
			lease *logical.Secret
			data  map[string]interface{}
		}
		var leases []held
		granted := 0
		for step := 0; step < 400; step++ {
			h.clock.Advance(time.Duration(rng.Int63n(int64(3 * time.Minute))))
			if rng.Intn(4) == 0 || len(leases) == 0 {
				lease, read := h.issuedLease()
				leases = append(leases, held{lease, read.Data})
				continue
			}
			l := leases[rng.Intn(len(leases))]
			resp, err := h.renew(l.lease, time.Duration(rng.Intn(3))*time.Duration(rng.Int63n(int64(2*time.Hour))), l.data)
			var coded logical.HTTPCodedError
			if err != nil && (!errors.As(err, &coded) || coded.Code() != 400) {
				t.Fatalf("seed %d ttl %s step %d: renewal error %v", seed, ttl, step, err)
			}
			if err != nil {
				continue
			}
			granted++
			st := h.stored()
			if st.AccessToken != l.data["access_token"] {
				t.Fatalf("seed %d ttl %s step %d: renewal granted on a token the mount no longer serves", seed, ttl, step)
			}
			limit := st.AccessExpiresAt.Add(-leaseMargin(st.accessLifetime()))
			if end := h.clock.Now().Add(resp.Secret.TTL); end.After(limit) {
				t.Fatalf("seed %d ttl %s step %d: renewed lease ends %v, past the token's expiry less the margin %v", seed, ttl, step, end, limit)
			}
			if resp.Secret.TTL < minLease {
				t.Fatalf("seed %d ttl %s step %d: renewed lease of %v", seed, ttl, step, resp.Secret.TTL)
			}
		}
		if granted == 0 {
			t.Fatalf("seed %d ttl %s: no renewal granted in 400 steps; the walk tests nothing", seed, ttl)
		}
	}
}

// A lease that could not be renewed at once is issued non-renewable: Agent
// renews a lease as soon as it has it and, refused, reads again within the
// same second, which it then ignores.
func TestALeaseCutShortNearTheTokensEndIsNotRenewable(t *testing.T) {
	h := newHarness(t)
	// 1h tokens cannot carry 59m leases for 10% of their life: leases are cut.
	h.configure(map[string]interface{}{"ttl": "59m"})
	h.clock.Advance(20 * time.Minute)
	lease, read := h.issuedLease()
	if lease.TTL >= 59*time.Minute {
		t.Fatalf("setup: lease %v is not cut", lease.TTL)
	}
	if lease.Renewable {
		t.Fatalf("a %v lease cut from ttl 59m is renewable, but its renewal would be refused", lease.TTL)
	}
	if lease.MaxTTL != lease.TTL {
		t.Fatalf("non-renewable lease with max TTL %v != TTL %v", lease.MaxTTL, lease.TTL)
	}
	_ = read
}

// Every renewable lease a read hands out is renewable at once, whatever the
// state: the promise Agent and VSO rely on not to loop.
func TestEveryRenewableLeaseIsRenewableAtOnce(t *testing.T) {
	for _, ttl := range []string{"2s", "5m", "30m", "55m"} {
		h := newHarness(t)
		h.configure(map[string]interface{}{"ttl": ttl})
		for step := 0; step < 80; step++ {
			h.clock.Advance(time.Minute + 7*time.Second)
			resp, err := h.request(logical.ReadOperation, "token", nil)
			if err != nil || resp.IsError() {
				continue
			}
			lease := *resp.Secret
			lease.IssueTime = h.clock.Now()
			if !lease.Renewable {
				continue
			}
			if r, err := h.renew(&lease, 0, resp.Data); err != nil || r.IsError() {
				t.Fatalf("ttl %s step %d: a renewable %v lease was refused at once: %v", ttl, step, lease.TTL, err)
			}
		}
	}
}
