#!/usr/bin/env bash
# System packages the local stack needs, from Debian: PostgreSQL, Redis, a Java 17 runtime,
# Maven, setpriv, and Chromium with its driver (the browser test). Installs only what is
# missing; needs root (or sudo) the first time.
set -euo pipefail

missing=()
have_pg=$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null | head -1 || true)
[[ -n "$have_pg" ]] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v mvn >/dev/null || missing+=(maven)
# the DLQ review page's browser test (tests/integration/test_dlq_page.py)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ! command -v java >/dev/null && [[ -z "${JAVA_HOME:-}" ]]; then
  missing+=(openjdk-17-jre-headless)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "error: need root to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "system packages: installing ${missing[*]} (apt-get) ..."
# Debian's postinst would start a system-wide PostgreSQL/Redis on the default ports; the
# stack runs its own, so forbid service starts during this install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
  $SUDO chmod +x $policy
  created_policy=1
fi
trap '[[ $created_policy -eq 1 ]] && $SUDO rm -f '"$policy" EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "system packages: done"
