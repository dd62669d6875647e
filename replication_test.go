package wetix

import (
	"errors"
	"testing"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// onPerformanceStandby rebuilds the harness's backend as Vault would set it
// up on a performance standby, sharing the same storage: reads work there,
// writes return ErrReadOnly.
func (h *harness) onPerformanceStandby() *harness {
	h.t.Helper()
	standby := *h
	sys := logical.TestSystemView()
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	standby.b = newTestBackend(h.t, h.clock, h.logs, sys, h.storage)
	return &standby
}

func TestPerformanceStandbyServesValidTokenLocally(t *testing.T) {
	active := newHarness(t)
	active.configure(nil)
	tok := active.readToken().Data["access_token"]

	standby := active.onPerformanceStandby()
	if got := standby.readToken().Data["access_token"]; got != tok {
		t.Fatal("standby served a different token")
	}
	active.wantCalls(1, 0)
}

func TestPerformanceStandbyForwardsDueRefreshBeforeCallingWeTix(t *testing.T) {
	active := newHarness(t)
	active.configure(nil)
	active.makeDue()

	standby := active.onPerformanceStandby()
	_, err := standby.request(logical.ReadOperation, "token", nil)
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("want ErrReadOnly so Vault forwards to the active node, got %v", err)
	}
	_, err = standby.request(logical.UpdateOperation, "rotate", nil)
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("rotate on a standby: want ErrReadOnly, got %v", err)
	}
	// The periodic function does nothing there either.
	if _, err := standby.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RollbackOperation, Storage: standby.storage}); err != nil {
		t.Fatal(err)
	}
	standby.b.tokens.background.Wait()
	active.wantCalls(0, 0)

	// Forwarded to the active node, the read refreshes once.
	active.readToken()
	active.wantCalls(0, 1)
}

func TestInvalidateDropsStandbyCopies(t *testing.T) {
	active := newHarness(t)
	active.configure(nil)
	active.readToken()
	standby := active.onPerformanceStandby()
	old := standby.readToken().Data["access_token"]

	// The active node rotates; Vault tells the standby which key changed.
	if resp, err := active.request(logical.UpdateOperation, "rotate", nil); err != nil || resp.IsError() {
		t.Fatal(err)
	}
	if standby.readToken().Data["access_token"] != old {
		t.Fatal("test setup: standby should still hold its in-memory copy")
	}
	standby.b.InvalidateKey(t.Context(), tokensStoragePath)
	if got := standby.readToken().Data["access_token"]; got == old || got != active.readToken().Data["access_token"] {
		t.Fatal("after Invalidate the standby still serves the rotated-away token")
	}
}

func TestPerformanceStandbyForwardsConfigWrites(t *testing.T) {
	active := newHarness(t)
	active.configure(nil)
	standby := active.onPerformanceStandby()
	for _, op := range []logical.Operation{logical.UpdateOperation, logical.DeleteOperation} {
		_, err := standby.request(op, "config", map[string]interface{}{"ttl": "5m"})
		if !errors.Is(err, logical.ErrReadOnly) {
			t.Fatalf("config %s on a standby: want ErrReadOnly, got %v", op, err)
		}
	}
}
