#!/usr/bin/env bash
# Install the system packages the tests need (bindep.txt names them for backup hosts), with apt,
# only when one is missing. Needs root on a Debian-like machine. npm fetches GitHub's GraphQL schema
# (@octokit/graphql-schema), which the GitHub stand-in's schema is checked against. Chromium renders the HTML
# report headless in its test (tests/integration/roles/test_report.py).
set -euo pipefail
need=()
for cmd_pkg in git:git tar:tar gzip:gzip zstd:zstd age:age age-keygen:age sha256sum:coreutils shellcheck:shellcheck git-lfs:git-lfs dockerd:docker.io npm:npm pigz:pigz \
    mmdebstrap:mmdebstrap ssh:openssh-client ssh-keygen:openssh-client chromium:chromium; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# The fresh-host tests build a Debian root file system with mmdebstrap and reach its containers with ssh.
# The Docker tests import a static busybox into an image (a dynamically linked one would not run there).
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
  need+=(busybox-static)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${need[*]} (install them; see bindep.txt)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
