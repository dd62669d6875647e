#!/usr/bin/env bash
# The scale envelope (`make scale`): for each lease option, how many leases
# Vault holds and how much memory it needs while apps read <mount>/token at a
# fixed rate, straight to Vault and through a caching Vault Proxy. Writes
# docs/scale.md.
#
# Each cell is one run of bench's BenchmarkScale (bench/scale_test.go): a
# fresh Vault dev server with the option's plugin build mounted (ttl as the
# cell says) against the WeTix emulator, optionally a Vault Proxy in front
# (cache {}, use_auto_auth_token = "force"), readers paced open loop at
# SCALE_RATE for SCALE_DURATION, sampled every SCALE_SAMPLE.
#
# The options:
#   a  the plugin built from SCALE_BASELINE_REF (default ea0fad4, the last
#      commit with non-renewable leases), from this repository's history
#   b  the plugin built from this checkout (`make build`: .bin/plugins/)
# Both are built with the Makefile's flags and VERSION baked in.
#
# Knobs (environment):
#   SCALE_CELLS         "a:1h:direct a:1h:proxy a:5m:direct b:5m:direct b:5m:proxy"
#                       (option:ttl:via[:path]; ttl as Go writes durations;
#                       path token (default) or static-token, the unleased read)
#   SCALE_DURATION      10m     load time of each cell
#   SCALE_RATE          1000    reads per second
#   SCALE_READERS       32      concurrent readers
#   SCALE_SAMPLE        30s     sampling interval
#   SCALE_BASELINE_REF  ea0fad4
#   SCALE_OUT           docs/scale.md
#   SCALE_STORAGE       inmem   Vault's storage: inmem (a dev server) or raft
#                       (one raft node, as in production)
# Logs and the cells' own files are kept in .bin/scale/.
set -euo pipefail

ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODULE=github.com/wetix-oss/vault-plugin-secrets-wetix
VERSION="${VERSION:-v0.2.0}"
VAULT_BIN="${VAULT_BINARY:-$ROOT/.bin/vault}"
PLUGIN_BIN="$ROOT/.bin/plugins/vault-plugin-secrets-wetix"
CELLS="${SCALE_CELLS:-a:1h:direct a:1h:proxy a:5m:direct b:5m:direct b:5m:proxy}"
DURATION="${SCALE_DURATION:-10m}"
RATE="${SCALE_RATE:-1000}"
READERS="${SCALE_READERS:-32}"
SAMPLE="${SCALE_SAMPLE:-30s}"
BASELINE_REF="${SCALE_BASELINE_REF:-ea0fad4}"
OUT="${SCALE_OUT:-$ROOT/docs/scale.md}"
STORAGE="${SCALE_STORAGE:-inmem}"
KEEP="$ROOT/.bin/scale"

die() { echo "scale: $*" >&2; exit 1; }
say() { echo "scale: $*"; }

[ -x "$VAULT_BIN" ] || die "$VAULT_BIN is missing: run \`make vault\`"
[ -x "$PLUGIN_BIN" ] || die "$PLUGIN_BIN is missing: run \`make build\`"
command -v go >/dev/null || die "go not found in PATH"

# seconds DURATION: a Go duration of h, m and s (10m, 1h, 1m30s, 90s).
seconds() {
  local d="$1" total=0 n u
  [[ "$d" =~ ^([0-9]+[hms])+$ ]] || return 1
  while [[ "$d" =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n="${BASH_REMATCH[1]}" u="${BASH_REMATCH[2]}" d="${BASH_REMATCH[3]}"
    case "$u" in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
  done
  echo "$total"
}
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

DUR_S="$(seconds "$DURATION")" || die "SCALE_DURATION=$DURATION: want a duration like 10m, 90s or 1m30s"
seconds "$SAMPLE" >/dev/null || die "SCALE_SAMPLE=$SAMPLE: want a duration like 30s"
[[ "$RATE" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SCALE_RATE=$RATE: want reads per second"
[[ "$READERS" =~ ^[1-9][0-9]*$ ]] || die "SCALE_READERS=$READERS: want a positive integer"

read -r -a CELL_LIST <<<"$CELLS"
[ "${#CELL_LIST[@]}" -gt 0 ] || die "SCALE_CELLS is empty"
for cell in "${CELL_LIST[@]}"; do
  IFS=: read -r opt ttl via path extra <<<"$cell"
  [ -z "${extra:-}" ] || die "cell $cell: want option:ttl:via[:path]"
  case "${path:-token}" in token | static-token) ;; *) die "cell $cell: path $path: want token or static-token" ;; esac
  case "$opt" in a | b) ;; *) die "cell $cell: option $opt: want a (the baseline build) or b (this checkout)" ;; esac
  seconds "$ttl" >/dev/null || die "cell $cell: ttl $ttl: want a duration like 1h or 5m"
  case "$via" in direct | proxy) ;; *) die "cell $cell: via $via: want direct or proxy" ;; esac
