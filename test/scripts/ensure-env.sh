#!/usr/bin/env bash
# Makes a fresh Debian machine able to run `npm test`, `npm run demo` and `npm run bench`:
# Dovecot (for the private lab in lab/dovecot.ts), openssl (its certificates), Chromium
# (headless, for the test that opens the plan's HTML page in a real browser), zsh and fish
# (whose completion scripts a test runs in the real shells), node_modules
# matching package-lock.json, and a dist/ (and its bundle) built from the current src/.
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
    printf "sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive %s %s'\n" \
      "apt-get install -y --no-install-recommends" "$*"
    exit 1
  fi
}

# All missing at once is the fresh-machine case: one apt run, one command to print.
missing=()
have dovecot || missing+=(dovecot-imapd dovecot-pop3d)
have openssl || missing+=(openssl)
have chromium || missing+=(chromium)
# The shells whose completion scripts test/e2e/completion.test.ts runs (bash is always there).
have zsh || missing+=(zsh)
have fish || missing+=(fish)
if [ "${#missing[@]}" -gt 0 ]; then
  need_pkgs "missing packages" "${missing[@]}"
  for tool in dovecot chromium zsh fish; do
    have "$tool" || { say "$tool still missing after install"; exit 1; }
  done
fi

# Cyrus (lab/cyrus.ts) and Courier (lab/courier.ts) are unpacked, not installed:
# Debian's cyrus-imapd/-pop3d and courier-imap/-pop conflict with the imap-server/pop3-server
# that Dovecot provides, so apt would remove Dovecot. Only the libraries they need are
# installed (no conflicts); `dpkg-deb -x` unpacks the rest, so dpkg never registers them and
# no service is set up.
#   unpack_beside NAME ROOT CHECK_BINARY "LIB_SONAMES" "LIB_PACKAGES" "PACKAGES"
unpack_beside() {
  local name="$1" root="$2" check="$3" sonames="$4" libs="$5" pkgs="$6" so libs_ok=1 cache
  # Read once: with pipefail, `ldconfig -p | grep -q` fails when grep stops reading early.
  cache="$(ldconfig -p)"
  for so in $sonames; do grep -qF "$so (" <<<"$cache" || libs_ok=0; done
  [ -x "$root/$check" ] && [ "$libs_ok" -eq 1 ] && return 0
  if ! is_root; then
    say "$name for the other-servers lab; run:"
    printf "sudo sh -c '%s %s && %s && %s %s && %s %s && %s %s; done'\n" \
      "apt-get update && apt-get install -y --no-install-recommends" "$libs" \
      "d=\$(mktemp -d) && chmod 755 \$d && cd \$d" \
      "apt-get download" "$pkgs" \
      "mkdir -p" "$root" \
      "for f in *.deb; do dpkg-deb -x \$f" "$root"
    exit 1
  fi
  # shellcheck disable=SC2086
  [ "$libs_ok" -eq 1 ] || { say "installing libraries for $name: $libs"; apt_install $libs; }
  [ -x "$root/$check" ] && return 0
  say "unpacking $name into $root (beside Dovecot, not installed)"
  local tmp log f
  tmp="$(mktemp -d)"
  chmod 755 "$tmp" # apt-get download drops to the _apt user
  log="$(mktemp)"
  # shellcheck disable=SC2086
  if ! (cd "$tmp" && apt-get download $pkgs) >"$log" 2>&1; then
    # A stale package list 404s; update once and retry.
    # shellcheck disable=SC2086
    if ! (apt-get update && cd "$tmp" && apt-get download $pkgs) >>"$log" 2>&1; then
      cat "$log" >&2
      rm -rf "$tmp" "$log"
      say "downloading $name failed (apt output above)"
      exit 1
    fi
  fi
  rm -f "$log"
  rm -rf "$root.partial"
  mkdir -p "$root.partial"
  for f in "$tmp"/*.deb; do dpkg-deb -x "$f" "$root.partial"; done
  rm -rf "$tmp"
  mv "$root.partial" "$root"
}
unpack_beside Cyrus "${POPSYNC_CYRUS_ROOT:-/var/cache/popsync-lab/cyrus}" usr/lib/cyrus/bin/master \
  "libical.so.3 libxapian.so.30 libpcreposix.so.3" "libical3 libxapian30 libpcre3" \
  "cyrus-common cyrus-imapd cyrus-pop3d"
unpack_beside Courier "${POPSYNC_COURIER_ROOT:-/var/cache/popsync-lab/courier}" usr/bin/imapd \
  "libidn.so.12 libfam.so.0" "libidn12 libgamin0" \
  "courier-imap courier-pop courier-base courier-authlib libcourier-unicode4"

# npm writes node_modules/.package-lock.json on every install; older than the lock file
# means the dependencies may have changed since, and lock-installed.mjs compares the two.
if [ ! -f node_modules/.package-lock.json ] || {
  [ package-lock.json -nt node_modules/.package-lock.json ] && ! node test/scripts/lock-installed.mjs
}; then
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

# dist/ (tsc), dist/bundle/ (what bin/popsync.js runs) and dist/test-bundle/ (what the tests'
# hooked launcher runs; both by lab/bundle.ts) are rebuilt when anything they read is newer than
# the last successful build, or a bundle is missing (a dist/ built before there was one). The
# stamp is ours because tsc only rewrites files whose output changed.
stamp=dist/.ensure-env-built
newer="$(find src lab/bundle.ts lab/commonjs-chunks.ts lab/defer-requires.ts lab/require-builtins.ts \
  lab/sqlite-bundled.ts test/support/hooked-program.ts tsconfig.json package.json \
  package-lock.json -newer "$stamp" -print -quit 2>/dev/null || true)"
if [ ! -f "$stamp" ] || [ ! -f dist/bundle/popsync.cjs ] || [ ! -f dist/test-bundle/hooked-program.js ] ||
  [ -n "$newer" ]; then
  say "building dist/ (tsc, then the bundles)"
  log="$(mktemp)"
  if ! npm run --silent build >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    say "build failed (output above)"
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
