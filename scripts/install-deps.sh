#!/usr/bin/env bash
# Installs the Debian packages given as arguments, only those that are missing.
set -euo pipefail
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis-server on 6379 when it installs one; the project never uses it.
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    ($SUDO systemctl stop redis-server 2>/dev/null || $SUDO service redis-server stop 2>/dev/null || true) >/dev/null
fi
# Likewise sshd: the tests start their own, on a free port.
if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
    ($SUDO systemctl stop ssh 2>/dev/null || $SUDO service ssh stop 2>/dev/null || true) >/dev/null
fi
if ! command -v swift >/dev/null; then
    echo "error: the Swift toolchain (6.x) is not on PATH; install it (e.g. under /opt/swift) and try again" >&2
    exit 1
fi
