#!/usr/bin/env bash
# Make .bin/vault a Vault binary the tests and the demo can use, without
# building one when the user already has it:
#
#   1. VAULT_BINARY (when make is given one, or the environment has one): used
#      if its version is supported (tools/vault/supported-versions), else an
#      error that says so: a binary named on purpose is never silently replaced.
#   2. .bin/vault already built at the pinned version, or linked by an earlier
#      run to a supported Vault that is still there: nothing to do.
#   3. The machine-wide build cache (~/.cache/vault-plugin-secrets-wetix),
#      shared by every clone: copied.
#   4. `vault` on PATH: used if its version is supported.
#   5. Otherwise the official Vault binary (server, CLI, Agent) is built from
#      the published Go module github.com/hashicorp/vault, at the version
#      pinned in tools/vault/go.mod, and cached for every clone (3).
#
# A reused binary is linked, not copied: .bin/vault -> /usr/local/bin/vault.
#
# Usage: scripts/build-vault.sh [--force]
#   --force   build the pinned version even if a usable Vault exists
#
# Building needs only Go (CGO is disabled, as in Vault's official builds) and
# the Go module proxy. A cold build downloads ~540 modules, compiles ~2,500
# packages and takes ~15-20 minutes on 2 cores, with a line of progress at a
# time; with a warm Go build cache it is ~25 s (link only).
# The binary is built without the `ui` tag: the web UI assets are not part of
# the Go module, so /ui only shows "Vault UI is not available in this binary".
set -euo pipefail

ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODDIR="$ROOT/tools/vault"
BINDIR="$ROOT/.bin"
BIN="$BINDIR/vault"
STAMP="$BINDIR/vault.version"

# Single source of truth: the github.com/hashicorp/vault requirement in
# tools/vault/go.mod (handles both `require x v` and `require ( ... )` forms).
VAULT_VERSION="$(awk '
  $1 == "require" && $2 == "(" { inblock = 1; next }
  inblock && $1 == ")"         { inblock = 0; next }
  inblock && $1 == "github.com/hashicorp/vault" { print $2; exit }
  $1 == "require" && $2 == "github.com/hashicorp/vault" { print $3; exit }
' "$MODDIR/go.mod")"

die() { echo "build-vault: $*" >&2; exit 1; }

[ -n "$VAULT_VERSION" ] || die "cannot find github.com/hashicorp/vault in $MODDIR/go.mod"

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) die "unknown argument: $1 (usage: $0 [--force])" ;;
esac

say() { echo "build-vault: $*"; }

# ---- a Vault the user already has ---------------------------------------------

SUPPORTED_FILE="$MODDIR/supported-versions"
SUPPORTED="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$SUPPORTED_FILE" | grep . | paste -sd' ' -)" \
  || die "no version patterns in $SUPPORTED_FILE"

# describe says what a binary is, for an error message.
describe() { if [ -n "$2" ]; then echo "Vault $2"; else echo "not a Vault binary (\`$1 version\` does not say \"Vault v...\")"; fi; }

# The version `vault version` reports ("v1.21.1"), empty for anything that is
# not a working Vault (OpenBao says "OpenBao v2...").
version_of() {
  "$1" version 2>/dev/null | awk '$1 == "Vault" { print $2; exit }' || true
}

supported() {
  local v="${1#v}" p
  [ -n "$v" ] || return 1
  for p in $SUPPORTED; do
    # shellcheck disable=SC2254 # p is a glob on purpose
    case "$v" in $p) return 0 ;; esac
  done
  return 1
}

# link points .bin/vault at a binary the user has; the stamp says whose it is,
# so the next run checks it again instead of taking it for the pinned build.
link() {
  local target="$1" version="$2" from="$3"
  mkdir -p "$BINDIR"
  ln -sfn "$target" "$BIN.tmp.$$" && mv -Tf "$BIN.tmp.$$" "$BIN"
  echo "linked $target $version" > "$STAMP"
  say "using your Vault $version at $target ($from); nothing to build"
}

# Which binary make or the caller named: make passes the user's VAULT_BINARY
# as USER_VAULT_BINARY, because it sets VAULT_BINARY to .bin/vault for the
# tests; run by hand, the script reads VAULT_BINARY itself.
if [ "${USER_VAULT_BINARY+set}" = set ]; then
  NAMED="$USER_VAULT_BINARY"
else
  NAMED="${VAULT_BINARY:-}"
