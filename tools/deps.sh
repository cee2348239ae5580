#!/bin/sh
# deps.sh - make sure the Debian packages Facteur builds with are present.
# Installs them with apt-get when run as root, otherwise prints the one
# command to run and fails, so `make` stops with an actionable message.
set -u
missing=""
need() { # need HEADER-OR-COMMAND PACKAGE
    case "$1" in
    /*) [ -e "$1" ] || missing="$missing $2" ;;
    *) command -v "$1" >/dev/null 2>&1 || missing="$missing $2" ;;
    esac
}
need /usr/include/sqlite3.h libsqlite3-dev
need /usr/include/crypt.h libcrypt-dev
need /usr/include/cdb.h libcdb-dev
need /usr/include/openssl/ssl.h libssl-dev
need /usr/include/ares.h libc-ares-dev
need pkg-config pkg-config
need cc gcc
need python3 python3
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2 && exit 0
    echo "deps: apt-get failed; run: apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: missing packages; run as root: apt-get install -y$missing" >&2
exit 1
