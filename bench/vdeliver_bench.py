#!/usr/bin/env python3
"""vdeliver_bench.py - deliveries per second of vdeliver (issue 3).

    bench/vdeliver_bench.py --bin bin [--users 100000] [--msgs 2000]
                            [--conc 1,8] [--size 4096] [--repeat 3] [--keep]

A 4 KiB message is delivered by running vdeliver once per message, as the
queue and Postfix's pipe(8) run it, into existing Maildirs, with CONC
deliveries at a time, and the rate is MSGS / wall time. Standard input is
a regular file (what qmail and the queue hand over). Every delivery does
what a durable one must: fsync of the file and of new/. Each setting is
measured REPEAT times, the settings taking turns, and the line gives the
median and the range (the disk is shared and noisy).

Runs, each printed as one line `vdeliver_rate conc=.. users=.. ...`:
1. 10 users in the tables, messages spread over them;
2. the same with a quota on every mailbox (maildirsize kept);
3. USERS users in the tables (made with `vadmin import` of ready
   SHA-512-crypt hashes), messages to the same 10 users as in 1
   (rcpts=10): the same Maildirs, only the tables are bigger, so this
   shows whether the cost grows with the size of the tables;
4. the same tables, messages to users picked at random among all
   (rcpts=random): every delivery goes to another directory.
The peers (Postfix's virtual, dovecot-lda) are measured with the scripts
of ../shared/bench/ by whoever compares; this script does not run them.
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# openssl passwd -6 -salt benchsalt secret
HASH = ("$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe.UNsSK1b2j0LH"
        "SWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1")


def message(size):
    head = (b"From: bench <bench@remote.example>\n"
            b"To: someone\nSubject: vdeliver bench\n"
            b"Message-ID: <bench@remote.example>\n\n")
    line = b"x" * 71 + b"\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[:size - 1] + b"\n"


def deliver_all(vdeliver, root, msgfile, rcpts, conc):
    """Deliver one message to each address of rcpts, conc at a time;
    returns (seconds, failures)."""
    env = {"PATH": "/usr/bin:/bin"}
    lock = threading.Lock()
    it = iter(rcpts)
    fails = []

    def worker():
        while True:
            with lock:
                rcpt = next(it, None)
            if rcpt is None:
                return
            with open(msgfile, "rb") as f:
                p = subprocess.run([vdeliver, "--root", root, "-f",
                                    "bench@remote.example", rcpt], stdin=f,
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=env)
            if p.returncode != 0:
                fails.append(p.stderr.decode(errors="replace").strip())
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - t0, fails


def clean_new(root, domain):
    """Empty every new/ of the domain (untimed), so that runs compare."""
    top = os.path.join(root, "domains", domain)
    for user in os.listdir(top):
        new = os.path.join(top, user, "Maildir", "new")
        try:
            names = os.listdir(new)
        except OSError:
            continue
        for n in names:
            os.unlink(os.path.join(new, n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--msgs", type=int, default=2000)
    ap.add_argument("--conc", default="1,8")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    vadmin = os.path.abspath(os.path.join(a.bin, "vadmin"))
    facteur = os.path.abspath(os.path.join(a.bin, "facteur"))
    vdeliver = os.path.abspath(os.path.join(a.bin, "vdeliver"))
    concs = [int(c) for c in a.conc.split(",")]
    tmp = tempfile.mkdtemp(prefix="facteur-vdbench-", dir=a.dir)
    os.chmod(tmp, 0o755)
    msgfile = os.path.join(tmp, "msg")
    with open(msgfile, "wb") as f:
        f.write(message(a.size))
    os.chmod(msgfile, 0o644)
    rc = 0
    try:
        roots = []
        for k, (users, quota) in enumerate(((10, None), (10, "1G"),
                                            (a.users, None))):
            root = os.path.join(tmp, f"root{k}")
            subprocess.run([facteur, "init", "--root", root, "--dev"],
                           check=True, capture_output=True)
            p = subprocess.run([vadmin, "--root", root, "adddomain",
                                "bench.test"], input="bench-pass\n",
                               capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
            imp = os.path.join(tmp, "import.txt")
            with open(imp, "w") as f:
                for i in range(users):
                    f.write(f"user{i}@bench.test {HASH}"
                            f"{' ' + quota if quota else ''}\n")
            t0 = time.monotonic()
            p = subprocess.run([vadmin, "--root", root, "import", imp],
                               capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
            os.unlink(imp)
            if users > 10:
                print(f"vdeliver_setup users={users} import_s="
                      f"{time.monotonic() - t0:.1f}", flush=True)
            roots.append((root, users, quota))
        rnd = random.Random(1)
        rates = {}
        runs = [(root, users, quota, "10") for root, users, quota in roots]
        runs.append(roots[-1] + ("random",))
        for rep in range(a.repeat):
            for conc in concs:
                for root, users, quota, mode in runs:
                    if mode == "10":
                        rcpts = [f"user{i % 10}@bench.test"
                                 for i in range(a.msgs)]
                    else:
                        rcpts = [f"user{rnd.randrange(users)}@bench.test"
                                 for _ in range(a.msgs)]
                    # warm the caches and the tables: 1 in 10, untimed
                    deliver_all(vdeliver, root, msgfile,
                                rcpts[:a.msgs // 10], conc)
                    clean_new(root, "bench.test")
                    subprocess.run(["sync"])
                    dt, fails = deliver_all(vdeliver, root, msgfile, rcpts,
                                            conc)
                    if fails:
                        print(f"vdeliver_fail {fails[0]}", flush=True)
                        rc = 1
                    rates.setdefault((conc, users, quota, mode),
                                     []).append(a.msgs / dt)
                    clean_new(root, "bench.test")
        for (conc, users, quota, mode), r in rates.items():
            r.sort()
            print(f"vdeliver_rate conc={conc} users={users} rcpts={mode} "
                  f"quota={quota or 'none'} size={a.size} msgs={a.msgs} "
                  f"runs={len(r)} msgs_per_s={statistics.median(r):.0f} "
                  f"min={r[0]:.0f} max={r[-1]:.0f} ok={int(rc == 0)}",
                  flush=True)
    finally:
        if not a.keep:
            # rm is several times faster than rmtree on millions of dirs
            if subprocess.run(["rm", "-rf", tmp]).returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
