#!/usr/bin/env bash
# The one-command demo: a WeTix OAuth emulator and a Vault dev server on
# loopback, with this plugin registered by sha256 and version, mounted at
# wetix/, configured against the emulator, and a token read through Vault.
#
#   scripts/dev.sh up            run in the foreground; Ctrl-C stops everything
#   scripts/dev.sh up --detach   start, print what to do next, and return
#   scripts/dev.sh down          stop what `up --detach` started
#
# `make dev` builds the binaries first and runs `up`. Ports can be moved with
# DEV_VAULT_PORT (8200) and DEV_EMULATOR_PORT (8089), the state (pid files,
# logs) with DEV_STATE_DIR (.dev), and the binaries with DEV_BIN_DIR (.bin:
# vault, plugins/vault-plugin-secrets-wetix, wetix-emulator), which lets the
# acceptance test run the script on binaries it built itself.
set -euo pipefail

ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${DEV_BIN_DIR:-$ROOT/.bin}"
STATE="${DEV_STATE_DIR:-$ROOT/.dev}"
VAULT_PORT="${DEV_VAULT_PORT:-8200}"
EMU_PORT="${DEV_EMULATOR_PORT:-8089}"
VERSION="${VERSION:-v0.2.0}"
MOUNT=wetix

export VAULT_ADDR="http://127.0.0.1:$VAULT_PORT"
export VAULT_TOKEN=root
export HOME="${HOME:-$STATE}"

die() { echo "dev: $*" >&2; exit 1; }

down() {
  for name in vault emulator; do
    local pidfile="$STATE/$name.pid"
    if [ -f "$pidfile" ]; then
      local pid; pid="$(cat "$pidfile")"
      # Each runs in its own process group (setsid); Vault's plugins go with it.
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  echo "dev: stopped"
}

wait_http() {
  local url="$1" what="$2"
  for _ in $(seq 300); do
    if curl -s -o /dev/null "$url"; then return 0; fi
    sleep 0.1
  done
  die "$what did not come up; see $STATE/$what.log"
}

up() {
  local detach="${1:-}"
  for f in "$BIN/vault" "$BIN/plugins/vault-plugin-secrets-wetix" "$BIN/wetix-emulator"; do
    [ -x "$f" ] || die "$f is missing: run \`make dev\` (it builds everything first)"
  done
  command -v curl >/dev/null || die "curl is needed (apt-get install -y curl)"
  mkdir -p "$STATE"
  if [ -f "$STATE/vault.pid" ] && kill -0 "$(cat "$STATE/vault.pid")" 2>/dev/null; then
    die "already running: run \`make dev-down\` first"
  fi

  setsid "$BIN/wetix-emulator" -addr "127.0.0.1:$EMU_PORT" -client-id demo-client -client-secret demo-secret \
    >"$STATE/emulator.log" 2>&1 &
  echo $! >"$STATE/emulator.pid"
  wait_http "http://127.0.0.1:$EMU_PORT/_emulator/stats" emulator

  printf 'plugin_directory = "%s"\ndisable_mlock = true\n' "$BIN/plugins" >"$STATE/vault.hcl"
  setsid "$BIN/vault" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$VAULT_PORT" \
    -dev-no-store-token -config="$STATE/vault.hcl" >"$STATE/vault.log" 2>&1 &
  echo $! >"$STATE/vault.pid"
  wait_http "$VAULT_ADDR/v1/sys/health" vault

  local sha; sha="$(sha256sum "$BIN/plugins/vault-plugin-secrets-wetix" | cut -d' ' -f1)"
  "$BIN/vault" plugin register -sha256="$sha" -version="$VERSION" -command=vault-plugin-secrets-wetix secret wetix
  "$BIN/vault" secrets enable -path="$MOUNT" -plugin-version="$VERSION" wetix
  "$BIN/vault" write "$MOUNT/config" client_id=demo-client client_secret=demo-secret \
    base_url="http://127.0.0.1:$EMU_PORT" ttl=10m
  echo
  echo "A WeTix access token, read through Vault:"
  "$BIN/vault" read "$MOUNT/token"

  cat <<NEXT

The demo is running.
  Vault:     $VAULT_ADDR   (root token: root)
  Emulator:  http://127.0.0.1:$EMU_PORT   (client demo-client / demo-secret; counters at /_emulator/stats)
  Logs:      $STATE/vault.log, $STATE/emulator.log

Try, in another shell:
  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root PATH="$BIN:\$PATH"
  vault read $MOUNT/token          # the token again: served from cache, no call to WeTix
  vault read $MOUNT/status         # health, expiry times, refresh counts; never a secret
  vault write -f $MOUNT/rotate     # force a refresh now

NEXT
  if [ "$detach" = "--detach" ]; then
    echo "Stop it with: make dev-down"
    return 0
  fi
  echo "Press Ctrl-C to stop."
  trap 'echo; down; exit 0' INT TERM
  while kill -0 "$(cat "$STATE/vault.pid")" 2>/dev/null; do sleep 1; done
  down
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  *) die "usage: $0 up [--detach] | down" ;;
esac
