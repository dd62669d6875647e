// Package vaulttest is the one rig of the suites that run the plugin in a
// real Vault (acceptance, cluster, reliability, bench): it builds the plugin
// and registers it by sha256 and version (PluginVersion), starts the
// official vault binary (built from the pinned github.com/hashicorp/vault
// module by scripts/build-vault.sh) as a dev, file or raft server or a raft
// HA cluster on free loopback ports, and Vault Agent or a caching Vault
// Proxy in front of one (daemon.go, proxy.go), configures a mount against a WeTix
// emulator (wetixtest), reads its token, and waits for conditions. Every
// process it starts is stopped when the test ends, pass or fail. Look here
// before writing a helper in a suite.
package vaulttest
