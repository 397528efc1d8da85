#!/usr/bin/env bash
# Runs once, as root, while docker/build-cpu/Dockerfile builds. Works on Debian and Ubuntu bases
# (python:X.Y-slim, a debootstrap'd Debian, nvidia/cuda:*-devel-ubuntu*).
# Inputs (build args): PYTHON=X.Y, UV_VERSION (optional); /tmp/ww/ca.pem (CA bundle, may be empty).
set -euxo pipefail

ca=/tmp/ww/ca.pem
apt_opts=(-q -o Dpkg::Use-Pty=0)
if [ -s "$ca" ]; then
  # apt's https transport reads its CA from CAInfo, even before ca-certificates is installed.
  apt_opts+=(-o "Acquire::https::CAInfo=$ca")
  export PIP_CERT=$ca SSL_CERT_FILE=$ca REQUESTS_CA_BUNDLE=$ca
fi
export DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# True when python3 is Python $PYTHON with venv, ensurepip and its C headers.
has_python() {
  command -v python3 >/dev/null 2>&1 && python3 - "$PYTHON" <<'PY'
import os, sys, sysconfig
import ensurepip, venv  # noqa: F401  (both are needed to make build venvs)
ok = "%d.%d" % sys.version_info[:2] == sys.argv[1]
ok = ok and os.path.isfile(os.path.join(sysconfig.get_path("include"), "Python.h"))
sys.exit(0 if ok else 1)
PY
}

packages=(ca-certificates gcc g++ make ninja-build git)
has_python || packages+=(python3 python3-venv python3-dev)
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" upgrade -y
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${packages[@]}"
apt-get clean
rm -rf /var/lib/apt/lists/*
if ! has_python; then
  echo "this base offers $(python3 -V 2>&1 || echo 'no python3'), not Python $PYTHON" >&2
  exit 1
fi

# The proxy's CA joins the system store (and so /etc/ssl/certs/ca-certificates.crt), for git, curl
# and the PIP_CERT/SSL_CERT_FILE the Dockerfile sets.
if [ -s "$ca" ]; then
  install -m 0644 "$ca" /usr/local/share/ca-certificates/wheelwright-ca.crt
  update-ca-certificates
fi

# uv: the static binary from its PyPI wheel, through a throwaway venv.
python3 -m venv /tmp/ww/uv-venv
/tmp/ww/uv-venv/bin/pip install "uv${UV_VERSION:+==$UV_VERSION}"
install -m 0755 /tmp/ww/uv-venv/bin/uv /tmp/ww/uv-venv/bin/uvx /usr/local/bin/
rm -rf /tmp/ww/uv-venv

# builder, uid/gid 1000. Ubuntu-based images already have uid 1000 (ubuntu): rename it.
getent group 1000 >/dev/null || groupadd -g 1000 builder
group=$(getent group 1000 | cut -d: -f1)
[ "$group" = builder ] || groupmod -n builder "$group"
if user=$(getent passwd 1000 | cut -d: -f1) && [ -n "$user" ]; then
  [ "$user" = builder ] || usermod -l builder -d /home/builder -m -g 1000 -s /bin/bash "$user"
else
  useradd -m -u 1000 -g 1000 -s /bin/bash builder
fi
install -d -m 1777 /ww

python3 -VV
uv --version
ninja --version
gcc --version | head -n 1
