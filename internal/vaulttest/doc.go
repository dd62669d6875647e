// Package vaulttest runs real Vault servers for the acceptance, cluster,
// fault and benchmark suites: the official vault binary (built from the
// pinned github.com/hashicorp/vault module by scripts/build-vault.sh) with
// this plugin registered by sha256 and version, on free loopback ports. Every
// process it starts is stopped when the test ends, pass or fail.
package vaulttest
