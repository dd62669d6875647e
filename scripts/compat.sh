#!/usr/bin/env bash
# Measure which Vault releases this plugin works with (`make compat`).
#
# For each version in tools/vault/compat-versions (or those given as
# arguments), newest first, one at a time:
#   1. build the official Vault binary from the github.com/hashicorp/vault
#      module at that version, in a throwaway module that requires it and
#      repeats the replace directives of Vault's own go.mod that point at
#      published modules (Go ignores a dependency's replaces; the ones to
#      ./api, ./sdk... name nested modules the module zip does not hold), with
#      the flags scripts/build-vault.sh uses; the binary is cached as
#      ~/.cache/vault-plugin-secrets-wetix/vault-<version> and reused;
#   2. run the acceptance suite's core (CORE_TESTS below) with VAULT_BINARY
#      pointing at it.
# Each result is kept in .bin/compat/<version>/ as it lands, and the matrix is
# rewritten to docs/compat.md after every step and printed at the end, so a
# run that is stopped (or hits COMPAT_DEADLINE) still leaves every measured
# row, and versions not reached say so.
#
# Usage: scripts/compat.sh [version...]
#   COMPAT_DEADLINE=HH:MM   stop the step running at that time (today, local
#                           clock) and start no other: its row says why
#   COMPAT_RENDER_ONLY=1    only rewrite docs/compat.md from kept results
#
# CI tests only the pinned version (`make test`); this is run by hand. A cold
# build takes ~15-20 minutes per version on 2 cores.
set -euo pipefail

ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIST="$ROOT/tools/vault/compat-versions"
RESULTS="$ROOT/.bin/compat"
OUT="$ROOT/docs/compat.md"
CACHE_DIR="${VAULT_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-wetix}"
MODULE=github.com/hashicorp/vault

# The acceptance suite's core, by what a user does:
CORE_TESTS=(
  TestRegisterAsOperator           # register by sha256 and version, enable that version
  TestConfigNeverShowsSecrets      # config write/read through the API
  TestReadToken                    # token via the Go API client, `vault read` and plain HTTP
  TestAgentRerendersRefreshedToken # Vault Agent template re-renders a refreshed token
  TestOperations                   # `vault plugin reload`, version upgrade by tune + reload
  TestPersistenceAcrossRestart     # Vault restart (raft): same token, refresh token still works
)
TEST_TIMEOUT=30m

die() { echo "compat: $*" >&2; exit 1; }
say() { echo "compat: $*"; }

versions_in_list() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep .; }
mapfile -t ALL < <(versions_in_list) || true
[ "${#ALL[@]}" -gt 0 ] || die "no versions in $LIST"
if [ "$#" -gt 0 ]; then RUN=("$@"); else RUN=("${ALL[@]}"); fi

PINNED="$(awk '
  $1 == "require" && $2 == "(" { inblock = 1; next }
  inblock && $1 == ")"         { inblock = 0; next }
  inblock && $1 == "'"$MODULE"'" { print $2; exit }
  $1 == "require" && $2 == "'"$MODULE"'" { print $3; exit }
' "$ROOT/tools/vault/go.mod")"

DEADLINE=""
if [ -n "${COMPAT_DEADLINE:-}" ]; then
  DEADLINE="$(date -d "$COMPAT_DEADLINE" +%s)" || die "COMPAT_DEADLINE=$COMPAT_DEADLINE is not a time (HH:MM)"
  # 00:45 given at 23:00 means tomorrow's.
  if [ "$DEADLINE" -le "$(date +%s)" ]; then DEADLINE=$((DEADLINE + 86400)); fi
fi
past_deadline() { [ -n "$DEADLINE" ] && [ "$(date +%s)" -ge "$DEADLINE" ]; }

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# put VERSION FIELD TEXT keeps one measured fact; get reads it back.
put() { mkdir -p "$RESULTS/$1"; printf '%s\n' "$3" > "$RESULTS/$1/$2"; }
get() { if [ -f "$RESULTS/$1/$2" ]; then cat "$RESULTS/$1/$2"; fi; }

