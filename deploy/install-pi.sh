#!/usr/bin/env bash
# Install the FogPark fog on Raspberry Pi OS (Debian bookworm): run as root from a checkout.
#   sudo deploy/install-pi.sh [--with-mosquitto]
# Creates the fogpark user, /opt/fogpark/venv, /etc/fogpark (config) and /var/lib/fogpark (data),
# installs the systemd unit and enables it. Safe to run again (upgrades in place).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
with_mosquitto=0
[ "${1:-}" = "--with-mosquitto" ] && with_mosquitto=1
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

apt-get update -q
apt-get install -y -q python3-venv python3-dev
id fogpark >/dev/null 2>&1 || useradd --system --home /var/lib/fogpark --shell /usr/sbin/nologin fogpark
for g in dialout spi gpio; do getent group "$g" >/dev/null && usermod -aG "$g" fogpark; done

install -d -o root -g root -m 0755 /opt/fogpark
python3 -m venv /opt/fogpark/venv
/opt/fogpark/venv/bin/pip install -q --upgrade pip
/opt/fogpark/venv/bin/pip install -q "$src[fog,pi]"

install -d -o root -g fogpark -m 0750 /etc/fogpark
install -d -o fogpark -g fogpark -m 0750 /var/lib/fogpark
if [ ! -f /etc/fogpark/fog.toml ]; then
  install -o root -g fogpark -m 0640 "$src/fog/examples/demo-fog.toml" /etc/fogpark/fog.toml
  install -o root -g fogpark -m 0640 "$src/fog/examples/demo-lot.toml" /etc/fogpark/demo-lot.toml
  install -o root -g fogpark -m 0640 "$src/fog/examples/demo-nodes.toml" /etc/fogpark/demo-nodes.toml
  echo "wrote /etc/fogpark/fog.toml from the demo: edit the lot, nodes, gateways and cloud before going live"
fi

if [ "$with_mosquitto" -eq 1 ]; then
  apt-get install -y -q mosquitto
  install -m 0644 "$src/deploy/mosquitto/fogpark.conf" /etc/mosquitto/conf.d/fogpark.conf
  if [ ! -f /etc/mosquitto/fogpark.passwd ]; then
    pw="$(head -c 18 /dev/urandom | base64)"
    mosquitto_passwd -b -c /etc/mosquitto/fogpark.passwd fogpark "$pw"
    chown root:mosquitto /etc/mosquitto/fogpark.passwd; chmod 0640 /etc/mosquitto/fogpark.passwd
    echo "mosquitto user 'fogpark' password: $pw  (put it in /etc/fogpark/fog.toml [ingest.mqtt])"
  fi
  systemctl restart mosquitto
fi

/opt/fogpark/venv/bin/fogpark-fog check /etc/fogpark/fog.toml
install -m 0644 "$src/deploy/fogpark-fog.service" /etc/systemd/system/fogpark-fog.service
systemctl daemon-reload
systemctl enable --now fogpark-fog
systemctl --no-pager status fogpark-fog || true
