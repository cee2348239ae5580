#!/usr/bin/env python3
"""local_drain - mta-send draining a queue of local mail: the vdeliver
fork server against one exec of vdeliver a delivery.

    python3 bench/local_drain.py --bin build/rel/bin [--msgs 3000]
        [--users 20] [--rounds 3] [--modes exec,server] [--conc 10]
        [--root /var/tmp/facteur-ldrain] [--settle 5]

For each round and each mode, in turn (the modes alternate, and their
order flips each round: A B, B A, A B, ...): a fresh root with --users
mailboxes, --msgs messages of about 1 KB injected
with mta-inject (round robin over the users) while mta-send is stopped,
then mta-send started, timed until every message is in its Maildir's new/
and the queue is empty, then stopped (SIGTERM). Each run has its own root
(ROOT-ROUND-MODE), all removed at the end only: removing ~10,000 files
just before a run would make ext4 skip those recently deleted inodes at
every file the run creates, which costs CPU (recently_deleted() in the
inode allocator) and would tilt the comparison. Mode exec runs mta-send
with FACTEUR_VDELIVER_EXEC=1 (one vdeliver exec a delivery, the old way);
mode server without it (one vdeliver --server, a fork a delivery).

CPU: mta-send's own (utime + stime from /proc just before it is stopped)
and the whole tree's, from wait4(2) on mta-send, which holds everything it
and its descendants that were waited for used: the deliveries, by exec or
forked by the server (which mta-send reaps as it stops). Prints one line
per run, `local_drain mode=.. round=.. msgs_per_s=.. cpu_ms_per_msg=..
send_cpu_ms_per_msg=.. wall_s=..`, then the median of each mode.
"""
import argparse
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
BODY = b"Subject: drain\nFrom: b@example.org\n\n" + b"x" * 72 + b"\n"


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def setup(a, root):
    shutil.rmtree(root, ignore_errors=True)
    run([f"{a.bin}/facteur", "init", "--root", root, "--dev"])
    run([f"{a.bin}/vadmin", "--root", root, "adddomain", "example.test",
         "pw"])
    for i in range(a.users):
        run([f"{a.bin}/vadmin", "--root", root, "adduser",
             f"user{i}@example.test", "pw"])
    with open(f"{root}/control/concurrencylocal", "w") as f:
        f.write(f"{a.conc}\n")
    body = BODY * 12    # about 1 KB

    def inject(j, k):
        for i in range(j, a.msgs, k):
            run([f"{a.bin}/mta-inject", "--root", root, "-f",
                 "b@example.org", f"user{i % a.users}@example.test"],
                input=body)
    th = [threading.Thread(target=inject, args=(j, 4)) for j in range(4)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    n = len(os.listdir(f"{root}/queue/new"))
    if n != a.msgs:
        sys.exit(f"{n} messages in queue/new, want {a.msgs}")


def delivered(root, users):
    return sum(len(os.listdir(f"{root}/domains/example.test/user{i}/"
                              "Maildir/new")) for i in range(users))


def queued(root):
    return glob.glob(f"{root}/queue/new/*") + \
        glob.glob(f"{root}/queue/msg/*/*")


def own_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / TICK     # utime, stime


def drain(a, root, mode):
    env = dict(os.environ)
    env.pop("FACTEUR_VDELIVER_EXEC", None)
    if mode == "exec":
        env["FACTEUR_VDELIVER_EXEC"] = "1"
    log = open(f"{root}/send.log", "wb")
    t0 = time.monotonic()
    p = subprocess.Popen([f"{a.bin}/mta-send", "--root", root],
                         stdout=log, stderr=log, env=env)
    while delivered(root, a.users) < a.msgs or queued(root):
        if p.poll() is not None:
            sys.exit("mta-send died; see " + f"{root}/send.log")
        if time.monotonic() - t0 > 600:
            sys.exit("not drained in 600 s")
        time.sleep(0.02)
    wall = time.monotonic() - t0
    send_cpu = own_cpu(p.pid)
    p.send_signal(signal.SIGTERM)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if p.returncode != 0:
        sys.exit(f"mta-send exit {p.returncode}")
    with open(f"{root}/send.log", "rb") as f:
        text = f.read()
    servers = text.count(b"vdeliver server started")
    if (mode == "server") != (servers == 1):
        sys.exit(f"mode {mode}: {servers} vdeliver servers started")
    total = ru.ru_utime + ru.ru_stime
    return {"msgs_per_s": a.msgs / wall,
            "cpu_ms_per_msg": total * 1000 / a.msgs,
            "send_cpu_ms_per_msg": send_cpu * 1000 / a.msgs,
            "wall_s": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--root", default="/var/tmp/facteur-ldrain")
    ap.add_argument("--msgs", type=int, default=3000)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default="exec,server")
    ap.add_argument("--conc", type=int, default=10)
    ap.add_argument("--settle", type=float, default=5)
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    res, roots = {}, []
    modes = a.modes.split(",")
    for r in range(1, a.rounds + 1):
        for mode in (modes if r % 2 else modes[::-1]):
            root = f"{a.root}-{r}-{mode}"
            roots.append(root)
            setup(a, root)
            os.sync()
            time.sleep(a.settle)
            x = drain(a, root, mode)
            res.setdefault(mode, []).append(x)
            print(f"local_drain mode={mode} round={r} " +
                  " ".join(f"{k}={v:.3f}" for k, v in x.items()),
                  flush=True)
    for mode, xs in res.items():
        print(f"local_drain_median mode={mode} " +
              " ".join(f"{k}={statistics.median(x[k] for x in xs):.3f}"
                       for k in xs[0]), flush=True)
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
