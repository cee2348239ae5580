#!/usr/bin/env python3
"""run.py - `make bench`: every benchmark of Facteur's own, one line each.

The SMTP and POP3 comparisons with Postfix and Dovecot use the scripts of
../shared/bench/ once the services exist; see docs/performance.md.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--obj", default="build/rel")
    ap.add_argument("--users", type=int, default=100000)
    a = ap.parse_args()
    rc = 0
    lookup = os.path.join(a.obj, "bench", "cdb_lookup")
    relay = os.path.join(a.obj, "bench", "relay_decide")
    dkim = os.path.join(a.obj, "bench", "dkim_sign")
    for cmd in ([lookup, "1000000", "200000"], [relay, "10000"],
                [dkim, "2000", "4096"], [dkim, "200", "1048576"],
                [sys.executable, os.path.join(HERE, "vadmin_bench.py"),
                 "--bin", a.bin, "--users", str(a.users)],
                [sys.executable, os.path.join(HERE, "vdeliver_bench.py"),
                 "--bin", a.bin, "--users", str(a.users)]):
        rc |= subprocess.run(cmd).returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
