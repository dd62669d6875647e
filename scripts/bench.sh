#!/usr/bin/env bash
# Benchmarks: prints a report and writes it to docs/benchmarks.md.
#
#   1. In process (benchmark_test.go): a cached token read through the
#      backend's HandleRequest with in-memory storage, serial and parallel,
#      and through the SDK's gRPC plugin protocol; medians of BENCH_COUNT runs,
#      plus the profile lines of our own code on the hot path.
#   2-5. Through a real Vault dev server on loopback (bench/): throughput and
#      latency against KV v2, the floor (bench/cmd/floor-plugin: the cheapest
#      leased read of an external plugin) and leased builtin engines, upstream
#      calls for a due token, the unleased static-token read beside them
#      with its own floor (the floor plugin answering without a lease), plugin memory, cold start; a CPU profile of
#      Vault; and wetix/sign against transit/sign on the same plaintext.
#
# `make bench` builds the plugin and Vault first; from a fresh clone
# `make build vault` is all this needs. It takes about 5-8 minutes.
#
# Knobs (environment): BENCH_COUNT (5) runs of each in-process benchmark;
# WETIX_BENCH_DURATION (1.5s), WETIX_BENCH_SLICES (5), WETIX_BENCH_WARMUP (100ms),
# WETIX_BENCH_ROUNDS (3) for the Vault matrix; BENCH_OUT (docs/benchmarks.md).
set -euo pipefail

ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VAULT_BIN="${VAULT_BINARY:-$ROOT/.bin/vault}"
PLUGIN_BIN="$ROOT/.bin/plugins/vault-plugin-secrets-wetix"
OUT="${BENCH_OUT:-$ROOT/docs/benchmarks.md}"
COUNT="${BENCH_COUNT:-5}"
MODULE=github.com/wetix-oss/vault-plugin-secrets-wetix

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

[ -x "$VAULT_BIN" ] || die "$VAULT_BIN is missing: run \`make vault\`"
[ -x "$PLUGIN_BIN" ] || die "$PLUGIN_BIN is missing: run \`make build\`"
command -v go >/dev/null || die "go not found in PATH"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/wetix-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. in process ----------------------------------------------------------

say "1/2 in-process benchmarks (count=$COUNT) ..."
go test -run '^$' -bench 'TokenRead' -benchmem -benchtime 1s -count "$COUNT" . >"$WORK/inproc.txt"
grep -E '^Benchmark' "$WORK/inproc.txt" >&2 || die "no benchmark output:$(cat "$WORK/inproc.txt")"

# Medians per benchmark and unit. Units are listed in a fixed order; a
# benchmark without one shows a dash.
inproc_table() {
  awk '
    /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name)
      if (!(name in seen)) { seen[name] = 1; order[++n] = name }
      for (i = 3; i < NF; i += 2) { k = name SUBSEP $(i+1); c = ++cnt[k]; v[k, c] = $i }
    }
    function med(k,   m, i, j, t, a) {
      m = cnt[k]; if (m == 0) return "–"
      for (i = 1; i <= m; i++) a[i] = v[k, i] + 0
      for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return (m % 2) ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
    }
    END {
      split("ns/op B/op allocs/op storage-ops/op upstream/op callbacks-to-vault/op", units, " ")
      printf "| benchmark | runs |"; for (u = 1; u <= 6; u++) printf " %s |", units[u]; printf "\n"
      printf "|---|---:|"; for (u = 1; u <= 6; u++) printf "---:|"; printf "\n"
      for (b = 1; b <= n; b++) {
        printf "| %s | %d |", order[b], cnt[order[b] SUBSEP "ns/op"]
        for (u = 1; u <= 6; u++) { x = med(order[b] SUBSEP units[u]); printf " %s |", (x == "–") ? x : sprintf("%.0f", x) }
        printf "\n"
      }
    }' "$1"
}

# The profile of BenchmarkTokenRead, cut to the lines that are our code.
go test -run '^$' -bench 'TokenRead$' -benchtime 2s -cpuprofile "$WORK/cpu.out" -memprofile "$WORK/mem.out" \
  -o "$WORK/wetix.test" . >/dev/null
ours() { grep -E "$MODULE\.|flat%|Total|Showing nodes" | grep -v 'benchBackend\|Benchmark' || true; }
{
  echo "CPU (go tool pprof -top -cum), our functions:"
  go tool pprof -top -cum -nodecount=200 "$WORK/wetix.test" "$WORK/cpu.out" 2>/dev/null | ours
  echo
  echo "Allocations (go tool pprof -sample_index=alloc_space -top), our functions:"
  go tool pprof -sample_index=alloc_space -top -nodecount=200 "$WORK/wetix.test" "$WORK/mem.out" 2>/dev/null | ours
  echo
  echo "Allocations by line in pathTokenRead and tokenSource.get (go tool pprof -list):"
  go tool pprof -sample_index=alloc_space -list 'pathTokenRead|tokenSource..get$' "$WORK/wetix.test" "$WORK/mem.out" 2>/dev/null \
    | grep -E '^ *[0-9.]+[kMG]?B ' || true
} >"$WORK/hotpath.txt"

# ---- 2-5. through a real Vault ---------------------------------------------------

say "2/2 real Vault dev server ($("$VAULT_BIN" version | awk '{print $2}')) ..."
mkdir -p "$WORK/pprof"
set +e
WETIX_BENCH_OUT="$WORK/vault.md" WETIX_BENCH_PROFILE="$WORK/pprof" \
  WETIX_PLUGIN_BINARY="$PLUGIN_BIN" VAULT_BINARY="$VAULT_BIN" \
  go test -count=1 -v -timeout 20m -run '^$' -bench '^BenchmarkVault$' -benchtime 1x ./bench 2>&1 | tee "$WORK/vault.log" | sed -n 's/^ *vault_test.go:[0-9]*: /  /p' >&2
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] && [ -f "$WORK/vault.md" ] || { tail -n 60 "$WORK/vault.log" >&2; die "the Vault benchmark failed (exit $rc)"; }

