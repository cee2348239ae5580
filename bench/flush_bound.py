#!/usr/bin/env python3
"""flush_bound.py - what the disk's flushes cost an SMTP session, end to end.

    python3 bench/flush_bound.py --bin BIN --obj OBJ [--rounds 3]
        [--cases 1x1000,20x1000] [--count 2000] [--settle 5]

Run as root, with Debian's postfix (../shared/bench/peers/install.sh). An
experiment for issue 17, not a way to run Facteur: it asks how far the
end-to-end rate is set by the disk's cache flushes, by taking some of them
away with an LD_PRELOAD library (bench/flush_shim.c, built here with cc):

facteur       `facteur run` as it is: per message, the queue file and
              queue/new/ fsynced before the 250, the Maildir file and its
              new/ fsynced before the delivery counts (four flushes).
facteur-dirs  the same with every fsync of a directory skipped (two
              flushes a message: the durability Postfix has, whose
              programs sync their files and no directory).
facteur-none  no fsync or fdatasync at all: the rate of everything else.
postfix       the private Postfix of ../shared/bench/peers/ delivering with
              virtual(8), as bench/smtp_compare.py runs it.

Each case SESSIONSxUSERS: --count messages of 4 KiB, one a connection and
one recipient each, spread over user1..userUSERS by bench/smtp_spread,
timed from the first connection until the last file is in new/
(smtp_compare's e2e_once, with the recipients' new/ emptied before). The
four take turns, in an order that turns round every round; each Facteur
variant is a fresh `facteur run` over the same root. Then the fsync probe
of ../shared/bench/fsync-probe.sh with 1 and 2 writers: the time of one
durable creation (two flushes) with nothing else running.

Prints a result line per run and, per case, the medians and each variant's
ratio to Postfix.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import smtp_compare as sc

VARIANTS = ("facteur", "facteur-dirs", "facteur-none", "postfix")


def build_shim(tmp):
    src = os.path.join(sc.HERE, "flush_shim.c")
    out = os.path.join(tmp, "flush_shim.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror",
                    "-o", out, src, "-ldl"], check=True)
    os.chmod(tmp, 0o755)
    return out


def start_facteur(fac, shim, variant):
    """`facteur run` over fac's root, with the shim for a -dirs or -none
    variant (every program it starts inherits the environment)"""
    env = dict(os.environ)
    if variant != "facteur":
        env["LD_PRELOAD"] = shim
        env["FLUSH_SHIM"] = variant.split("-", 1)[1]
    log = open(os.path.join(fac.root, "log", "run.out"), "ab")
    run = subprocess.Popen([f"{fac.bin}/facteur", "run", "--root", fac.root],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                           env=env)
    sc.wait_port(fac.port)
    return run


def stop(run):
    run.terminate()
    run.wait()


def one(a, fac, pf, shim, variant, sessions, users):
    """(e2e msgs/s, accept msgs/s, ok) of one timed run"""
    if variant == "postfix":
        acc, e2e, _, ok, _ = sc.e2e_once(a, pf.port, os.path.join(
            pf.root, "domains"), sessions, users)
        return e2e, acc, ok
    run = start_facteur(fac, shim, variant)
    try:
        acc, e2e, _, ok, _ = sc.e2e_once(a, fac.port, os.path.join(
            fac.root, "domains"), sessions, users)
    finally:
        stop(run)
    return e2e, acc, ok


def probe(a, tmp):
    """the fsync probe's durable creations a second, 1 and 2 writers"""
    out = {}
    d = os.path.join(tmp, "probe")
    os.mkdir(d)
    for threads in (1, 2):
        time.sleep(a.settle)
        r = subprocess.run([os.path.join(a.shared, "fsync-probe.sh"), d, "10",
                            str(threads)], stdout=subprocess.PIPE, text=True,
                           check=True)
        print(r.stdout.strip(), flush=True)
        out[threads] = float(sc.parse(r.stdout.strip()).get("ops_per_s", 0))
    return out


def summary(a, res, ops):
    med = statistics.median
    for sessions, users in a.cases:
        pf = res[(sessions, users, "postfix")]
        print(f"\n{sessions}x{users}: median e2e msgs/s [accept]; ratio to "
              "Postfix per round (median)", flush=True)
        for v in VARIANTS:
            rows = res[(sessions, users, v)]
            line = (f"  {v:13} {med([r[0] for r in rows]):6.0f} "
                    f"[{med([r[1] for r in rows]):.0f}]")
            if v != "postfix":
                rat = [r[0] / p[0] if p[0] else 0 for r, p in zip(rows, pf)]
                line += (f"; {' / '.join(f'{x:.2f}' for x in rat)} "
                         f"({med(rat):.2f})")
            print(line, flush=True)
    if ops.get(1):
        print(f"\nfsync probe: {ops[1]:.0f} durable creations/s with one "
              f"writer ({1000 / ops[1]:.3f} ms each, two flushes), "
              f"{ops.get(2, 0):.0f} with two", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--obj", help="holds bench/smtp_spread (default: --bin/..)")
    ap.add_argument("--shared", default=sc.SHARED)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="1x1000,20x1000")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=5)
    a = ap.parse_args()
    a.e2e_count = a.count
    a.cases = [tuple(int(x) for x in c.split("x")) for c in a.cases.split(",")]
    tmp = sc.profile_setup(a, "flush_bound", "postconf", "postfix")
    shim = build_shim(tmp)
    fac = sc.Facteur(argparse.Namespace(bin=a.bin), tmp)
    for k in ("listen.pop3", "listen.pop3s"):
        fac.ctl(k, f"127.0.0.1:{sc.free_port()}")
    pf = sc.Postfix(a, tmp)
    pf.start()
    res = {}
    try:
        for rnd in range(1, a.rounds + 1):
            for sessions, users in a.cases:
                order = VARIANTS if rnd % 2 else VARIANTS[::-1]
                for v in order:
                    load = os.getloadavg()[0]
                    e2e, acc, ok = one(a, fac, pf, shim, v, sessions, users)
                    print(f"flush_bound server={v} round={rnd} sessions={sessions} "
                          f"users={users} msgs_per_s={e2e:.1f} "
                          f"accept_msgs_per_s={acc:.1f} ok={int(ok)} "
                          f"load1={load:.2f}", flush=True)
                    res.setdefault((sessions, users, v), []).append(
                        (e2e if ok else 0.0, acc))
        ops = probe(a, tmp)
    finally:
        pf.empty()
        pf.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary(a, res, ops)


if __name__ == "__main__":
    sys.exit(main())