# first_error prints the first line of a go command's stderr that is an
# error, not download chatter or a "# package" header.
first_error() {
  # "x imports" / "y tested by" chains end in the error: first and last line.
  awk '/^(go: (downloading|finding|found|extracting|upgraded|added) |# |== |replace: |selected: )/ || /^[[:space:]]*$/ { next }
       chain { if ($0 ~ /^[[:space:]]/) { last = $0; next } }
       chain { exit }
       { line = $0; if (line ~ /(imports|tested by|:)$/) { chain = 1; next } print line; done = 1; exit }
       END { if (!done && chain) { sub(/^[[:space:]]+/, "", last); print line " ... " last } }' "$1" \
    | sed -e 's/|/\\|/g' -e 's/`/'"'"'/g' | cut -c1-400
}

# ---- the matrix -------------------------------------------------------------

# SDK features OpenBao's plugin SDK does not have; the plugin must not need
# them (or must guard them).
OPENBAO_MISSING='SendEvent|EventSender|EventsSender|RecordObservation|ObservationRecorder|RegisterRotationJob|DeregisterRotationJob|GetRotationInformation|automatedrotationutil|sdk/rotation|GenerateIdentityToken|pluginidentityutil|IdentityToken'

row() {
  local v="$1" built btime tres tdate
  built="$(get "$v" built)"
  btime="$(get "$v" build_time)"
  tres="$(get "$v" test)"
  tdate="$(get "$v" date)"
  if [ -z "$built" ] && [ -z "$tres" ]; then
    echo "| $v | not run this session (time) | | | |"
    return
  fi
  case "$built" in no*|not*) tres="not run: no binary" ;; esac
  # Paths into the module cache are the same everywhere from there on.
  built="${built//$(go env GOMODCACHE)\//}"
  echo "| $v | ${built:-not run} | ${btime:-} | ${tres:-not run this session (time)} | ${tdate:-} |"
}

render() {
  local v hits
  mkdir -p "$(dirname "$OUT")"
  {
    echo "# Vault compatibility matrix"
    echo
    echo "Written by \`make compat\` (scripts/compat.sh) on $(date -u +%Y-%m-%d), on a machine with $(nproc) cores"
    echo "shared with other work (builds and tests ran at \`nice -n 19\`), Go $(go env GOVERSION)."
    echo "Each version is the newest patch of its minor line that the Go module proxy serves"
    echo "(tools/vault/compat-versions says how that was found). Vault is built from the"
    echo "\`$MODULE\` module at that version; the acceptance core is"
    echo "$(printf '`%s`, ' "${CORE_TESTS[@]}" | sed 's/, $//'),"
    echo "run with \`go test -count=1 -run ... ./acceptance/\` and \`VAULT_BINARY\` set to that build."
    echo
    echo "| Vault | Built from the module | Build time | Acceptance core | Measured |"
    echo "|---|---|---|---|---|"
    # The pinned version is CI's; `scripts/compat.sh <pinned>` measures it
    # here too, as the control for the rows below.
    if [ -n "$(get "$PINNED" test)" ]; then
      row "$PINNED" | sed "s/^| $PINNED |/| $PINNED (pinned; CI runs the whole suite on it) |/"
    else
      echo "| $PINNED (pinned) | yes (\`make vault\`) | | the whole suite runs against it in CI (\`make test\`); not re-run by \`make compat\` | |"
    fi
    for v in "${ALL[@]}"; do row "$v"; done
    echo "| OpenBao 2.6.2 | no: the module proxy refuses OpenBao | | reported working (v0.1.0 binary, OpenBao 2.6.2 dev server, three multiplexed mounts: config, token, status, rotate, reload), not tested here | |"
    echo
    echo "Build time is the throwaway module's dependency resolution plus \`go build\` (compile and link; for a"
    echo "failed build, the time to the failure)"
    echo "at \`nice -n 19\`, with whatever the shared Go build cache already held (the pinned"
    echo "$PINNED build, and each version built before it): a newer patch of a cached"
    echo "line reuses most packages, an older minor recompiles most of them."
    echo
    local details=""
    for v in "$PINNED" "${ALL[@]}"; do
      if [ -f "$RESULTS/$v/failures" ]; then
        details+="- $v:"$'\n'"$(sed 's/^/  - /' "$RESULTS/$v/failures")"$'\n'
      fi
    done
    if [ -n "$details" ]; then
      echo "## First error line of each failure"
      echo
      printf '%s\n' "$details"
    fi
    echo "## SDK calls OpenBao lacks"
    echo
    hits="$(cd "$ROOT" && git ls-files '*.go' | grep -v -e '^tools/' -e '_test\.go$' \
      | xargs grep -n -E "$OPENBAO_MISSING" 2>/dev/null || true)"
    if [ -z "$hits" ]; then
      echo "None: the plugin's non-test Go code has no match for"
      echo "\`$OPENBAO_MISSING\`"
      echo "(plugin events, observations, the rotation manager, plugin identity tokens)."
    else
      echo "Matches for \`$OPENBAO_MISSING\` in non-test code (each must be guarded and optional):"
      echo
      echo '```'
      echo "$hits"
      echo '```'
    fi
  } > "$OUT.tmp" && mv -f "$OUT.tmp" "$OUT"
}