fi
# own: the path is our .bin/vault itself (say, .bin on PATH as the demo
# suggests), which is where a binary goes, not where one comes from.
own() {
  local dir
  dir="$(cd "$(dirname "$1")" 2>/dev/null && pwd -P)" || return 1
  [ "$dir/$(basename "$1")" = "$(cd "$BINDIR" 2>/dev/null && pwd -P)/vault" ]
}

if [ "$FORCE" = 0 ] && [ -n "$NAMED" ] && ! own "$NAMED"; then
  target="$(readlink -f "$NAMED" 2>/dev/null || true)"
  [ -n "$target" ] && [ -x "$target" ] && [ -f "$target" ] \
    || die "VAULT_BINARY=$NAMED is not an executable file; point it at a Vault binary, or unset it to build Vault $VAULT_VERSION"
  v="$(version_of "$target")"
  supported "$v" \
    || die "VAULT_BINARY=$NAMED is $(describe "$NAMED" "$v"), which this plugin is not tested with (supported: $SUPPORTED, in tools/vault/supported-versions); point it at one of those, or unset it to build Vault $VAULT_VERSION"
  link "$target" "$v" "VAULT_BINARY"
  exit 0
fi

if [ "$FORCE" = 0 ] && [ -x "$BIN" ] && [ ! -L "$BIN" ] && [ -f "$STAMP" ] \
   && [ "$(cat "$STAMP")" = "$VAULT_VERSION" ]; then
  say "$BIN is already Vault $VAULT_VERSION; skipping (use --force to rebuild)"
  exit 0
fi

# A Vault linked by an earlier run (VAULT_BINARY given once) stays in use
# while it is there and still supported: `VAULT_BINARY=... make dev` once,
# then a plain `make test`, must not start a build.
if [ "$FORCE" = 0 ] && [ -L "$BIN" ] && [ -f "$STAMP" ]; then
  read -r how target _ < "$STAMP" || true
  if [ "$how" = linked ] && [ -x "$target" ] && [ "$(readlink -f "$BIN")" = "$target" ]; then
    v="$(version_of "$target")"
    if supported "$v"; then
      say "using your Vault $v at $target (linked by an earlier run; set VAULT_BINARY to change it)"
      exit 0
    fi
  fi
fi

# A machine-wide cache shared by every clone (CI runs in a fresh clone on a
# machine that may already have built this version); a miss just builds.
CACHE_DIR="${VAULT_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-wetix}"
CACHED="$CACHE_DIR/vault-$VAULT_VERSION"
if [ "$FORCE" = 0 ] && [ -x "$CACHED" ] && "$CACHED" version >/dev/null 2>&1; then
  mkdir -p "$BINDIR"
  cp -f "$CACHED" "$BIN.tmp.$$" && mv -f "$BIN.tmp.$$" "$BIN"
  echo "$VAULT_VERSION" > "$STAMP"
  say "copied Vault $VAULT_VERSION from the build cache $CACHED"
  exit 0
fi

ON_PATH=""
if [ "$FORCE" = 0 ]; then
  # Every `vault` on PATH but our own .bin/vault, first match wins as in a shell.
  IFS=: read -ra dirs <<< "${PATH:-}"
  for d in "${dirs[@]}"; do
    [ -n "$d" ] && [ -x "$d/vault" ] && [ -f "$d/vault" ] || continue
    own "$d/vault" && continue
    target="$(readlink -f "$d/vault")"
    v="$(version_of "$target")"
    if supported "$v"; then
      link "$target" "$v" "vault on PATH"
      exit 0
    fi
    ON_PATH="$d/vault is $(describe "$d/vault" "$v"), not one this plugin is tested with ($SUPPORTED)"
    break
  done
fi

# ---- build the pinned version -------------------------------------------------

if [ "$FORCE" = 1 ]; then
  say "building Vault $VAULT_VERSION from source (--force)"
else
  say "no Vault to reuse: VAULT_BINARY is not set, ${ON_PATH:-there is no \`vault\` on PATH}, and $CACHED is not built yet."
  say "building Vault $VAULT_VERSION from source: about 15-20 minutes on 2 cores, once (then cached for every clone)."
  say "To skip it, set VAULT_BINARY to a Vault binary you have (supported: $SUPPORTED) and run again."
fi
command -v go >/dev/null 2>&1 || die "go not found in PATH (install Go >= the version in $MODDIR/go.mod)"

mkdir -p "$BINDIR"
cd "$MODDIR"

# Ignore any go.work above us and any GOFLAGS that would change how this
# module resolves (e.g. -mod=vendor); go.sum is complete, so -mod=readonly.
export GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

