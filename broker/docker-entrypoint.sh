#!/bin/sh
# Checks the environment, fills in broker/mosquitto.conf's placeholders for the container, then
# runs Mosquitto in the foreground as the (non-root) container user. Secrets stay in the
# environment, where the plugin reads them; they are never written into the config, nor printed.
# With --check it checks the environment and exits. Variables: broker/.env.example.
set -eu

# Every problem is collected first, so one failed start names them all.
problems=""
problem() {
  problems="${problems}
  - $1"
}
is_port() {
  case "$1" in '' | *[!0-9]*) return 1 ;; esac
  [ ${#1} -le 5 ] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

case "${MQTT_AUTH_DB_URL:-}" in
  '') problem "MQTT_AUTH_DB_URL is not set: the plugin asks Postgres (as the role mqtt_broker) who may connect and what they may do" ;;
  postgres://?* | postgresql://?*) ;;
  *) problem "MQTT_AUTH_DB_URL must be a postgres:// or postgresql:// URL (the plugin's connection as the role mqtt_broker)" ;;
esac

if [ -z "${MQTT_AUTH_JWKS_URL:-}" ] && [ -z "${MQTT_AUTH_JWT_SECRET:-}" ]; then
  problem "set MQTT_AUTH_JWKS_URL and/or MQTT_AUTH_JWT_SECRET: the plugin verifies users' access tokens with them"
fi
case "${MQTT_AUTH_JWKS_URL:-}" in
  '') ;;
  *[[:space:]]*) problem "MQTT_AUTH_JWKS_URL must be an http:// or https:// URL (the project's JWKS, for ES256/RS256 tokens)" ;;
  http://[!/]* | https://[!/]*) ;;
  *) problem "MQTT_AUTH_JWKS_URL must be an http:// or https:// URL (the project's JWKS, for ES256/RS256 tokens)" ;;
esac
if [ -n "${MQTT_AUTH_JWT_SECRET:-}" ] && [ ${#MQTT_AUTH_JWT_SECRET} -lt 32 ]; then
  problem "MQTT_AUTH_JWT_SECRET must be at least 32 characters (the project's JWT secret, for HS256 tokens)"
fi
case "${MQTT_AUTH_SECRET_KEY:-}" in
  '' | sb_secret_*) ;;
  *) problem "MQTT_AUTH_SECRET_KEY must be the project's sb_secret_ key (the backend's own services sign in with it)" ;;
esac
if [ -n "${MQTT_AUTH_JWT_PUBLIC_KEY_FILE:-}" ]; then
  problem "MQTT_AUTH_JWT_PUBLIC_KEY_FILE is no longer read: set MQTT_AUTH_JWKS_URL to the project's JWKS"
fi
is_port "${MQTT_PORT:-}" || problem "MQTT_PORT must be a port number, 1 to 65535 (the MQTT listener)"
is_port "${MQTT_WS_PORT:-}" || problem "MQTT_WS_PORT must be a port number, 1 to 65535 (the WebSockets listener)"
if [ "${MQTT_PORT:-}" = "${MQTT_WS_PORT:-}" ] && [ -n "${MQTT_PORT:-}" ]; then
  problem "MQTT_PORT and MQTT_WS_PORT must differ (one listener each)"
fi

if [ -n "$problems" ]; then
  printf 'broker: not starting; fix these environment variables (see broker/.env.example):%s\n' "$problems" >&2
  exit 1
fi
if [ "${1:-}" = "--check" ]; then
  echo "broker: environment ok"
  exit 0
fi

# Paths default to the image's layout; they are overridable so the same script can be run, as
# the container runs it, from a plain folder (tests/integration/deployables.test.ts).
MQTT_CONF_TEMPLATE="${MQTT_CONF_TEMPLATE:-/etc/mosquitto/mosquitto.conf.template}"
MQTT_PLUGIN_PATH="${MQTT_PLUGIN_PATH:-/usr/lib/mosquitto/supabase_auth.so}"
MQTT_CONF="${MQTT_CONF:-/mosquitto/config/mosquitto.conf}"
MQTT_STATE_DIR="${MQTT_STATE_DIR:-/mosquitto/data}"
sed -e "s|@PLUGIN@|${MQTT_PLUGIN_PATH}|" \
    -e "s|@MQTT_PORT@|${MQTT_PORT}|" \
    -e "s|@WS_PORT@|${MQTT_WS_PORT}|" \
    -e "s|@BIND_ADDRESS@|0.0.0.0|" \
    -e "s|@STATE_DIR@|${MQTT_STATE_DIR}|" \
    "$MQTT_CONF_TEMPLATE" > "$MQTT_CONF"
exec mosquitto -c "$MQTT_CONF"
