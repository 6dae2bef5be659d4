#!/usr/bin/env bash
# Makes sure libfaketime is available: test/ops/sixty-days.test.ts runs real
# keyd, publisher and Haraka processes on a simulated clock by preloading
# libfaketime (LD_PRELOAD) with a timestamp file the test advances. Installs
# the Debian package `faketime` (which brings libfaketime) with apt-get when
# the library is missing (as root or via sudo); does nothing when it is
# already there. Exit status 0 iff the library file exists.
set -euo pipefail

lib() {
  for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
  return 1
}

if lib >/dev/null; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-faketime: libfaketime is missing and apt-get is not available; install it by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-faketime: libfaketime is missing and this user cannot install packages" >&2
    exit 1
  fi
fi

echo "ensure-faketime: installing faketime with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends faketime libfaketime >/dev/null 2>&1 || {
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends faketime libfaketime >/dev/null
}
lib >&2
