// Command wetix-callbacks is a benchmark-only build of the plugin, never
// shipped: the same backend, with the token path's read handler moved from
// framework.Path.Operations to the legacy Path.Callbacks. For Operations,
// the SDK's framework.Backend.HandleRequest asks Vault for its replication
// state on every request (a gRPC round trip from the plugin back to Vault,
// even though the path asks for no forwarding); for Callbacks it does not.
// bench/ mounts both side by side to measure what that round trip costs.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"

	wetix "github.com/wetix-oss/vault-plugin-secrets-wetix"
)

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b, err := wetix.Factory(ctx, conf)
	if err != nil {
		return nil, err
	}
	router, ok := b.(interface{ Route(string) *framework.Path })
	if !ok {
		return nil, fmt.Errorf("backend %T has no Route", b)
	}
	p := router.Route("token")
	if p == nil || p.Operations[logical.ReadOperation] == nil {
		return nil, fmt.Errorf("no read operation on the token path")
	}
	p.Callbacks = map[logical.Operation]framework.OperationFunc{logical.ReadOperation: p.Operations[logical.ReadOperation].Handler()}
	p.Operations = nil
	return b, nil
}

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
