#!/usr/bin/env bash
# Debian packages the stack and its tests use; installs only what is missing.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v faketime >/dev/null 2>&1 || need+=(faketime)  # the bench's clock-jump fault (hil/faults.py)
# Headless Chromium for the cloud dashboard's browser test (its own script: idempotent).
bash "$(dirname "$0")/cloud/install-chromium.sh"
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
