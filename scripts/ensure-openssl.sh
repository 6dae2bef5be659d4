#!/usr/bin/env bash
# Makes sure the `openssl` command is available: the PKI interop tests
# (test/pki) compare our certificate validation with `openssl verify`.
# Installs it with apt-get when it is missing (Debian/Ubuntu, as root or via
# sudo); does nothing when it is already there. Exit status 0 iff openssl runs.
set -euo pipefail

if command -v openssl >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-openssl: openssl is missing and apt-get is not available; install openssl by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-openssl: openssl is missing and this user cannot install packages" >&2
    exit 1
  fi
fi

echo "ensure-openssl: installing openssl with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends openssl >/dev/null
openssl version >&2