START=$(date +%s)
elapsed() { local s=$(( $(date +%s) - START )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# One progress line at a time: rewritten in place on a terminal, else (CI
# logs, make piped to a file) printed every 30 seconds.
if [ -t 1 ]; then TTY=1; else TTY=0; fi
LAST_PRINT=0
progress() {
  if [ "$TTY" = 1 ]; then
    printf '\rbuild-vault: %s   ' "$1"
  elif [ $(( $(date +%s) - LAST_PRINT )) -ge 30 ]; then
    echo "build-vault: $1"
    LAST_PRINT=$(date +%s)
  fi
}
progress_done() { if [ "$TTY" = 1 ]; then printf '\rbuild-vault: %s   \n' "$1"; else echo "build-vault: $1"; fi; }

# follow PID FN: calls FN (which prints the progress text) every second while
# PID runs, then returns PID's exit status.
follow() {
  local pid="$1" fn="$2"
  while kill -0 "$pid" 2>/dev/null; do
    progress "$($fn)"
    sleep 1
  done
  wait "$pid"
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/build-vault.XXXXXX")"
TMP="$BIN.tmp.$$"
trap 'rm -rf "$WORK" "$TMP"' EXIT

# Stamp the upstream commit/date like Vault's scripts/build.sh does (best effort:
# the proxy's .info file records the tag's commit hash and time).
LDFLAGS="-s -w"
INFO="$( (go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" 2>/dev/null || true) \
  | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p')"
if [ -n "$INFO" ] && [ -f "$INFO" ]; then
  COMMIT="$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$INFO")"
  DATE="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$INFO")"
  if [ -n "$COMMIT" ]; then LDFLAGS="$LDFLAGS -X github.com/hashicorp/vault/version.GitCommit=$COMMIT"; fi
  if [ -n "$DATE" ]; then LDFLAGS="$LDFLAGS -X github.com/hashicorp/vault/version.BuildDate=$DATE"; fi
fi
BUILD_FLAGS=(-trimpath -tags vault -ldflags "$LDFLAGS")

# 1. Which packages need compiling: listing them downloads the modules they
# come from (most of a cold build's first minutes), counted as they land.
MODCACHE="$(go env GOMODCACHE)/cache/download"
zips() { find "$MODCACHE" -name '*.zip' 2>/dev/null | wc -l; }
ZIPS0="$(zips)"
list_progress() { echo "1/2 downloading modules: $(( $(zips) - ZIPS0 )) so far ($(elapsed))"; }
go list "${BUILD_FLAGS[@]}" -deps -f '{{if .Stale}}{{.ImportPath}}{{end}}' . >"$WORK/stale" 2>"$WORK/list.err" &
follow $! list_progress || { progress_done "listing Vault's packages failed:"; cat "$WORK/list.err" >&2; exit 1; }
# The main package is always stale (it is linked afresh); -v names it only
# when its own code compiles, so it is left out of the count.
MAINPKG="$(go list -f '{{.ImportPath}}' .)"
TOTAL="$(grep -v -x -F "$MAINPKG" "$WORK/stale" | grep -c . || true)"
progress_done "1/2 $(( $(zips) - ZIPS0 )) modules downloaded, $TOTAL packages to compile ($(elapsed))"

# 2. Compile: `go build -v` names each package as it is compiled.
rm -f "$STAMP"
build_progress() {
  local n; n="$(grep -v -x -F "$MAINPKG" "$WORK/build.log" | grep -c . || true)"
  if [ "$n" -ge "$TOTAL" ]; then
    echo "2/2 compiled $n/$TOTAL packages, linking ($(elapsed))"
  else
    echo "2/2 compiled $n/$TOTAL packages ($(elapsed))"
  fi
}
go build -v "${BUILD_FLAGS[@]}" -o "$TMP" . 2>"$WORK/build.log" &
if ! follow $! build_progress; then
  progress_done "building Vault failed after $(elapsed):"
  grep -v -x -F -f "$WORK/stale" "$WORK/build.log" >&2 || cat "$WORK/build.log" >&2
  exit 1
fi
progress_done "2/2 compiled $TOTAL packages and linked ($(elapsed))"
mv -f "$TMP" "$BIN"
echo "$VAULT_VERSION" > "$STAMP"
if mkdir -p "$CACHE_DIR" 2>/dev/null && cp -f "$BIN" "$CACHED.tmp.$$" 2>/dev/null; then
  mv -f "$CACHED.tmp.$$" "$CACHED"
fi

say "built $BIN ($(du -h "$BIN" | cut -f1)) in $(elapsed)"
"$BIN" version
