#!/usr/bin/env bash
# Makes sure ClamAV's clamd and sigtool are available: the inspection tests
# (test/inspect) start a real clamd with a signature database they generate
# (no freshclam, no network update). Installs Debian's clamav-daemon when
# missing (as root or via sudo). Exit status 0 iff clamd and sigtool exist.
set -euo pipefail
if command -v clamd >/dev/null 2>&1 && command -v sigtool >/dev/null 2>&1; then exit 0; fi
PATH="$PATH:/usr/sbin"
if command -v clamd >/dev/null 2>&1 && command -v sigtool >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-clamav: clamd is missing and apt-get is not available; install ClamAV by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "ensure-clamav: clamd is missing and this user cannot install packages" >&2; exit 1; fi
fi
echo "ensure-clamav: installing clamav-daemon" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clamav-daemon clamav >/dev/null
command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ]
