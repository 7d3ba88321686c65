#!/bin/sh
# Fills in broker/mosquitto.conf's placeholders for the container, then runs Mosquitto in the
# foreground as the (non-root) container user. Secrets stay in the environment, where the plugin
# reads them; they are never written into the config.
set -eu
: "${MQTT_AUTH_DB_URL:?set MQTT_AUTH_DB_URL (postgres URL of the role mqtt_broker)}"
if [ -z "${MQTT_AUTH_JWT_SECRET:-}" ] && [ -z "${MQTT_AUTH_JWT_PUBLIC_KEY_FILE:-}" ]; then
  echo "set MQTT_AUTH_JWT_SECRET or MQTT_AUTH_JWT_PUBLIC_KEY_FILE" >&2
  exit 1
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