done

# Each cell also spends ~20-40 s before and after the load: starting Vault,
# waiting for a lease gauge that covers the setup and one after the load,
# and listing the leases.
PER_CELL=$((DUR_S + 60))
say "${#CELL_LIST[@]} cells of $DURATION at $RATE reads/s: about $(fmt_secs $((${#CELL_LIST[@]} * PER_CELL))) (each cell $DURATION of load + ~1 minute), plus a build of the baseline plugin"
say "do not run anything heavy on this machine meanwhile: the figures are Vault's and the machine's"

mkdir -p "$KEEP"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/wetix-scale.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---- the two builds ----------------------------------------------------------

BASELINE_HASH="$(git rev-parse --verify "$BASELINE_REF^{commit}")" || die "SCALE_BASELINE_REF=$BASELINE_REF is not a commit here (a shallow clone lacks history: git fetch --unshallow)"
BASELINE_SUBJECT="$(git log -1 --format=%s "$BASELINE_HASH")"
BASELINE_BIN="$KEEP/vault-plugin-secrets-wetix-${BASELINE_HASH:0:12}-$VERSION"
if [ -x "$BASELINE_BIN" ]; then
  say "option a: reusing $BASELINE_BIN (built from ${BASELINE_HASH:0:12} earlier)"
else
  say "option a: building the plugin at ${BASELINE_HASH:0:12} ($BASELINE_SUBJECT) ..."
  # git archive: the tree as committed, nothing of this checkout's changes.
  mkdir "$WORK/baseline"
  git archive --format=tar "$BASELINE_HASH" | tar -x -C "$WORK/baseline"
  (cd "$WORK/baseline" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w -X $MODULE.Version=$VERSION" \
    -o "$BASELINE_BIN.tmp" ./cmd/vault-plugin-secrets-wetix) || die "building the plugin at $BASELINE_HASH failed"
  mv "$BASELINE_BIN.tmp" "$BASELINE_BIN"
fi
CURRENT_HASH="$(git rev-parse HEAD)"
CURRENT_STATE="commit ${CURRENT_HASH:0:12}"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then CURRENT_STATE="$CURRENT_STATE with uncommitted changes"; fi
CURRENT_BIN="$KEEP/vault-plugin-secrets-wetix-current"
cp "$PLUGIN_BIN" "$CURRENT_BIN"
sha() { sha256sum "$1" | cut -c1-12; }
say "option b: $PLUGIN_BIN ($CURRENT_STATE)"

say "compiling the benchmark ..."
go test -c -o "$WORK/bench.test" ./bench

# ---- the report ---------------------------------------------------------------

STARTED="$(date -u '+%Y-%m-%d %H:%M UTC')"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mem_total="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"

render() {
  local i f first=""
  mkdir -p "$(dirname "$OUT")"
  {
    echo "# Scale envelope"
    echo
    echo "Generated by \`make scale\` (scripts/scale.sh, bench/scale_test.go); do not edit by hand."
    echo "Every read of \`<mount>/token\` creates a Vault lease that lives for the mount's \`ttl\` unless something renews or revokes it,"
    if [ "$STORAGE" = inmem ]; then
      echo "so Vault holds about reads/s × ttl leases. Each cell runs a fresh Vault dev server (in-memory storage, no audit device) on loopback"
    else
      echo "so Vault holds about reads/s × ttl leases. Each cell runs a fresh single-node Vault server with $STORAGE storage (no audit device) on loopback"
    fi
    echo "with one build of the plugin mounted against the WeTix emulator, and $READERS readers reading \`wetix/token\` open loop at the target rate"
    echo "(request n is due at n/rate; a machine that cannot keep up shows as late sends and a lower achieved rate), straight to Vault"
    echo "or through a Vault Proxy with \`cache {}\` and \`api_proxy { use_auto_auth_token = \"force\" }\` (auto-auth: token_file with the root token;"
    echo "readers send no token). Live leases: Vault's \`vault.expire.num_leases\` gauge (GET sys/metrics) while it runs, and"
    echo "\`LIST sys/leases/lookup/wetix/token/\` right after the load for the end figure. RSS is VmRSS from /proc of each process."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $STARTED |"
    echo "| machine | $(nproc) CPUs ($cpu_model), $mem_total memory, $(uname -sr) |"
    echo "| load average at start / now | $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| Vault | $("$VAULT_BIN" version) |"
    echo "| Go | $(go version | awk '{print $3, $4}') |"
    echo "| option a | the plugin at ${BASELINE_HASH:0:12} (\"$BASELINE_SUBJECT\"), built with VERSION=$VERSION, sha256 $(sha "$BASELINE_BIN") |"
    echo "| option b | the plugin of this checkout ($CURRENT_STATE), \`make build\` with VERSION=$VERSION, sha256 $(sha "$CURRENT_BIN") |"
    echo "| load | $RATE reads/s for $DURATION per cell, $READERS readers, sampled every $SAMPLE |"
    echo
    for i in "${!CELL_LIST[@]}"; do
      f="$KEEP/cell-$((i + 1)).md"
      [ -s "$f" ] || continue
      if [ -z "$first" ]; then sed -n '1,2p' "$f"; first=1; fi
      sed -n '3p' "$f"
    done
    [ -n "$first" ] || echo "No cell has finished."
    for i in "${!CELL_LIST[@]}"; do
      f="$KEEP/cell-$((i + 1)).failed"
      if [ -s "$f" ]; then echo; echo "Cell ${CELL_LIST[$i]} failed: \`$(cat "$f")\`"; fi
    done
    echo
    echo "## Samples of each cell"
    echo
    for i in "${!CELL_LIST[@]}"; do
      f="$KEEP/cell-$((i + 1)).md"
      [ -s "$f" ] || continue
      sed -n '5,$p' "$f"
    done
  } >"$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
}

# ---- the cells -------------------------------------------------------------------

# Ctrl-C reaches the running cell too: it stops its load, reports what ran
# and stops its Vault; the script then writes the report and runs no more
# cells. A TERM to the script is passed on to the cell.
child=""
STOPPED=0
trap 'STOPPED=1' INT
trap 'STOPPED=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' TERM

rm -f "$KEEP"/cell-*.md "$KEEP"/cell-*.log "$KEEP"/cell-*.failed
BEGIN=$(date +%s)
for i in "${!CELL_LIST[@]}"; do
  n=$((i + 1))
  if [ "$STOPPED" = 1 ]; then
    say "stopped: cell $n/${#CELL_LIST[@]} (${CELL_LIST[$i]}) and later ones not run"
    break
  fi
  IFS=: read -r opt ttl via path <<<"${CELL_LIST[$i]}"
  path="${path:-token}"
  if [ "$opt" = a ]; then
    bin="$BASELINE_BIN" label="a: ${BASELINE_HASH:0:7}"
  else
    bin="$CURRENT_BIN" label="b: this checkout"
  fi
  [ "$STORAGE" = inmem ] || label="$label, $STORAGE storage"
  [ "$path" = token ] || label="$label, $path"
  say "cell $n/${#CELL_LIST[@]}: option $opt, ttl $ttl, $via, $path (log: $KEEP/cell-$n.log; $(fmt_secs $(($(date +%s) - BEGIN))) so far)"
  set +e
  (cd "$ROOT/bench" && VAULT_BINARY="$VAULT_BIN" WETIX_PLUGIN_BINARY="$bin" WETIX_PLUGIN_VERSION="$VERSION" \
    WETIX_SCALE_VIA="$via" WETIX_SCALE_TTL="$ttl" WETIX_SCALE_RATE="$RATE" WETIX_SCALE_DURATION="$DURATION" \
    WETIX_SCALE_READERS="$READERS" WETIX_SCALE_SAMPLE="$SAMPLE" WETIX_SCALE_LABEL="$label" WETIX_SCALE_OUT="$KEEP/cell-$n.md" \
    WETIX_SCALE_STORAGE="$STORAGE" WETIX_SCALE_PATH="$path" \
    "$WORK/bench.test" -test.run '^$' -test.bench '^BenchmarkScale$' -test.benchtime 1x -test.timeout 0 -test.v) \
    >"$KEEP/cell-$n.log" 2>&1 &
  child=$!
  # Progress: the sample lines as they come.
  tail -n +1 -f --pid="$child" "$KEEP/cell-$n.log" 2>/dev/null | grep --line-buffered -E '^scale: (t=|interrupted)' || true
  # A trapped signal ends wait early; the cell is still finishing.
  rc=0
  wait "$child" || rc=$?
  while [ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done
  child=""
  set -e
  if [ "$rc" != 0 ] || [ ! -s "$KEEP/cell-$n.md" ]; then
    grep -m1 -E '^\s+\S+\.go:[0-9]+: ' "$KEEP/cell-$n.log" | sed 's/^\s*//' >"$KEEP/cell-$n.failed" || echo "exit $rc" >"$KEEP/cell-$n.failed"
    say "cell $n failed (exit $rc): $(cat "$KEEP/cell-$n.failed"); log: $KEEP/cell-$n.log"
  else
    sed -n '3p' "$KEEP/cell-$n.md"
  fi
  render
done

render
echo
cat "$OUT"
say "wrote $OUT in $(fmt_secs $(($(date +%s) - BEGIN)))"
