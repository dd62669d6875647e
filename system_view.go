package wetix

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateTTL bounds how stale a cached replication state may be.
// Vault tears a mount's backend down and builds a new one when a node changes
// role (step-down, promotion, replication changes), so within one backend's
// life the state is effectively fixed; the TTL is only a safety net.
const replicationStateTTL = time.Second

// cachedSystemView answers ReplicationState from a short-lived cache.
//
// The SDK's framework.Backend.HandleRequest asks for the replication state on
// every request to a path defined with Operations, before it looks at the
// path's forwarding flags. For an external plugin that is a gRPC round trip
// back to Vault on every token read, measured at 30-40% of the plugin's CPU
// per cached read (docs/benchmarks.md). Everything else passes through.
type cachedSystemView struct {
	logical.SystemView
	now    func() time.Time
	cached atomic.Pointer[replicationSample]
}

type replicationSample struct {
	state consts.ReplicationState
	at    time.Time
}

func (v *cachedSystemView) ReplicationState() consts.ReplicationState {
	now := v.now()
	if s := v.cached.Load(); s != nil && now.Sub(s.at) < replicationStateTTL && !now.Before(s.at) {
		return s.state
	}
	state := v.SystemView.ReplicationState()
	v.cached.Store(&replicationSample{state: state, at: now})
	return state
}

// Setup installs the caching system view before the framework keeps it,
// and keeps the mount's storage for clean, which Vault calls with none.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	b.storage = conf.StorageView
	c := *conf
	if conf.System != nil {
		// Wall-clock time on purpose: the tests' fake clock must not freeze
		// the cache.
		c.System = &cachedSystemView{SystemView: conf.System, now: time.Now}
	}
	return b.Backend.Setup(ctx, &c)
}