if [ "${COMPAT_RENDER_ONLY:-0}" = 1 ]; then render; cat "$OUT"; exit 0; fi

# ---- running one step under supervision --------------------------------------------

CHILD=""
CURRENT=""
CURRENT_STEP=""
BUILD_DIR=""
on_signal() {
  if [ -n "$CHILD" ]; then kill -TERM -- "-$CHILD" 2>/dev/null || true; fi
  if [ -n "$BUILD_DIR" ]; then rm -rf "$BUILD_DIR"; fi
  if [ -n "$CURRENT" ]; then
    put "$CURRENT" "$CURRENT_STEP" "not finished this session (stopped)"
    render
  fi
  exit 130
}
trap on_signal INT TERM

# supervise LABEL LOG CMD...: runs CMD in its own process group (so a stop takes
# its Vault servers and compilers with it), says every minute that it is
# still going, and stops it at COMPAT_DEADLINE. Returns CMD's status; 124 at
# the deadline.
supervise() {
  local label="$1" log="$2" start rc=0 last
  shift 2
  start=$(date +%s); last=$start
  setsid "$@" >"$log" 2>&1 &
  CHILD=$!
  while kill -0 "$CHILD" 2>/dev/null; do
    if past_deadline; then
      kill -TERM -- "-$CHILD" 2>/dev/null || true
      wait "$CHILD" 2>/dev/null || true
      CHILD=""
      return 124
    fi
    if [ $(( $(date +%s) - last )) -ge 60 ]; then
      last=$(date +%s)
      say "$label: $(fmt_secs $((last - start)))"
    fi
    sleep 2
  done
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# ---- build ------------------------------------------------------------------

# build_module DIR VERSION: the throwaway module's commands, run by supervise.
build_module() {
  local dir="$1" v="$2" src modfile gover ldflags info commit date
  cd "$dir"
  export GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOTOOLCHAIN=local
  src="$(go mod download -json "$MODULE@$v" | jq -r '.Dir // empty')"
  [ -n "$src" ] || { go mod download "$MODULE@$v"; exit 1; }
  modfile="$src/go.mod"
  gover="$(go mod edit -json "$modfile" | jq -r .Go)"
  printf 'module wetix-compat/vault\n\ngo %s\n' "$gover" > go.mod
  cp "$ROOT/tools/vault/main.go" main.go
  # Vault's own go.sum: the hashes HashiCorp committed for every dependency,
  # so Go checks downloads against them and asks the checksum database only
  # about modules Vault's go.sum does not list (the sumdb behind this proxy
  # has no entry for some of Vault's plugin modules).
  cp "$src/go.sum" go.sum && chmod u+w go.sum
  go mod edit -require="$MODULE@$v"
  # Vault's replaces of published modules, e.g. keyring => Jeffail/keyring.
  go mod edit -json "$modfile" | jq -r '.Replace[]? | select(.New.Version != null)
    | "-replace=\(.Old.Path)\(if .Old.Version then "@" + .Old.Version else "" end)=\(.New.Path)@\(.New.Version)"' \
    | while read -r r; do echo "replace: ${r#-replace=}"; go mod edit "$r"; done
  # Its replaces of ./api, ./sdk... name nested modules at the tag, which
  # the module zip does not hold; as for the pinned version (tools/vault),
  # the published versions that Go's version selection picks stand in.
  # Resolve only what the binary links (go build -mod=mod), not `go mod
  # tidy`: tidy also resolves the imports of every dependency's tests, and
  # where Vault's module graph does not provide one it fetches the newest
  # module that does (for v1.15-v1.17 an OpenTelemetry exporter imported by
  # Docker's tests: v1.16.3 and v1.15.6 then fail, and on v1.17.6 the newest
  # exporter pulls a gRPC that Vault's grpc-gcp no longer compiles against).
  echo "== resolve (go list -mod=mod -deps)"
  go list -mod=mod -tags vault -deps . >/dev/null
  date +%s > tidy.done
  go list -m -f '{{.Path}}@{{.Version}}' "$MODULE/sdk" "$MODULE/api" > selected
  sed 's/^/selected: /' selected
  ldflags="-s -w"
  info="$(go mod download -json "$MODULE@$v" | jq -r '.Info // empty')"
  if [ -n "$info" ]; then
    commit="$(jq -r '.Origin.Hash // empty' "$info")"
    date="$(jq -r '.Time // empty' "$info")"
    [ -z "$commit" ] || ldflags="$ldflags -X $MODULE/version.GitCommit=$commit"
    [ -z "$date" ] || ldflags="$ldflags -X $MODULE/version.BuildDate=$date"
  fi
  echo "== go build"
  go build -mod=mod -trimpath -tags vault -ldflags "$ldflags" -o vault . 2>&1
}

build() {
  local v="$1" cached="$CACHE_DIR/vault-$1" dir start end rc=0 tidy got
  if [ -x "$cached" ] && "$cached" version 2>/dev/null | grep -q -E "^Vault ${v//./\\.}([ ,]|$)"; then
    # A build measured earlier stays "yes"; otherwise say it was reused.
    case "$(get "$v" built)" in yes*) ;; *) put "$v" built "yes (cached build)" ;; esac
    [ -n "$(get "$v" build_time)" ] || put "$v" build_time "cached"
    say "$v: using the cached build $cached"
    return 0
  fi
  say "$v: building Vault from $MODULE@$v (log: $RESULTS/$v/build.log)"
  mkdir -p "$RESULTS/$v"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/compat-vault-$v.XXXXXX")"
  BUILD_DIR="$dir"
  CURRENT="$v"; CURRENT_STEP=built
  start=$(date +%s)
  supervise "$v build" "$RESULTS/$v/build.log" bash -c "set -euo pipefail; $(declare -f build_module); ROOT='$ROOT' MODULE='$MODULE'; build_module '$dir' '$v'" || rc=$?
  end=$(date +%s)
  CURRENT=""
  put "$v" date "$(date -u +%Y-%m-%d)"
  if [ "$rc" = 124 ]; then
    put "$v" built "not finished this session (time: stopped after $(fmt_secs $((end - start))))"
    rm -rf "$dir"; return 1
  fi
  tidy=""
  if [ -f "$dir/tidy.done" ]; then tidy=" (resolve $(fmt_secs $(( $(cat "$dir/tidy.done") - start ))))"; fi
  put "$v" build_time "$(fmt_secs $((end - start)))$tidy"
  if [ "$rc" != 0 ]; then
    local sel=""
    if [ -f "$dir/selected" ]; then sel=" (with published $(sed 's|^.*/||' "$dir/selected" | paste -sd' ' - | sed 's/ / and /'))"; fi
    put "$v" built "no$sel: \`$(first_error "$RESULTS/$v/build.log")\`"
    say "$v: build failed: $(first_error "$RESULTS/$v/build.log")"
    rm -rf "$dir"; return 1
  fi
  got="$("$dir/vault" version 2>&1 | head -1)"
  if ! grep -q -E "^Vault ${v//./\\.}([ ,]|$)" <<<"$got"; then
    put "$v" built "no: the binary says \`$got\`"
    rm -rf "$dir"; return 1
  fi
  mkdir -p "$CACHE_DIR"
  cp -f "$dir/vault" "$cached.tmp.$$" && mv -f "$cached.tmp.$$" "$cached"
  rm -rf "$dir"
  put "$v" built "yes"
  say "$v: built in $(fmt_secs $((end - start)))$tidy: $got"
}

