#!/usr/bin/env bash
# Runs as root while docker/api/Dockerfile and docker/worker/Dockerfile build. Works on the
# online base python:3.11-slim and on the offline wheelwright/base:bookworm (a debootstrap'd
# Debian with no Python: python3 comes from apt there).
#
#   provision.sh build              the venv /opt/wheelwright with the project in /tmp/ww/src
#   provision.sh runtime [PKG ...]  python3, the CA store, apt packages PKG, user wheelwright
#
# /tmp/ww/ca.pem is the CA bundle of a TLS-intercepting proxy (absent or empty when there is
# none): apt, pip and the running service trust it.
set -euxo pipefail

mode=${1:?usage: provision.sh build|runtime [PKG ...]}
shift
ca=/tmp/ww/ca.pem
apt_opts=(-q -o Dpkg::Use-Pty=0)
if [ -s "$ca" ]; then
  apt_opts+=(-o "Acquire::https::CAInfo=$ca")
  export PIP_CERT=$ca SSL_CERT_FILE=$ca REQUESTS_CA_BUNDLE=$ca
fi
export DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

apt_install() {
  apt-get "${apt_opts[@]}" update
  apt-get "${apt_opts[@]}" upgrade -y
  apt-get "${apt_opts[@]}" install -y --no-install-recommends "$@"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
}

python_ok() {  # python3 is 3.11 or newer and has the modules named
  command -v python3 >/dev/null 2>&1 \
    && python3 -c "import sys; assert sys.version_info >= (3, 11); import $1" 2>/dev/null
}

case $mode in
  build)
    python_ok "venv, ensurepip" || apt_install python3 python3-venv
    python3 -m venv /opt/wheelwright
    /opt/wheelwright/bin/pip install /tmp/ww/src
    # pip and setuptools are not needed to run the service: drop them from the final venv.
    /opt/wheelwright/bin/pip uninstall -y pip setuptools 2>/dev/null || true
    /opt/wheelwright/bin/wheelwright --help >/dev/null
    ;;
  runtime)
    packages=("$@")
    python_ok ssl || packages+=(python3)
    command -v update-ca-certificates >/dev/null 2>&1 || packages+=(ca-certificates)
    [ "${#packages[@]}" -eq 0 ] || apt_install "${packages[@]}"
    if [ -s "$ca" ]; then
      install -m 0644 "$ca" /usr/local/share/ca-certificates/wheelwright-ca.crt
      update-ca-certificates
    fi
    groupadd --gid 10001 wheelwright
    useradd --uid 10001 --gid 10001 --home-dir /home/wheelwright --create-home \
      --shell /usr/sbin/nologin wheelwright
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
