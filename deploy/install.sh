#!/usr/bin/env bash
# Installs Breakwater on a bare-metal Debian/Ubuntu machine with systemd:
#   /usr/local/bin/breakwater                 the binary (built here in release mode, or --binary)
#   /etc/breakwater/breakwater.yaml           the config (kept if it exists; the reference one otherwise)
#   /etc/systemd/system/breakwater.service    the unit (Type=notify, hardened, reload with SIGHUP)
#   /etc/logrotate.d/breakwater               rotation for a file access log (copytruncate)
#   user and group `breakwater`, /var/lib/breakwater (compiled Wasm cache), /var/log/breakwater
# then enables and starts the service (skipped with --no-start, or when ROOT is not /).
#
# Usage: deploy/install.sh [--binary PATH] [--root DIR] [--no-start] [--restart]
#   --root DIR   install under DIR instead of / (packaging, tests): no users, no systemctl.
#   --restart    when the node already runs: restart it on the new binary (connections in
#                flight are cut; without it the new binary waits for the next restart, or
#                for the zero-downtime upgrade of the README's "Operating" section).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root=/
binary=""
start=1
restart=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --restart) restart=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$root" = / ] || start=0

if [ -z "$binary" ]; then
  source "$here/build-deps.sh"
  (cd "$here/.." && cargo build --locked --release -p breakwater-proxy --bin breakwater)
  binary="${CARGO_TARGET_DIR:-$here/../target}/release/breakwater"
fi
[ -x "$binary" ] || { echo "no executable at $binary" >&2; exit 1; }

# Refuse a config the new binary cannot load before touching anything.
config="$root/etc/breakwater/breakwater.yaml"
if [ -f "$config" ]; then
  "$binary" check --config "$config"
fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/breakwater" "$root/etc/systemd/system" \
  "$root/etc/logrotate.d"
install -d -m 0750 "$root/var/lib/breakwater" "$root/var/log/breakwater"
# Atomic replace: a running process keeps its old inode.
install -m 0755 "$binary" "$root/usr/local/bin/breakwater.new"
mv -f "$root/usr/local/bin/breakwater.new" "$root/usr/local/bin/breakwater"
if [ ! -f "$config" ]; then
  install -m 0640 "$here/breakwater.yaml" "$config"
fi
install -m 0644 "$here/systemd/breakwater.service" "$root/etc/systemd/system/breakwater.service"
cat > "$root/etc/logrotate.d/breakwater" <<'ROTATE'
# Access log written to a file (`access_log: { path: /var/log/breakwater/access.log }`).
# copytruncate: the node keeps its file descriptor; nothing to signal.
/var/log/breakwater/*.log {
    daily
    rotate 14
    compress
    delaycompress
    missingok
    notifempty
    copytruncate
}
ROTATE

if [ "$root" = / ]; then
  getent group breakwater >/dev/null || groupadd --system breakwater
  getent passwd breakwater >/dev/null || useradd --system --gid breakwater --no-create-home \
    --home-dir /var/lib/breakwater --shell /usr/sbin/nologin breakwater
  chown -R breakwater:breakwater /var/lib/breakwater /var/log/breakwater
  chgrp breakwater /etc/breakwater/breakwater.yaml
fi

if [ "$start" = 1 ]; then
  systemctl daemon-reload
  if ! systemctl is-active --quiet breakwater; then
    systemctl enable --now breakwater
  elif [ "$restart" = 1 ]; then
    systemctl restart breakwater
  else
    echo "breakwater is running the old binary: restart it (--restart) or upgrade it without"
    echo "dropping connections as the README's \"Zero-downtime binary upgrade\" shows"
  fi
  systemctl --no-pager status breakwater | head -5
fi
echo "installed under $root"
