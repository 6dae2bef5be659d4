#!/usr/bin/env bash
# Makes sure Debian's `chromium` browser is installed at /usr/bin/chromium,
# with a Japanese font (fonts-ipafont-gothic) so that the console's Japanese
# pages render in its screenshots: test/console drives the web console
# (`ssmax console`) in real headless Chromium through playwright-core, which
# never downloads a browser of its own. Installs what is missing with apt-get
# (Debian/Ubuntu, as root or via sudo); does nothing when both are there.
# Exit status 0 iff chromium runs.
set -euo pipefail

PACKAGES=()
[ -x /usr/bin/chromium ] || PACKAGES+=(chromium)
dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || PACKAGES+=(fonts-ipafont-gothic)
if [ ${#PACKAGES[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: ${PACKAGES[*]} missing and apt-get is not available; install them by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-chromium: ${PACKAGES[*]} missing and this user cannot install packages" >&2
    exit 1
  fi
fi

echo "ensure-chromium: installing ${PACKAGES[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
/usr/bin/chromium --version >&2
