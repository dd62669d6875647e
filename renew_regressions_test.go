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