# ---- acceptance core ----------------------------------------------------------

accept() {
  local v="$1" log="$RESULTS/$1/test.log" json="$RESULTS/$1/test.json" rc=0 start end t names
  local pass=() fail=() missing=() results
  local pattern; pattern="^($(IFS='|'; echo "${CORE_TESTS[*]}"))\$"
  say "$v: acceptance core (log: $log)"
  rm -f "$RESULTS/$v/failures"
  CURRENT="$v"; CURRENT_STEP=test
  start=$(date +%s)
  mkdir -p "$RESULTS/$v"
  # -json ties every output line to its test, parallel ones included.
  supervise "$v acceptance" "$json" env -C "$ROOT" VAULT_BINARY="$CACHE_DIR/vault-$v" GOWORK=off \
    go test -count=1 -json -timeout "$TEST_TIMEOUT" -run "$pattern" ./acceptance/ || rc=$?
  end=$(date +%s)
  # A readable log that says which Vault the suite ran against.
  { "$CACHE_DIR/vault-$v" version 2>&1 || true
    jq -Rrj '. as $l | try (fromjson | if type == "object" then (.Output // "") else ($l + "\n") end) catch ($l + "\n")' "$json"
  } > "$log"
  CURRENT=""
  put "$v" date "$(date -u +%Y-%m-%d)"
  if [ "$rc" = 124 ]; then
    put "$v" test "not finished this session (time: stopped after $(fmt_secs $((end - start))))"
    return
  fi
  results="$(jq -R -r 'fromjson? | select(type == "object" and .Test != null and (.Action == "pass" or .Action == "fail"))
    | select(.Test | contains("/") | not) | "\(.Action) \(.Test)"' "$json")"
  for t in "${CORE_TESTS[@]}"; do
    if grep -q -x "pass $t" <<<"$results"; then pass+=("$t")
    elif grep -q -x "fail $t" <<<"$results"; then fail+=("$t")
    else missing+=("$t"); fi
  done
  for t in "${fail[@]}"; do
    # The first t.Error/t.Fatal line the test (or one of its subtests) printed.
    echo "$t: \`$(jq -R -r --arg t "$t" 'fromjson? | select(type == "object" and .Output != null
        and (.Test == $t or (.Test // "" | startswith($t + "/")))) | .Output' "$json" \
      | grep -m1 -E '^[[:space:]]+[A-Za-z0-9_.-]+\.go:[0-9]+:' | sed -e 's/^[[:space:]]*//' -e 's/`/'"'"'/g' | cut -c1-300)\`" \
      >> "$RESULTS/$v/failures"
  done
  if [ "${#missing[@]}" -gt 0 ] && [ "${#pass[@]}" -eq 0 ] && [ "${#fail[@]}" -eq 0 ]; then
    put "$v" test "not run: \`$(first_error "$log")\`"
  elif [ "${#fail[@]}" -eq 0 ] && [ "${#missing[@]}" -eq 0 ]; then
    put "$v" test "pass (${#pass[@]}/${#CORE_TESTS[@]}, $(fmt_secs $((end - start))))"
  else
    names="${fail[*]}${missing:+ ${missing[*]} (did not finish)}"
    put "$v" test "FAIL: ${names# } (${#pass[@]}/${#CORE_TESTS[@]} passed, $(fmt_secs $((end - start))))"
    [ "${#missing[@]}" -eq 0 ] || echo "did not finish: ${missing[*]}: \`$(first_error "$log")\`" >> "$RESULTS/$v/failures"
  fi
  say "$v: $(get "$v" test)"
}

command -v jq >/dev/null || die "jq is needed to read Vault's go.mod as JSON"
for v in "${RUN[@]}"; do
  if past_deadline; then
    say "$v: not started (COMPAT_DEADLINE $COMPAT_DEADLINE passed)"
    continue
  fi
  rm -f "$RESULTS/$v/test" "$RESULTS/$v/failures"
  if build "$v"; then
    render
    if past_deadline; then say "$v: acceptance not started (deadline)"; continue; fi
    accept "$v"
  fi
  render
done
render
echo
cat "$OUT"
