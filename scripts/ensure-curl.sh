#!/usr/bin/env bash
# Makes sure the `curl` command is available: docs/deploy.md sends its first
# message with curl (SMTP), and test/install runs that walkthrough as written.
# Installs it with apt-get when it is missing (Debian/Ubuntu, as root or via
# sudo); does nothing when it is already there. Exit status 0 iff curl runs.
set -euo pipefail

if command -v curl >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-curl: curl is missing and apt-get is not available; install curl by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-curl: curl is missing and this user cannot install packages" >&2
    exit 1
  fi
fi

echo "ensure-curl: installing curl with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends curl >/dev/null
curl --version | head -1 >&2
