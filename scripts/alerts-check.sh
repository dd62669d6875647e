#!/usr/bin/env bash
# Check the alert rules operators copy (docs/prometheus/wetix-alerts.yml):
# promtool check rules, then its unit tests (wetix-alerts.test.yml). Uses
# promtool from PATH if there is one, else extracts it from Debian's
# prometheus package into .bin/ (downloaded once, about 19 MB; nothing is
# installed system-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=$(command -v promtool || true)
if [ -z "$promtool" ]; then
  promtool=.bin/promtool
  if [ ! -x "$promtool" ]; then
    command -v apt-get >/dev/null || { echo "alerts-check: no promtool on PATH and no apt-get to fetch Debian's; install Prometheus's promtool" >&2; exit 1; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "alerts-check: fetching promtool from Debian's prometheus package (once)" >&2
    (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null) \
      || { echo "alerts-check: apt-get download prometheus failed; run apt-get update, or put promtool on PATH" >&2; exit 1; }
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    mkdir -p .bin
    cp "$tmp/x/usr/bin/promtool" "$promtool"
  fi
fi
"$promtool" --version 2>&1 | head -1
"$promtool" check rules docs/prometheus/wetix-alerts.yml
"$promtool" test rules docs/prometheus/wetix-alerts.test.yml
