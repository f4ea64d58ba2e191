#!/usr/bin/env bash
# Makes a fresh Debian machine able to run `npm test`, `npm run demo` and `npm run bench`:
# Dovecot (for the private lab in src/lab/dovecot.ts), openssl (its certificates), Chromium
# (headless, for the test that opens the plan's HTML page in a real browser), node_modules
# matching package-lock.json, and a dist/ built from the current src/.
#
# Idempotent and silent when everything is in place, so the npm scripts can call it every
# time; it only speaks when it changes something or cannot. Without root it installs nothing
# and prints the single command to run instead (exit 1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

say() { printf 'ensure-env: %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# /usr/sbin is often missing from a non-root PATH, and dovecot lives there.
have() {
  local p
  for p in "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/usr/bin/$1"; do
    [ -n "$p" ] && [ -f "$p" ] && [ -x "$p" ] && return 0
  done
  return 1
}

apt_updated=0
apt_install() {
  local log
  log="$(mktemp)"
  # A lab needs only the binaries. A policy-rc.d that refuses service starts keeps the
  # package from launching a system Dovecot on ports 110/143 (Docker images ship one; a
  # full Debian does not).
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local ok=0
  # Fresh images have empty package lists; a stale list fails with 404s. Update once, lazily.
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
    apt-get update >>"$log" 2>&1 && apt_updated=1
  fi
  if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1; then
    ok=1
  elif [ "$apt_updated" -eq 0 ] && apt-get update >>"$log" 2>&1; then
    apt_updated=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1 && ok=1
  fi
  if [ "$own_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$ok" -ne 1 ]; then
    cat "$log" >&2
    rm -f "$log"
    say "installing $* failed (apt output above)"
    exit 1
  fi
  rm -f "$log"
}

need_pkgs() {
  local what="$1"
  shift
  if is_root; then
    say "installing $what: $*"
    apt_install "$@"
  else
    say "$what ($*); run:"
    printf "sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s'\n" "$*"
    exit 1
  fi
}

# All missing at once is the fresh-machine case: one apt run, one command to print.
missing=()
have dovecot || missing+=(dovecot-imapd dovecot-pop3d)
have openssl || missing+=(openssl)
have chromium || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  need_pkgs "missing packages" "${missing[@]}"
  have dovecot || { say "dovecot still missing after install"; exit 1; }
  have chromium || { say "chromium still missing after install"; exit 1; }
fi

# Cyrus (src/lab/cyrus.ts) is unpacked, not installed: Debian's cyrus-imapd/-pop3d conflict
# with the imap-server/pop3-server that Dovecot provides, so apt would remove Dovecot. Only
# the libraries they need are installed (no conflicts); `dpkg-deb -x` unpacks the rest, so
# dpkg never registers Cyrus and no service is set up.
CYRUS_ROOT="${POPSYNC_CYRUS_ROOT:-/var/cache/popsync-lab/cyrus}"
cyrus_libs=(libical3 libxapian30 libpcre3)
cyrus_libs_ok() {
  ldconfig -p | grep -q 'libical\.so\.3 ' && ldconfig -p | grep -q 'libxapian\.so\.30 ' && ldconfig -p | grep -q 'libpcreposix\.so\.3 '
}
if [ ! -x "$CYRUS_ROOT/usr/lib/cyrus/bin/master" ] || ! cyrus_libs_ok; then
  if ! is_root; then
    say "Cyrus for the second-server lab; run:"
    printf "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends %s && d=\$(mktemp -d) && chmod 755 \$d && cd \$d && apt-get download cyrus-common cyrus-imapd cyrus-pop3d && mkdir -p %s && for f in *.deb; do dpkg-deb -x \$f %s; done'\n" "${cyrus_libs[*]}" "$CYRUS_ROOT" "$CYRUS_ROOT"
    exit 1
  fi
  cyrus_libs_ok || { say "installing libraries for Cyrus: ${cyrus_libs[*]}"; apt_install "${cyrus_libs[@]}"; }
  if [ ! -x "$CYRUS_ROOT/usr/lib/cyrus/bin/master" ]; then
    say "unpacking Cyrus IMAP/POP3 into $CYRUS_ROOT (beside Dovecot, not installed)"
    tmp="$(mktemp -d)"
    chmod 755 "$tmp" # apt-get download drops to the _apt user
    log="$(mktemp)"
    if ! (cd "$tmp" && apt-get download cyrus-common cyrus-imapd cyrus-pop3d) >"$log" 2>&1; then
      # A stale package list 404s; update once and retry.
      if ! (apt-get update && cd "$tmp" && apt-get download cyrus-common cyrus-imapd cyrus-pop3d) >>"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$tmp" "$log"
        say "downloading Cyrus failed (apt output above)"
        exit 1
      fi
    fi
    rm -f "$log"
    rm -rf "$CYRUS_ROOT.partial"
    mkdir -p "$CYRUS_ROOT.partial"
    for f in "$tmp"/*.deb; do dpkg-deb -x "$f" "$CYRUS_ROOT.partial"; done
    rm -rf "$tmp"
    mv "$CYRUS_ROOT.partial" "$CYRUS_ROOT"
  fi
fi

# npm writes node_modules/.package-lock.json on every install; older than the lock file
# means the dependencies changed since.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  log="$(mktemp)"
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    say "npm ci failed (output above)"
    exit 1
  fi
  rm -f "$log"
fi

# dist/ is rebuilt when anything tsc reads is newer than the last successful build. The
# stamp is ours because tsc only rewrites files whose output changed.
stamp=dist/.ensure-env-built
if [ ! -f "$stamp" ] || [ -n "$(find src tsconfig.json package.json package-lock.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  say "building dist/ (tsc)"
  log="$(mktemp)"
  if ! npm run --silent build >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    say "build failed (tsc output above)"
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
