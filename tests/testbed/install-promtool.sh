#!/usr/bin/env bash
# promtool (Prometheus' rule checker and rule test runner) for the alert rules' tests (extensions/prometheus/):
# the binary alone, taken out of Debian's prometheus package with apt-get download and dpkg-deb -x. The package is
# never installed: on a host with systemd, installing it starts a Prometheus server listening on every interface.
#   install-promtool.sh DIR     ->  DIR/promtool (nothing done when it is there already)
set -euo pipefail
dir=${1:?usage: install-promtool.sh DIR}
if [ -x "$dir/promtool" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "promtool: apt-get and dpkg-deb (Debian) take it out of the prometheus package; elsewhere put a promtool" \
       "binary (Prometheus 2.x) at $dir/promtool" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"  # apt downloads as its own user (_apt) where it can
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
  # A fresh machine has no package lists yet.
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  apt-get download prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb root
mkdir -p "$dir"
install -m 0755 root/usr/bin/promtool "$dir/promtool.tmp"
mv "$dir/promtool.tmp" "$dir/promtool"
echo "promtool from $(ls prometheus_*.deb): $("$dir/promtool" --version 2>&1 | head -1)"
