#!/bin/sh
# run.sh BINDIR RUNROOT - `make run`: make RUNROOT with `facteur init --dev`
# the first time, then run every service in the foreground.
#
# As root, the services run as the mail user, which must reach the programs
# and the root. A clone in a directory closed to other users (root's 0700
# home, a Debian 12 user's home) is out of its reach: then the programs are
# copied to /var/lib/facteur-dev/ID/bin, the root is made there, and
# RUNROOT becomes a link to it, so that `bin/vadmin --root run-root` (run
# as root, which follows the link before dropping) finds it.
set -eu
bin=$1
root=$2

# reachable PATH - every directory up to / lets others through
reachable() {
    d=$1
    while :; do
        [ "$(( $(stat -c %#a "$d") & 1 ))" = 1 ] || return 1
        [ "$d" = / ] && return 0
        d=$(dirname "$d")
    done
}

case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
if [ "$(id -u)" = 0 ] && ! reachable "$bin"; then
    id=$(printf %s "$PWD" | sha256sum | cut -c1-16)
    home=/var/lib/facteur-dev/$id
    install -d -m 0755 /var/lib/facteur-dev "$home"
    rm -rf "$home/bin.new"
    cp -a "$bin" "$home/bin.new"
    chmod 0755 "$home/bin.new"
    rm -rf "$home/bin"
    mv "$home/bin.new" "$home/bin"
    if [ ! -e "$root" ] && [ ! -L "$root" ]; then
        ln -s "$home/root" "$root"
    elif [ ! -L "$root" ]; then
        echo "make run: $root is out of the mail user's reach; remove it" \
             "(a root is made in $home/root)" >&2
        exit 1
    fi
    echo "make run: $(dirname "$bin") is closed to other users: the" \
         "programs run from $home/bin, the root is $home/root" \
         "($root links to it)" >&2
    bin=$home/bin
    root=$home/root
fi
[ -d "$root/control" ] || "$bin/facteur" init --root "$root" --dev
exec "$bin/facteur" run --root "$root"
