#!/usr/bin/env python3
"""vadmin_bench.py - the account manager's figures (issue: foundation).

    bench/vadmin_bench.py --bin bin [--users 100000] [--calls 31]

1. `vadmin import` of USERS users (ready SHA-512-crypt hashes, as a
   migration from vpopmail or Postfix would carry them) into one domain.
2. `vadmin adduser` into that domain, CALLS times each: with --hash, with a
   clear password and the default yescrypt, and with sha512crypt
   (control/passwordscheme); median and 90th percentile wall time a call.
Each result is one line `NAME key=value ...`, as ../shared/bench/ prints.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# openssl passwd -6 -salt benchsalt secret
HASH = ("$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe.UNsSK1b2j0LH"
        "SWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--calls", type=int, default=31)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    vadmin = os.path.abspath(os.path.join(a.bin, "vadmin"))
    facteur = os.path.abspath(os.path.join(a.bin, "facteur"))
    tmp = tempfile.mkdtemp(prefix="facteur-bench-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "root")
    try:
        subprocess.run([facteur, "init", "--root", root, "--dev"],
                       check=True, capture_output=True)

        def v(*args, inp=None):
            return subprocess.run([vadmin, "--root", root, *args],
                                  input=inp, capture_output=True, text=True)

        p = v("adddomain", "big.test", inp="bench-pass\n")
        assert p.returncode == 0, p.stderr
        imp = os.path.join(tmp, "import.txt")
        with open(imp, "w") as f:
            for i in range(a.users):
                f.write(f"user{i}@big.test {HASH}\n")
        subprocess.run(["sync"])
        t0 = time.monotonic()
        p = v("import", imp)
        dt = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        print(f"vadmin_import users={a.users} seconds={dt:.1f} "
              f"users_per_s={a.users / dt:.0f}", flush=True)

        modes = [("hash", ["--hash", HASH], None),
                 ("yescrypt", ["bench-pass"], None),
                 ("sha512crypt", ["bench-pass"], "sha512crypt")]
        for name, extra, scheme in modes:
            scheme_file = os.path.join(root, "control", "passwordscheme")
            if scheme:
                with open(scheme_file, "w") as f:
                    f.write(scheme + "\n")
            times = []
            for i in range(a.calls):
                t0 = time.monotonic()
                p = v("adduser", f"new-{name}-{i}@big.test", *extra)
                times.append((time.monotonic() - t0) * 1000)
                assert p.returncode == 0, p.stderr
            if scheme:
                os.unlink(scheme_file)
            times.sort()
            print(f"vadmin_adduser mode={name} domain_users={a.users} "
                  f"calls={a.calls} median_ms={statistics.median(times):.1f} "
                  f"p90_ms={times[int(len(times) * 0.9)]:.1f}", flush=True)
        p = v("check")
        print(f"vadmin_check ok={int(p.returncode == 0)}", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