# Sign vs transit, through a Vault of its own (bench/signing_test.go).
say "sign vs transit through a real Vault ..."
set +e
WETIX_SIGN_BENCH_OUT="$WORK/sign.md" WETIX_PLUGIN_BINARY="$PLUGIN_BIN" VAULT_BINARY="$VAULT_BIN" \
  go test -count=1 -v -timeout 20m -run '^$' -bench '^BenchmarkVaultSign$' -benchtime 1x ./bench >"$WORK/sign.log" 2>&1
rc=$?
set -e
[ "$rc" = 0 ] && [ -f "$WORK/sign.md" ] || { tail -n 40 "$WORK/sign.log" >&2; die "the sign benchmark failed (exit $rc)"; }
cat "$WORK/sign.md" >&2

# Shares of Vault's CPU under each load, from its own profiler.
vault_frames='Total samples|net/http\.\(\*conn\)\.serve$|runtime\.gcBgMarkWorker$|Core\)\.handleCancelableRequest$|Core\)\.PopulateTokenEntry$|Router\)\.routeCommon$|backendGRPCPluginClient\)\.HandleRequest$|ExpirationManager\)\.Register$|pathDataRead|http\.respondLogical$|grpc\.\(\*Server\)\.handleStream$'
{
  for engine in wetix kv; do
    echo "Vault CPU profile while 8 clients read $engine (GET /v1/sys/pprof/profile?seconds=5; go tool pprof -top -cum, selected frames):"
    go tool pprof -top -cum -nodecount=1000 "$WORK/pprof/vault-$engine.pprof" 2>/dev/null | grep -E "$vault_frames" || true
    echo
  done
} >"$WORK/vaultprof.txt"
# Keep the raw profiles for a closer look (go tool pprof .bin/bench/vault-wetix.pprof).
mkdir -p "$ROOT/.bin/bench"
cp "$WORK"/pprof/*.pprof "$WORK/wetix.test" "$ROOT/.bin/bench/"
cp "$WORK/cpu.out" "$ROOT/.bin/bench/tokenread-cpu.pprof"
cp "$WORK/mem.out" "$ROOT/.bin/bench/tokenread-mem.pprof"

# Registered without a version, Vault takes the one the binary reports.
PLUGIN_VERSION="$(sed -n 's/.*plugin version reported to Vault: //p' "$WORK/vault.log" | head -n1)"

END=$(date +%s)
ELAPSED=$((END - START))

# ---- the report ---------------------------------------------------------------------

cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mem_total="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
mkdir -p "$(dirname "$OUT")"
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`make bench\` (scripts/bench.sh); do not edit by hand. Absolute figures depend on the machine and on whatever else runs on it;"
  echo "the comparisons that matter are ratios measured in one run, against one server."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| machine | $(nproc) CPUs ($cpu_model), $mem_total memory, $(uname -sr) |"
  echo "| load average at start / end | $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| Go | $(go version | awk '{print $3, $4}') |"
  echo "| Vault | $("$VAULT_BIN" version) |"
  echo "| plugin | .bin/plugins/vault-plugin-secrets-wetix from \`make build\`, reporting version ${PLUGIN_VERSION:-?} |"
  echo "| run time | ${ELAPSED}s |"
  echo
  echo "## 1. In process: cached token read through the backend"
  echo
  echo "\`go test -bench TokenRead -benchmem -count $COUNT\` (benchmark_test.go); medians of $COUNT runs."
  echo "BenchmarkTokenRead and BenchmarkTokenReadParallel call framework.Backend.HandleRequest with logical.InmemStorage, no Vault (BenchmarkStaticTokenRead: the same on the unleased static-token path);"
  echo "BenchmarkTokenReadGRPC adds the SDK's gRPC plugin protocol, both ends in one process over a Unix socket."
  echo "storage-ops/op and upstream/op count storage calls and WeTix calls per read: a cached read makes none;"
  echo "callbacks-to-vault/op counts the SDK's replication-state calls back to Vault, which the engine's cache (system_view.go) answers."
  echo
  inproc_table "$WORK/inproc.txt"
  echo
  echo "Profile of BenchmarkTokenRead and BenchmarkStaticTokenRead (-bench 'TokenRead$' matches both), our code only (cum/flat of the whole run):"
  echo
  echo '```'
  cat "$WORK/hotpath.txt"
  echo '```'
  echo
  cat "$WORK/vault.md"
  echo
  cat "$WORK/sign.md"
  echo
  echo "## Vault's CPU profile"
  echo
  echo "Selected frames: the HTTP server (conn.serve), Go's GC (gcBgMarkWorker), request handling (handleCancelableRequest), routing to the engine (routeCommon),"
  echo "the call into the plugin process (backendGRPCPluginClient.HandleRequest), lease registration (ExpirationManager.Register), token lookup (PopulateTokenEntry),"
  echo "KV's read (pathDataRead), and Vault serving calls from plugins (grpc Server.handleStream: for a cached token read, only the SDK's replication-state call)."
  echo "Raw profiles of this run are kept in .bin/bench/ (not committed)."
  echo
  echo '```'
  cat "$WORK/vaultprof.txt"
  echo '```'
} >"$OUT"

cat "$OUT"
say "wrote $OUT in ${ELAPSED}s"
