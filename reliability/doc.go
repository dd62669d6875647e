// Package reliability holds the plugin's reliability suites, all run against
// a real Vault server (internal/vaulttest) and the WeTix emulator
// (wetixtest) over real HTTP:
//
//   - TestFaultMatrix: every upstream fault at every point of the token
//     lifecycle, checked against the documented behaviour, with recovery.
//     WETIX_WRITE_DOCS=1 writes the table to docs/fault-matrix.md.
//   - TestCrashSafety: kill -9 of the plugin at each step of a refresh.
//   - TestSecretLeaks: a trace-level server with a file audit device, scanned
//     for every secret the workload handled.
//   - TestSoak: concurrent readers for WETIX_SOAK_DURATION (default 60s).
//
// They start real Vault servers and are skipped under -short.
package reliability
