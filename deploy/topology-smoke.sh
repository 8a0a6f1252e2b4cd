#!/usr/bin/env bash
# The deployment topology without Docker: nginx -> two gunicorn instances, two workers,
# PostgreSQL and Redis on 127.0.0.1, aiosmtpd; then a smoke test through the proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; } \
    || { echo "nginx could not be installed" >&2; exit 1; }
fi
exec timeout 120 .venv/bin/python deploy/topology_smoke.py
