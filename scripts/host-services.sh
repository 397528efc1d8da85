#!/usr/bin/env bash
# Make this machine ready for Wheelwright's integration tests: install the Debian packages the
# project's scripts and fixtures call (docker.io, debootstrap, redis-server, git, ca-certificates,
# chromium and chromium-driver for the dashboard's browser tests, postgresql for the catalog's tests:
# their fixture runs a cluster of its own as the `postgres` user)
# and start a Docker engine. Idempotent, and fast when everything is already there.
# Debian bookworm, as root (re-runs itself through sudo when it can).
#
# dockerd runs with --bridge=none --iptables=false --ip6tables=false: no container networks on
# private ranges and no firewall rules; image builds and fetch stages use host networking, build
# stages run with network "none".
set -euo pipefail

LOG=/var/log/wheelwright-dockerd.log
WAIT_S=${WHEELWRIGHT_DOCKERD_WAIT_S:-60}
PACKAGES=(docker.io debootstrap redis-server postgresql git ca-certificates chromium chromium-driver)

say() { printf 'host-services: %s\n' "$*"; }
die() { printf 'host-services: ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "run as root (no sudo here)"
  exec sudo --preserve-env "$0" "$@"
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  # Keep the packages' maintainer scripts from starting a dockerd (or redis) with their default
  # settings (docker0 bridge, iptables rules): we start what we need ourselves, below.
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  trap '[ "$added_policy" -eq 0 ] || rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "installed ${missing[*]}"
else
  say "packages present: ${PACKAGES[*]}"
fi

if docker info >/dev/null 2>&1; then
  say "docker engine is up"
  exit 0
fi

say "starting dockerd (log: $LOG)"
setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$LOG" 2>&1 </dev/null &
pid=$!
for _ in $(seq "$WAIT_S"); do
  if docker info >/dev/null 2>&1; then
    say "docker engine is up (dockerd pid $pid)"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$LOG" >&2 || true
    die "dockerd exited while starting; see $LOG"
  fi
  sleep 1
done
tail -n 20 "$LOG" >&2 || true
die "docker engine not reachable after ${WAIT_S}s; see $LOG"
