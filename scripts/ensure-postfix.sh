#!/usr/bin/env bash
# Makes sure Postfix is available: the tests in test/gateway/postfix-dovecot.test.ts
# start their own Postfix instance (postfix -c DIR start, with its own
# config, queue and data folders in a temporary folder, on free loopback
# ports) as the organisation's MTA in front of the gateway. Installs Debian's
# postfix with apt-get when it is missing (as root or via sudo), without any
# configuration ("No configuration": no /etc/postfix/main.cf is written) and
# without starting the system's Postfix service: nothing listens on port 25
# because of this script. Also libsasl2-modules: Postfix's smtp client needs
# its PLAIN mechanism to authenticate to the gateway (the SASL relay test).
# Exit status 0 iff the postfix command and the PLAIN mechanism exist.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
have() { command -v postfix >/dev/null 2>&1 && command -v postconf >/dev/null 2>&1 && compgen -G '/usr/lib/*/sasl2/libplain.so*' >/dev/null; }
if have; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postfix: postfix is missing and apt-get is not available; install Postfix by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "ensure-postfix: postfix is missing and this user cannot install packages" >&2; exit 1; fi
fi
echo "ensure-postfix: installing postfix (no configuration, service not started)" >&2
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# keep the package's scripts from starting the system service (policy-rc.d: 101 = action forbidden)
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() { if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends postfix libsasl2-modules >/dev/null
have
