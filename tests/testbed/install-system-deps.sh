#!/usr/bin/env bash
# Install the system packages the tests need (bindep.txt names them for backup hosts), with apt,
# only when one is missing. Needs root on a Debian-like machine. npm fetches GitHub's GraphQL schema
# (@octokit/graphql-schema), which the GitHub stand-in's schema is checked against. Chromium renders the HTML
# report headless in its test (tests/integration/roles/test_report.py). PostgreSQL 15 (below) without a cluster
# of its own: the tests make theirs. restic is the peer bench/bench_change.py compares github_backup with.
set -euo pipefail
need=()
for cmd_pkg in git:git tar:tar gzip:gzip zstd:zstd age:age age-keygen:age sha256sum:coreutils shellcheck:shellcheck git-lfs:git-lfs dockerd:docker.io npm:npm pigz:pigz \
    mmdebstrap:mmdebstrap ssh:openssh-client ssh-keygen:openssh-client chromium:chromium restic:restic; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# The fresh-host tests build a Debian root file system with mmdebstrap and reach its containers with ssh.
# The Docker tests import a static busybox into an image (a dynamically linked one would not run there).
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
  need+=(busybox-static)
fi
# apt's Python bindings for the system's python3: setup.yml's apt task runs with it in check mode in a test
# (tests/integration/roles/test_playbooks.py), where Ansible cannot install them itself.
if command -v apt-get >/dev/null 2>&1 && ! /usr/bin/python3 -c 'import apt' >/dev/null 2>&1; then
  need+=(python3-apt)
fi
# PostgreSQL 15 (Debian's postgresql): the tests start clusters of their own with its initdb and postgres; the
# postgres_dump module runs its pg_dump, pg_dumpall, pg_restore and psql.
pg_bin=/usr/lib/postgresql/15/bin
pg_missing=false
for tool in postgres pg_dump pg_dumpall pg_restore psql; do
  [ -x "$pg_bin/$tool" ] || pg_missing=true
done
if $pg_missing; then
  need+=(postgresql postgresql-client)
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
if $pg_missing; then
  # Before the package is installed: no cluster "main" created and started on port 5432 (a system service on
  # every boot, and a port taken). The other lines of the file, if it exists, are kept; postgresql-common keeps
  # the file as it finds it (UCF_FORCE_CONFFOLD below).
  conf=/etc/postgresql-common/createcluster.conf
  setting='^[[:space:]]*create_main_cluster[[:space:]]*='
  if ! grep -Eqs "${setting}[[:space:]]*false[[:space:]]*\$" "$conf"; then
    echo "setting create_main_cluster = false in $conf"
    $sudo mkdir -p "$(dirname "$conf")"
    if grep -Eqs "$setting" "$conf"; then
      $sudo sed -i -E "s/${setting}.*/create_main_cluster = false/" "$conf"
    elif [ -s "$conf" ]; then
      $sudo sed -i "\$a create_main_cluster = false" "$conf"  # a line of its own, also after a last line without newline
    else
      echo "create_main_cluster = false" | $sudo tee "$conf" >/dev/null
    fi
  fi
fi
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
