#!/usr/bin/env bash
# Build the official HashiCorp Vault binary (server, CLI, Agent) from the
# published Go module github.com/hashicorp/vault, at the version pinned in
# tools/vault/go.mod, into .bin/vault (relative to the repository root).
#
# Usage: scripts/build-vault.sh [--force]
#   --force   rebuild even if .bin/vault already matches the pinned version
#
# Needs only Go (CGO is disabled, as in Vault's official builds) and access to
# the Go module proxy. A cold build downloads ~540 modules and takes ~15-18
# minutes on 2 cores; with a warm build cache it is ~25 s (link only).
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

if [ "$FORCE" = 0 ] && [ -x "$BIN" ] && [ -f "$STAMP" ] \
   && [ "$(cat "$STAMP")" = "$VAULT_VERSION" ]; then
  echo "build-vault: $BIN is already Vault $VAULT_VERSION; skipping (use --force to rebuild)"
  exit 0
fi

# A machine-wide cache shared by every clone (CI runs in a fresh clone on a
# machine that may already have built this version); a miss just builds.
CACHE_DIR="${VAULT_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-wetix}"
CACHED="$CACHE_DIR/vault-$VAULT_VERSION"
if [ "$FORCE" = 0 ] && [ -x "$CACHED" ] && "$CACHED" version >/dev/null 2>&1; then
  mkdir -p "$BINDIR"
  cp -f "$CACHED" "$BIN.tmp.$$" && mv -f "$BIN.tmp.$$" "$BIN"
  echo "$VAULT_VERSION" > "$STAMP"
  echo "build-vault: copied Vault $VAULT_VERSION from the build cache $CACHED"
  exit 0
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
echo "build-vault: building Vault $VAULT_VERSION with $(go version | awk '{print $3}') into $BIN ..."

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

rm -f "$STAMP"
TMP="$BIN.tmp.$$"
trap 'rm -f "$TMP"' EXIT
go build -trimpath -tags vault -ldflags "$LDFLAGS" -o "$TMP" .
mv -f "$TMP" "$BIN"
echo "$VAULT_VERSION" > "$STAMP"
if mkdir -p "$CACHE_DIR" 2>/dev/null && cp -f "$BIN" "$CACHED.tmp.$$" 2>/dev/null; then
  mv -f "$CACHED.tmp.$$" "$CACHED"
fi

END=$(date +%s)
ELAPSED=$((END - START))
printf 'build-vault: built %s (%s) in %dm%02ds\n' \
  "$BIN" "$(du -h "$BIN" | cut -f1)" $((ELAPSED / 60)) $((ELAPSED % 60))
"$BIN" version
