// Command floor-plugin is the benchmark's floor, never shipped: the cheapest
// leased read an external secrets plugin can serve. Its token path answers
// the data given at start (-data) as a leased, non-renewable secret: no
// storage, no lock, no clock, no upstream. What a wetix token read costs
// beyond this plugin's is our code; what this plugin costs beyond KV v2 is
// what every external plugin with a lease pays.
//
// -unleased answers the same data as plain data, without a lease: the floor
// of the unleased static-token read.
//
// -cache-replication-state gives it the engine's answer to the SDK asking
// Vault for the replication state on every request (system_view.go in the
// root package, copied here in idea: this binary must not import the
// engine), so that "floor" and "wetix" differ only in the engine's own work.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

const secretType = "floor_token"

// leaseTTL matches the engine's lease for a fresh token under its default
// ttl (1h).
const leaseTTL = time.Hour

func main() {
	flags := flag.NewFlagSet("floor-plugin", flag.ContinueOnError)
	cache := flags.Bool("cache-replication-state", false, "answer the SDK's replication-state call from a 1s cache, as the engine does")
	unleased := flags.Bool("unleased", false, "answer the data without a lease, as the static-token path does")
	raw := flags.String("data", `{"access_token":"floor"}`, "the token read's data, a JSON object")
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	var data map[string]interface{}
	if err := json.Unmarshal([]byte(*raw), &data); err != nil {
		fatal(fmt.Errorf("-data: %w", err))
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory(data, *cache, *unleased)}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("floor plugin shutting down", "error", err)
	os.Exit(1)
}

func factory(data map[string]interface{}, cache, unleased bool) logical.Factory {
	return func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		b := &framework.Backend{BackendType: logical.TypeLogical}
		b.Secrets = []*framework.Secret{{
			Type: secretType,
			Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return nil, nil
			},
		}}
		b.Paths = []*framework.Path{{
			Pattern: "token",
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						// A fresh map per answer, as the engine builds one.
						if unleased {
							return &logical.Response{Data: maps.Clone(data)}, nil
						}
						resp := b.Secret(secretType).Response(maps.Clone(data), nil)
						resp.Secret.TTL = leaseTTL
						resp.Secret.MaxTTL = leaseTTL
						resp.Secret.Renewable = false
						return resp, nil
					},
				},
			},
		}}
		c := *conf
		if cache && conf.System != nil {
			c.System = &cachedSystemView{SystemView: conf.System}
		}
		if err := b.Setup(ctx, &c); err != nil {
			return nil, err
		}
		return b, nil
	}
}

// cachedSystemView answers ReplicationState from a one-second cache, like
// the engine's (system_view.go); everything else passes through.
type cachedSystemView struct {
	logical.SystemView
	cached atomic.Pointer[replicationSample]
}

type replicationSample struct {
	state consts.ReplicationState
	at    time.Time
}

func (v *cachedSystemView) ReplicationState() consts.ReplicationState {
	now := time.Now()
	if s := v.cached.Load(); s != nil && now.Sub(s.at) < time.Second && !now.Before(s.at) {
		return s.state
	}
	state := v.SystemView.ReplicationState()
	v.cached.Store(&replicationSample{state: state, at: now})
	return state
}
