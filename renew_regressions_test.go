package wetix

import (
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// A read that hands out a renewable lease must be renewable right away: Vault
// Agent's template engine (consul-template, RenewBehaviorErrorOnErrors) renews
// a lease as soon as it has it, and on a refusal reads again at once. If the
// read keeps serving the same token on a lease whose renewal is refused, Agent
// loops read -> renew (refused) -> read at consul-template's 100ms rate limit:
// ten reads a second, each a new lease in Vault, for as long as the state
// lasts (a secret change written before WeTix activates it, a WeTix outage
// over a 60-day token's 6-day refresh window, a storage outage). Either the
// stale-served lease is not renewable (Agent then waits ~90% of it, as with
// non-renewable leases before), or its renewal is granted.
func TestStaleServedLeaseIsRenewableRightAway(t *testing.T) {
	cases := []struct {
		name string
		// enter puts the mount in a state where reads serve the current token
		// with a warning instead of a new one.
		enter func(h *harness)
	}{
		{"secret change pending (typo or not yet active at WeTix)", func(h *harness) {
			h.writeConfig(map[string]interface{}{"client_secret": "mistyped-secret"})
		}},
		{"WeTix down while the token is in its refresh window", func(h *harness) {
			// 24h tokens: the 10% window starts 2.4h before expiry, and a
			// token 2h from expiry still carries full 5m leases.
			h.clock.Advance(22 * time.Hour)
			h.wetix.Fault(wetixtest.FaultStatus(503, ""))
		}},
		{"storage failing while the token is in its refresh window", func(h *harness) {
			h.clock.Advance(22 * time.Hour)
			h.storage.failPuts.Store(true)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withAccessTTL(24*time.Hour), func(o *wetixtest.Options) { o.RefreshTTL = 72 * time.Hour })
			h.configure(map[string]interface{}{"ttl": "5m"})
			first := h.readToken().Data["access_token"]
			tc.enter(h)

			lease, read := h.issuedLease()
			if read.Data["access_token"] != first || len(read.Warnings) == 0 {
				t.Fatalf("setup: want the current token served with a warning, got warnings %v", read.Warnings)
			}
			if !lease.Renewable {
				return // not renewable: Agent waits out the lease, no loop
			}
			resp, err := h.renew(lease, 0, read.Data)
			if err != nil || resp == nil || resp.IsError() {
				t.Errorf("the read served %.12q... on a renewable %s lease, but renewing that lease at once is refused: %s\n"+
					"Agent then reads again at once and gets the same token on another such lease, ten times a second",
					read.Data["access_token"], lease.TTL, errText(resp, err))
			}
			// Show the loop: what a renewer does next is read again, and it
			// gets the same token on yet another lease it cannot renew.
			again, read2 := h.issuedLease()
			if read2.Data["access_token"] == first && again.Renewable {
				if resp, err := h.renew(again, 0, read2.Data); err != nil || resp.IsError() {
					t.Errorf("the re-read after the refusal serves the same token on another renewable lease, refused again: %s", errText(resp, err))
				}
			}
		})
	}
}

// Vault Agent (consul-template's renewer) renews a renewable lease the moment
// it has it, a few milliseconds after the read, and on a refusal reads again
// at once: within the same Unix second, so consul-template drops that read
// (same index) and keeps rendering the token it had, while it goes on renewing
// the new read's lease. A read whose token can carry a full ttl by less than
// that round trip is issued renewable and refused a moment later: the
// design's "renewable exactly when a renewal at once would be granted" has no
// slack for the "at once".
func TestARenewableLeaseIsStillRenewableWhenAgentRenewsIt(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "5m"})
	h.readToken()
	st := h.stored()
	margin := leaseMargin(st.accessLifetime())
	// Move to the moment the token can carry a full 5m lease with 300ms to
	// spare.
	at := st.AccessExpiresAt.Add(-margin - 5*time.Minute - 300*time.Millisecond)
	h.clock.Advance(at.Sub(h.clock.Now()))

	lease, read := h.issuedLease()
	if read.Data["access_token"] != st.AccessToken {
		t.Fatal("setup: the read refreshed; the token should not be due yet")
	}
	if !lease.Renewable {
		return // not renewable: Agent waits ~90% of the lease, no same-second re-read
	}
	// Agent's renewal, half a second later (same second or the next).
	h.clock.Advance(500 * time.Millisecond)
	resp, err := h.renew(lease, 0, read.Data)
	if err != nil || resp == nil || resp.IsError() {
		// What Agent's re-read, in the same second, is handed: a new token,
		// which consul-template drops as "no new data (index was the same)".
		again := h.readToken()
		t.Logf("the re-read after the refusal serves a new token: %v", again.Data["access_token"] != read.Data["access_token"])
		t.Errorf("a renewable %s lease was refused 500ms after the read (%v): Agent reads again within the same second, "+
			"consul-template ignores that read, and the file keeps a token that expires %s later",
			lease.TTL, err, (5*time.Minute + margin).Round(time.Second))
	}
}
