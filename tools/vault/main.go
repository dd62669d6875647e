// Command vault builds the official HashiCorp Vault binary (server, CLI and
// Agent) from the published github.com/hashicorp/vault module at the version
// pinned in this directory's go.mod. It is a verbatim copy of Vault's own
// main.go; build it with scripts/build-vault.sh.
//
// Vault is licensed under BUSL-1.1; this binary is for local development and
// testing of the plugin only.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
