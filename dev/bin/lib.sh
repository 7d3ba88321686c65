# Shared by the dev/bin entry points: where things are, and the two bootstrap steps every
# command needs on a fresh machine (npm packages, Debian packages).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$ROOT/node_modules/.bin:$PATH"
export DENO_DIR="${DENO_DIR:-$ROOT/.stack/deno}"
export DENO_NO_UPDATE_CHECK=1

# Debian packages the stack runs on. Kept in one list so the message for a non-root user and the
# install itself can never disagree.
SYSTEM_PACKAGES=(postgresql-15 postgresql-contrib postgresql-15-cron postgresql-15-pgtap postgresql-server-dev-15
  libtap-parser-sourcehandler-pgtap-perl redis-server mosquitto mosquitto-clients mosquitto-dev
  libmosquitto-dev clamav-daemon libjwt-dev libcjson-dev libcurl4-openssl-dev libpq-dev build-essential pkg-config
  chromium pgbouncer)

# Debian packages only `npm run test:images` needs: it builds the deployables' images for real with
# podman (runc as its runtime) on base images it makes with debootstrap. Kept apart so `npm start`
# stays lean.
IMAGE_PACKAGES=(podman runc debootstrap debian-archive-keyring)

log() { printf '{"ts":"%s","level":"info","component":"bootstrap","msg":"%s"}\n' "$(date -u +%FT%TZ)" "$*" >&2; }

ensure_npm_packages() {
  # Reinstall when package-lock.json is newer than the last install, so a pull that changes
  # dependencies is picked up without a manual step.
  local stamp="$ROOT/node_modules/.package-lock.json"
  if [ ! -x "$ROOT/node_modules/.bin/node" ] || [ ! -f "$stamp" ] || [ "$ROOT/package-lock.json" -nt "$stamp" ]; then
    # `npm ci`: exactly what the lock file says, and the lock is never rewritten, so a fresh clone
    # stays clean. The lock keeps every platform's optional binaries (deno, supabase CLI); a lock
    # that lacks them or disagrees with package.json fails here, loudly, instead of drifting.
    log "installing npm packages from package-lock.json"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed: package-lock.json does not match package.json (run npm install and commit the lock)" >&2; exit 1; }
  fi
}

ensure_system_packages() {
  local missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  # The server's headers at the server's own version: a newer one would upgrade postgresql-15 under
  # a running cluster, whose backends then fail to load the new plpgsql.so (undefined symbols).
  local server
  server="$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)"
  if [ -n "$server" ]; then missing=("${missing[@]/#postgresql-server-dev-15/postgresql-server-dev-15=$server}"); fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install failed for: ${missing[*]}" >&2; exit 1; }
  # Debian starts its own redis, mosquitto, clamav and pgbouncer services on install. They are not ours and
  # listen on default ports only, but stop them so nothing surprises a developer.
  for s in redis-server mosquitto clamav-daemon clamav-freshclam postgresql pgbouncer; do
    command -v systemctl >/dev/null && systemctl stop "$s" >/dev/null 2>&1 || true
    service "$s" stop >/dev/null 2>&1 || true
  done
}

ensure_image_packages() {
  local missing=()
  for p in "${IMAGE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages for the image builds. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  log "installing Debian packages for the image builds: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # (without recommends: podman's would add rootless and desktop helpers these builds never use)
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install failed for: ${missing[*]}" >&2; exit 1; }
}
