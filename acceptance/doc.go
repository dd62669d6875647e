// Package acceptance drives the plugin the way its users do: through a real
// Vault server (internal/vaulttest) with the plugin registered by sha256 and
// version, the official API client, the vault CLI, Vault Agent and plain
// HTTP, against the WeTix emulator (wetixtest) over loopback. Every test
// starts real processes, so `go test -short` skips them all; without -short a
// missing .bin/vault is a failure, never a skip. Each test has its own Vault
// and emulator, so they run in parallel, except the Vault Agent test: its
// timing bound wants the machine to itself, and it runs before the others.
package acceptance
