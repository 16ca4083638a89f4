# Sourced by the install_*_deps.sh scripts (which run under set -e, so a failed apt-get stops them).
# ensure_apt_packages "PKG ..." "HINT" REQUIRED installs the listed Debian packages that are missing
# (apt-get update first, no recommends; sudo when not root). Without apt-get it prints HINT (what
# to install by hand) and exits 1 if REQUIRED is "required", else carries on.
ensure_apt_packages() {
  local packages="$1" hint="$2" required="${3:-}" missing="" p SUDO=""
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "! apt-get not found: $hint" >&2
    if [ "$required" = required ]; then exit 1; fi
    return 0
  fi
  for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -z "$missing" ]; then
    echo "= apt packages already installed: $packages"
    return 0
  fi
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "+ apt-get update"; $SUDO apt-get update
  echo "+ apt-get install -y --no-install-recommends$missing"
  # shellcheck disable=SC2086  # the list is split on purpose
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
}
