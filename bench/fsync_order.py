#!/usr/bin/env python3
"""fsync_order.py - does renaming a file into place before its fsync make
the directory's fsync cheaper?

    python3 bench/fsync_order.py [DIR] [-n 500] [--rounds 3]

In DIR (default /var/tmp, the bench roots' disk), -n durable creations of
a 4 KiB file in each order, taking turns: today's (write, fsync the file,
rename tmp/ -> new/, fsync new/) and renamed first (write, rename, fsync
the file, fsync new/), where the file's fsync could commit the journal
that holds the rename. Prints creations a second per order and round.
"""
import argparse
import os
import shutil
import tempfile
import time

BUF = b"x" * 4096


def run(d, n, first):
    t = time.monotonic()
    for i in range(n):
        p, q = f"{d}/tmp/{i}", f"{d}/new/{i}"
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.write(fd, BUF)
        if first:
            os.rename(p, q)
            os.fsync(fd)
        else:
            os.fsync(fd)
            os.rename(p, q)
        dfd = os.open(f"{d}/new", os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        os.close(dfd)
        os.close(fd)
    return n / (time.monotonic() - t)


def fresh(base):
    d = tempfile.mkdtemp(prefix="fsync-order.", dir=base)
    os.mkdir(f"{d}/tmp")
    os.mkdir(f"{d}/new")
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default="/var/tmp")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for r in range(a.rounds):
        got = []
        for first in (False, True):
            d = fresh(a.dir)
            try:
                got.append(run(d, a.n, first))
            finally:
                shutil.rmtree(d, ignore_errors=True)
        print(f"round {r + 1}: fsync-then-rename {got[0]:.0f}/s "
              f"rename-then-fsync {got[1]:.0f}/s")


if __name__ == "__main__":
    main()
