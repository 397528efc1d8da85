#!/usr/bin/env bash
# Build the offline base image wheelwright/base:bookworm for machines that reach no container
# registry: debootstrap a minimal Debian bookworm (--variant=minbase) and `docker import` it.
# Skips the work when the image exists (pass --force to rebuild). Needs root, debootstrap and a
# running Docker engine (scripts/host-services.sh provides all three).
#
# The Debian mirror is the one this host's apt uses for bookworm (deb822 *.sources files or
# one-line *.list files), so a machine behind a mirror or proxy builds from that; override with
# WHEELWRIGHT_DEBIAN_MIRROR / WHEELWRIGHT_DEBIAN_SECURITY_MIRROR. The same mirrors are written
# into the image's apt sources, so `apt-get` works inside the containers.
set -euo pipefail

IMAGE=${WHEELWRIGHT_BASE_IMAGE:-wheelwright/base:bookworm}
SUITE=bookworm
say() { printf 'debootstrap-base: %s\n' "$*"; }
die() { printf 'debootstrap-base: ERROR: %s\n' "$*" >&2; exit 1; }

force=0
[ "${1:-}" = "--force" ] && force=1
if [ "$force" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE exists"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (run scripts/host-services.sh)"

# First URI that this host's apt uses for suite $1 (deb822 stanzas first, then one-line lists).
host_mirror() {
  local want=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$want" '
      function flush() {
        if (!found && enabled != "no" && types ~ /(^| )deb( |$)/ &&
            (" " suites " ") ~ (" " want " ") && uris != "") {
          split(uris, u, " "); print u[1]; found = 1
        }
        types = suites = uris = enabled = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key); $1 = ""; val = $0; sub(/^[[:space:]]+/, "", val)
        if (key == "types") types = val
        else if (key == "suites") suites = val
        else if (key == "uris") uris = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }' "$f" | head -n 1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$want" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit }
      }' "$f"
  done
}

mirror=${WHEELWRIGHT_DEBIAN_MIRROR:-$(host_mirror "$SUITE" | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${WHEELWRIGHT_DEBIAN_SECURITY_MIRROR:-$(host_mirror "$SUITE-security" | head -n 1)}
security=${security:-http://deb.debian.org/debian-security}
say "mirror $mirror (security: $security)"

tmp=$(mktemp -d /var/tmp/wheelwright-rootfs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
rootfs=$tmp/rootfs

start=$(date +%s)
say "debootstrap --variant=minbase $SUITE (about a minute)"
debootstrap --variant=minbase --components=main "$SUITE" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
  || { tail -n 30 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }

# apt sources for the containers: the host's mirrors, deb822 style like Debian's own images.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# What Debian's official container images do to stay small and quiet: no services started by
# package scripts, no apt package cache, no docs, man pages or translations.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/log/*.log "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/info
say "debootstrap done in $(( $(date +%s) - start ))s, $(du -sh "$rootfs" | cut -f1)"

tar --numeric-owner --xattrs -C "$rootfs" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.wheelwright.base=debootstrap-$SUITE org.wheelwright.debian-mirror=$mirror" \
  - "$IMAGE" >/dev/null
say "imported $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
