#!/usr/bin/env python3
"""store_bench.py - the account store's figures, SQLite against
PostgreSQL (issue 16; docs/scale-out.md, docs/performance.md).

    bench/store_bench.py --bin bin [--users 100000]
        [--calls 31]

A private PostgreSQL (tests/integration/helpers.Postgres, with fsync on,
as a real one has), and two roots: one on SQLite, one whose
control/accountdb names that PostgreSQL. On each:
1. `vadmin import` of USERS users (ready SHA-512-crypt hashes) into one
   domain, SQLite first, then PostgreSQL;
2. `vadmin adduser --hash` into that domain, CALLS times on each, the two
   roots taking turns (SQLite, PostgreSQL, SQLite, ...), so that the load
   of the shared machine falls on both alike; median and 90th percentile
   wall time a call, and the ratio of the medians.
Each result is one line `NAME key=value ...`; the load average is printed
beside them (uptime).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import helpers  # noqa: E402

# openssl passwd -6 -salt benchsalt secret
HASH = ("$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe.UNsSK1b2j0LH"
        "SWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1")


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Root:
    def __init__(self, a, tmp, name, accountdb=None):
        self.vadmin = os.path.abspath(os.path.join(a.bin, "vadmin"))
        self.root = os.path.join(tmp, name)
        self.name = name
        subprocess.run([os.path.abspath(os.path.join(a.bin, "facteur")),
                        "init", "--root", self.root, "--dev"], check=True,
                       capture_output=True)
        if accountdb:
            path = os.path.join(self.root, "control", "accountdb")
            with open(path, "w") as f:
                f.write(accountdb + "\n")
            st = os.stat(os.path.join(self.root, "control"))
            os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, 0o600)

    def v(self, *args, inp=None):
        p = subprocess.run([self.vadmin, "--root", self.root, *args],
                           input=inp, capture_output=True, text=True)
        assert p.returncode == 0, f"{self.name}: vadmin {args}: {p.stderr}"
        return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--calls", type=int, default=31)
    a = ap.parse_args()
    # a SIGTERM (timeout, kill) still stops the private PostgreSQL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(111))
    tmp = tempfile.mkdtemp(prefix="facteur-bench-", dir="/var/tmp")
    os.chmod(tmp, 0o755)

    class Ctx:
        pass
    ctx = Ctx()
    ctx.tmp = tmp
    pg = None
    try:
        pg = helpers.Postgres(ctx, fsync=True)
        roots = [Root(a, tmp, "sqlite"),
                 Root(a, tmp, "postgresql", pg.createdb("facteur"))]
        imp = os.path.join(tmp, "import.txt")
        with open(imp, "w") as f:
            for i in range(a.users):
                f.write(f"user{i}@big.test {HASH}\n")
        os.chmod(imp, 0o644)
        for r in roots:
            r.v("adddomain", "big.test", inp="bench-pass\n")
            subprocess.run(["sync"])
            t0 = time.monotonic()
            r.v("import", imp)
            dt = time.monotonic() - t0
            print(f"store_import store={r.name} users={a.users} "
                  f"seconds={dt:.1f} load={load()}", flush=True)
        times = {r.name: [] for r in roots}
        for i in range(a.calls):
            for r in roots:
                t0 = time.monotonic()
                r.v("adduser", f"new{i}@big.test", "--hash", HASH)
                times[r.name].append((time.monotonic() - t0) * 1000)
        med = {}
        for r in roots:
            ts = sorted(times[r.name])
            med[r.name] = statistics.median(ts)
            print(f"store_adduser store={r.name} domain_users={a.users} "
                  f"calls={a.calls} median_ms={med[r.name]:.1f} "
                  f"p90_ms={ts[int(len(ts) * 0.9)]:.1f} load={load()}",
                  flush=True)
        print(f"store_adduser_ratio postgresql/sqlite="
              f"{med['postgresql'] / med['sqlite']:.2f}", flush=True)
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
