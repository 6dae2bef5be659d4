#!/usr/bin/env bash
# Makes sure Dovecot's LMTP server, with Pigeonhole Sieve, is available: the
# tests (test/gateway/delivery-lmtp.test.ts, test/gateway/postfix-dovecot.test.ts,
# test/gateway/crash-safety.test.ts) start their
# own Dovecot (dovecot -F -c FILE, with a dovecot.conf, base_dir, state_dir,
# passwd-file and Maildirs in a temporary folder, LMTP only on a free
# loopback port) as the organisation's mailbox store; Sieve's "duplicate"
# extension makes a retried copy idempotent there (docs/delivery.md). Installs
# Debian's dovecot-core, dovecot-lmtpd and dovecot-sieve with apt-get when
# missing (as root or via sudo), without starting the system's Dovecot
# service. Exit status 0 iff dovecot, its lmtp server and the sieve plugin exist.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
libexec() { dovecot -c /dev/null config -h libexec_dir 2>/dev/null || echo /usr/lib/dovecot; }
moddir() { dovecot -c /dev/null config -h mail_plugin_dir 2>/dev/null || echo /usr/lib/dovecot/modules; }
have() { command -v dovecot >/dev/null 2>&1 && [ -x "$(libexec)/lmtp" ] && [ -e "$(moddir)/lib90_sieve_plugin.so" ]; }
if have; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-dovecot: dovecot (with its LMTP server) is missing and apt-get is not available; install it by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "ensure-dovecot: dovecot is missing and this user cannot install packages" >&2; exit 1; fi
fi
echo "ensure-dovecot: installing dovecot-core, dovecot-lmtpd and dovecot-sieve (service not started)" >&2
export DEBIAN_FRONTEND=noninteractive
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
$SUDO apt-get install -y -qq --no-install-recommends dovecot-core dovecot-lmtpd dovecot-sieve >/dev/null
have
