#!/usr/bin/env bash
# Unpack rsyslog and syslog-ng (with their TLS and HTTP modules) from Debian's packages into
# .cache/debian/root for tests/sources/test_syslog_daemons.py.
#
# The two daemons both provide system-log-daemon and cannot be installed side by side, and the
# tests need neither installed: they run each binary unprivileged with a private configuration.
# So the packages (and those of their libraries this machine lacks) are only downloaded and
# extracted with `dpkg -x`. Idempotent: exits at once when the same set is already unpacked.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${KEELWATCH_DEBIAN_CACHE:-$root/.cache/debian}"
packages=(rsyslog rsyslog-gnutls syslog-ng-core syslog-ng-mod-http)
stamp="$cache/syslog-daemons.done"

if [[ -f "$stamp" && "$(cat "$stamp")" == "${packages[*]}" ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    echo "syslog-daemons: apt-get and dpkg are needed (Debian/Ubuntu); daemon tests will skip" >&2
    exit 0
fi

# Read the package lists only when they do not know the packages yet.
if ! apt-cache show "${packages[@]}" >/dev/null 2>&1; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "syslog-daemons: run 'apt-get update' as root first" >&2
        exit 1
    fi
    apt-get update -qq
fi

# Each daemon with the packages apt would add for it on this machine (apt picks among
# alternatives; asked one daemon at a time because the two conflict).
wanted=()
for group in "rsyslog rsyslog-gnutls" "syslog-ng-core syslog-ng-mod-http"; do
    # shellcheck disable=SC2086 # the group is a list of names
    while read -r _ name _; do
        wanted+=("$name")
    done < <(apt-get -s install --no-install-recommends $group 2>/dev/null | grep '^Inst ')
done
for package in "${packages[@]}"; do  # the daemons themselves even if installed system-wide
    [[ " ${wanted[*]} " == *" $package "* ]] || wanted+=("$package")
done

downloads="$cache/debs"
rm -rf "$downloads" "$cache/root"
mkdir -p "$downloads" "$cache/root"
(cd "$downloads" && apt-get download -qq "${wanted[@]}" 2>&1 | grep -v -i 'unsandboxed' || true)
for deb in "$downloads"/*.deb; do
    dpkg -x "$deb" "$cache/root"
done
for binary in usr/sbin/rsyslogd usr/sbin/syslog-ng; do
    if [[ ! -x "$cache/root/$binary" ]]; then
        echo "syslog-daemons: $binary is missing after unpacking" >&2
        exit 1
    fi
done
echo "${packages[*]}" >"$stamp"
echo "syslog-daemons: unpacked ${#wanted[@]} packages into $cache/root"
