#!/usr/bin/env python3
"""lda_compare.py - vdeliver against dovecot-lda, side by side in one run.

    bench/lda_compare.py --bin bin --dovecot-conf BENCH_ROOT/dovecot/dovecot.conf
                         [--msgs 1000] [--conc 1,8] [--repeat 2]

Both agents are run once per 4 KiB message, stdin a regular file, into
existing Maildirs of 10 users (user1..user10@example.test), CONC at a time;
the settings take turns. dovecot-lda is the bench Dovecot of
../shared/bench/peers/dovecot-setup.sh (which must be running: the LDA asks
its auth service for the user); vdeliver gets a scratch Facteur root.
Prints `lda_rate agent=.. conc=.. msgs_per_s=..` lines.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def run_many(argvs, msgfile, conc):
    it = iter(argvs)
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                argv = next(it, None)
            if argv is None:
                return
            with open(msgfile, "rb") as f:
                p = subprocess.run(argv, stdin=f, capture_output=True)
            if p.returncode != 0:
                errors.append(p.stderr[-300:])

    t0 = time.monotonic()
    th = [threading.Thread(target=worker) for _ in range(conc)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    return time.monotonic() - t0, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--dovecot-conf", required=True)
    ap.add_argument("--msgs", type=int, default=1000)
    ap.add_argument("--conc", default="1,8")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    bindir = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="facteur-lda.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "root")
    msgfile = os.path.join(tmp, "msg")
    body = b"x" * 70 + b"\n"
    with open(msgfile, "wb") as f:
        f.write(b"From: a@b.test\nTo: c@d.test\nSubject: bench\n\n")
        while f.tell() < 4096:
            f.write(body)
    os.chmod(msgfile, 0o644)
    subprocess.run([f"{bindir}/facteur", "init", "--root", root, "--dev"],
                   check=True, capture_output=True)
    subprocess.run([f"{bindir}/vadmin", "--root", root, "adddomain",
                    "example.test"], input=b"pw\n", check=True)
    for i in range(1, 11):
        subprocess.run([f"{bindir}/vadmin", "--root", root, "adduser",
                        f"user{i}@example.test", "--hash",
                        "$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe"
                        ".UNsSK1b2j0LHSWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1"],
                       check=True)
    lda = shutil.which("dovecot-lda") or "/usr/lib/dovecot/dovecot-lda"
    results = {}
    try:
        for r in range(a.repeat):
            for conc in [int(c) for c in a.conc.split(",")]:
                for agent in ("vdeliver", "dovecot-lda"):
                    if agent == "vdeliver":
                        argvs = [[f"{bindir}/vdeliver", "--root", root, "-f",
                                  "a@b.test", f"user{i % 10 + 1}@example.test"]
                                 for i in range(a.msgs)]
                    else:
                        argvs = [[lda, "-c", a.dovecot_conf, "-f", "a@b.test",
                                  "-d", f"user{i % 10 + 1}@example.test"]
                                 for i in range(a.msgs)]
                    time.sleep(5)
                    wall, errs = run_many(argvs, msgfile, conc)
                    rate = a.msgs / wall
                    results.setdefault((agent, conc), []).append(rate)
                    print(f"lda_rate agent={agent} conc={conc} run={r + 1} "
                          f"msgs={a.msgs} msgs_per_s={rate:.0f} "
                          f"errors={len(errs)}", flush=True)
                    if errs:
                        print("# " + errs[0].decode(errors="replace"),
                              flush=True)
        for (agent, conc), v in sorted(results.items()):
            print(f"lda_median agent={agent} conc={conc} "
                  f"msgs_per_s={statistics.median(v):.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
