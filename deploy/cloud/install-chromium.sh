#!/usr/bin/env bash
# Headless Chromium for the cloud dashboard's browser test (tests/cloud/test_cloud_dashboard.py).
# Debian's chromium + chromium-driver; installs only what is missing, so a second run does nothing.
# Called from deploy/install-system-packages.sh (make setup) and, as a fallback, by the test itself.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
