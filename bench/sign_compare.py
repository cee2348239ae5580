#!/usr/bin/env python3
"""sign_compare.py - submission with dual DKIM signing: Facteur against Postfix + OpenDKIM.

    python3 bench/sign_compare.py --bin BINDIR
        [--obj O] [--rounds 3] [--settle 5] [-m 2000,500] [--sessions 20,1]
        [--out FILE] [--keep]

Run as root (mta-smtpd and Postfix bind as root and drop privileges), with
Debian's postfix (../shared/bench/peers/install.sh) and opendkim
(tools/deps.sh test) installed. Issue 13's figure: the SMTP accept rate
of mail that is signed twice (RSA-2048 and Ed25519) as it is queued, side
by side with Postfix signing through OpenDKIM's milter, on the same
messages in one run, and the CPU that signing costs a message.

facteur-signed    A scratch Facteur root as smtp_compare.py makes it (its
                  Facteur class: example.test, user1..user1000, mta-smtpd
                  alone, no scheduler) with two keys for example.test
                  (`vadmin dkim add` --type rsa, then --type ed25519).
                  127.0.0.1 is a relay client (init's relayrules), so
                  lib/qsign signs every message whose From: is in
                  example.test, with both keys, before the 250.
facteur-unsigned  The same server and messages, From: bench@unkeyed.test
                  (no key: lib/qsign signs nothing): the difference in
                  CPU a message is what signing costs in place.
postfix-opendkim  A private Postfix from ../shared/bench/peers/
                  (smtp_compare's Postfix class: postfix-setup.sh on its
                  own BENCH_ROOT and loopback port, stopped by PID) in
                  smtp_compare's "hold" setting (cleanup writes and fsyncs
                  each message into the hold queue, the counterpart of
                  Facteur's queue/new), with two private opendkim milters
                  (tests/integration/helpers.py's OpenDKIMd: one signs
                  rsa-sha256 and one ed25519-sha256, as one opendkim uses
                  one algorithm for every key) with Facteur's own two key
                  files, relaxed/relaxed as ours, From: oversigned as ours;
                  smtpd_milters names both. Its CPU is Postfix's (master
                  and every child, live and reaped: smtp_compare.tree_cpu)
                  plus both opendkim processes'.
postfix-opendkim-unix  The same with the two opendkim on Unix sockets
                  (Socket local:, as Debian's own opendkim.conf has it):
                  over loopback TCP, libmilter answers the end of a message
                  with two small writes (the signature field, then
                  "accept"), and the second waits for the MTA's delayed ACK
                  (about 40 ms, Nagle's algorithm; strace of opendkim shows
                  it), a wait per milter and message that a Unix socket
                  does not have. Both are measured: the inet one is what
                  the issue names, the unix one the stronger peer.
postfix-plain     The same Postfix with smtpd_milters empty: what OpenDKIM
                  adds to Postfix.

Before timing, one message each way is read back and checked with dkimpy
(the records of `vadmin dkim show --json`): facteur-signed from
queue/new, Postfix delivering (virtual(8), before the hold setting) from
the Maildir; each must carry two signatures, rsa-sha256 and
ed25519-sha256, both passing; facteur-unsigned none. The run stops if
not. Then ROUNDS rounds; in each, for every session count, the five take
turns (the order flips every round), each after --settle seconds of
quiet: smtp-source (../shared/bench/smtp_accept.py) sends -m messages
(2000 at -s 20, 500 at -s 1: the inet peer takes 40 s a 500) of
4096 bytes, From: and MAIL FROM bench@example.test (bench@unkeyed.test
for facteur-unsigned) to user1@example.test, one connection a message.
Every result line carries the 1-minute load average. With --obj, first
OBJ/bench/dkim_sign (make bench builds it) gives the signing cost alone,
a message, for each key type. Ends with medians, the ratio Facteur
signed / Postfix + OpenDKIM per round (the goal: 2 or more), the signing
CPU a message (signed - unsigned) and OpenDKIM's (opendkim - plain).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_compare as sc  # noqa: E402  (Facteur, Postfix, tree_cpu, ...)

# the tests' OpenDKIM milter, queue reader and dkimpy check
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from helpers import OpenDKIMd, read_queue_file  # noqa: E402
from test_dkim_sign import dkimpy_ok, signatures, tags  # noqa: E402

DOMAIN = "example.test"
RCPT = "user1@example.test"
SENDER = {"facteur-signed": "bench@example.test",
          "facteur-unsigned": "bench@unkeyed.test",
          "postfix-opendkim": "bench@example.test",
          "postfix-opendkim-unix": "bench@example.test",
          "postfix-plain": "bench@example.test"}
SERVERS = list(SENDER)


def load1():
    return f"{os.getloadavg()[0]:.2f}"


def vadmin(fac, *args):
    return subprocess.run([f"{fac.bin}/vadmin", "--root", fac.root, *args],
                          check=True, capture_output=True).stdout


def add_keys(fac):
    """both keys for example.test: {selector: (type, key file)} and the
    DNS records {name: txt} that dkimpy is given"""
    for ty in ("rsa", "ed25519"):
        vadmin(fac, "dkim", "add", DOMAIN, "--type", ty)
    keys, recs = {}, {}
    for k in json.loads(vadmin(fac, "dkim", "show", DOMAIN, "--json")):
        keys[k["selector"]] = (k["type"], os.path.join(
            fac.root, "control", "dkim", DOMAIN, k["selector"] + ".pem"))
        recs[k["name"]] = k["txt"]
    return keys, recs


def start_milters(tmp, keys):
    """{kind: [the two opendkim]}: kind inet (loopback TCP) and unix"""
    alg = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}
    return {kind: [OpenDKIMd(tmp, f"{kind}-{sel}", DOMAIN, sel, path,
                             alg[ty], extra=("OversignHeaders From",),
                             unix=kind == "unix")
                   for sel, (ty, path) in sorted(keys.items())]
            for kind in ("inet", "unix")}


MILTERS = {"postfix-opendkim": "inet", "postfix-opendkim-unix": "unix",
           "postfix-plain": None}


def send_one(a, port, sender):
    line = sc.shared(a, "smtp_accept.py", "127.0.0.1", port, "-s", 1,
                     "-m", 1, "-l", 4096, "-f", sender, "-t", RCPT)
    if sc.parse(line).get("ok") != "1":
        sys.exit(f"sign_compare: one message to port {port}: {line}")


def verdict(msg, recs, want):
    """'ok' when MSG carries WANT signatures (2: rsa-sha256 and
    ed25519-sha256) and dkimpy passes them all; else what is wrong"""
    sigs = signatures(msg)
    algs = sorted(tags(s).get("a", "") for s in sigs)
    if want == 0:
        return "ok" if not sigs else f"{len(sigs)} signatures"
    if algs != ["ed25519-sha256", "rsa-sha256"]:
        return f"signatures {algs}"
    return "ok" if dkimpy_ok(msg, recs) else "dkimpy refuses"


def check_facteur(a, fac, recs):
    out = {}
    for srv, want in (("facteur-signed", 2), ("facteur-unsigned", 0)):
        before = set(os.listdir(fac.new))
        send_one(a, fac.port, SENDER[srv])
        (new,) = set(os.listdir(fac.new)) - before
        msg = read_queue_file(os.path.join(fac.new, new))[1]
        out[srv] = verdict(msg, recs, want)
    return out


def check_postfix(a, pf, recs):
    """Postfix as postfix-setup.sh leaves it, delivering, with the
    milters of the moment: the message
    as virtual(8) put it into user1's Maildir"""
    new = os.path.join(pf.root, "domains", DOMAIN, "user1", "Maildir", "new")
    before = set(os.listdir(new))
    send_one(a, pf.port, SENDER["postfix-opendkim"])
    end = time.monotonic() + 30
    while not set(os.listdir(new)) - before:
        if time.monotonic() > end:
            sys.exit("sign_compare: Postfix delivered nothing in 30 s")
        time.sleep(0.1)
    (name,) = set(os.listdir(new)) - before
    with open(os.path.join(new, name), "rb") as f:
        return verdict(f.read(), recs, 2)


def set_milters(pf, milters, kind):
    """smtpd_milters: both opendkim of KIND in a row, or none"""
    names = ", ".join(d.milter for d in milters[kind]) if kind else ""
    pf.postconf(f"smtpd_milters={names}")
    pf.milters_on = kind


def one_run(a, srv, s, fac, pf, milters, rnd, res):
    n = a.count[s]
    if srv.startswith("postfix"):
        pf.set_mode("hold")
        kind = MILTERS[srv]
        if pf.milters_on != kind:
            set_milters(pf, milters, kind)
        port = pf.port
        pids = [pf.master()] + [d.p.pid for d in milters.get(kind, [])]
    else:
        port = fac.port
        pids = [fac.proc.pid]
    c0 = sum(sc.tree_cpu(p) for p in pids)
    line = sc.shared(a, "smtp_accept.py", "127.0.0.1", port, "-s", s,
                     "-m", n, "-l", 4096, "-f", SENDER[srv],
                     "-t", RCPT, "--settle", a.settle)
    cpu = sum(sc.tree_cpu(p) for p in pids) - c0
    ms = cpu * 1000 / n
    line = sc.emit(line, a.out, server=srv, round=rnd, load1=load1(),
                   server_cpu_ms_per_msg=f"{ms:.3f}")
    f = sc.parse(line)
    rate = float(f.get("msgs_per_s", 0)) if f.get("ok") == "1" else 0.0
    res.setdefault((s, srv), []).append((rate, ms))


def summary(a, res):
    print(f"\nsummary (load average now {load1()}): accepted msgs/s "
          "[server CPU ms/msg] per round, median", flush=True)
    med = {}
    for s in a.sessions:
        for srv in SERVERS:
            r = res[(s, srv)]
            med[(s, srv)] = (statistics.median(x for x, _ in r),
                             statistics.median(c for _, c in r))
            print(f"-s {s} {srv:21}: "
                  + " / ".join(f"{x:.0f} [{c:.2f}]" for x, c in r)
                  + f" (median {med[(s, srv)][0]:.0f} "
                  f"[{med[(s, srv)][1]:.2f}])", flush=True)
        fsm, fum = med[(s, "facteur-signed")], med[(s, "facteur-unsigned")]
        ppm = med[(s, "postfix-plain")]
        print(f"-s {s} signing costs Facteur {fsm[1] - fum[1]:.2f} ms CPU "
              f"a message (rate x{fsm[0] / fum[0] if fum[0] else 0:.2f})",
              flush=True)
        for peer in ("postfix-opendkim", "postfix-opendkim-unix"):
            fs, po = res[(s, "facteur-signed")], res[(s, peer)]
            ratios = [x / y if y else 0 for (x, _), (y, _) in zip(fs, po)]
            rm = statistics.median(ratios)
            pom = med[(s, peer)]
            print(f"-s {s} Facteur signed / {peer} per round "
                  + " / ".join(f"{x:.2f}" for x in ratios)
                  + f" (median {rm:.2f}: goal 2, "
                  f"{'met' if rm >= 2 else 'MISSED'}); CPU a message "
                  f"{pom[1] / fsm[1] if fsm[1] else 0:.2f}x Facteur's; "
                  f"OpenDKIM costs Postfix {pom[1] - ppm[1]:.2f} ms "
                  f"(rate x{pom[0] / ppm[0] if ppm[0] else 0:.2f})",
                  flush=True)


def sign_cost(a):
    """bench/dkim_sign: lib/dkim's signer alone, a message, per key type"""
    prog = os.path.join(a.obj, "bench", "dkim_sign")
    if not os.access(prog, os.X_OK):
        sys.exit(f"sign_compare: no {prog} (make O={a.obj} {prog})")
    r = subprocess.run([prog, "2000", "4096"], capture_output=True,
                       text=True)
    for line in r.stdout.splitlines():
        if line.startswith("dkim_sign type="):
            sc.emit(line, a.out, load1=load1())
    if r.returncode != 0:
        sys.exit(f"sign_compare: {prog}: {r.stderr.strip()}")


def measure(a, tmp):
    fac = sc.Facteur(a, tmp)
    pf = sc.Postfix(a, tmp)
    milters = {}
    try:
        keys, recs = add_keys(fac)
        milters = start_milters(tmp, keys)
        fac.start()
        pf.start()
        checks = check_facteur(a, fac, recs)
        for srv in ("postfix-opendkim", "postfix-opendkim-unix"):
            set_milters(pf, milters, MILTERS[srv])
            checks[srv] = check_postfix(a, pf, recs)
        pf.empty()
        print(f"# sign_compare {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
              f"cores={os.cpu_count()} settle={a.settle} "
              f"n={','.join(f'{a.count[s]}@-s{s}' for s in a.sessions)} "
              f"load1={load1()} keys={','.join(t for t, _ in keys.values())} "
              + " ".join(f"{k}={v.replace(' ', '_')}"
                         for k, v in checks.items()), flush=True)
        if any(v != "ok" for v in checks.values()):
            sys.exit("sign_compare: a server does not sign as it should")
        if a.obj:
            sign_cost(a)
        res = {}
        for rnd in range(1, a.rounds + 1):
            for s in a.sessions:
                order = SERVERS if rnd % 2 else SERVERS[::-1]
                for srv in order:
                    one_run(a, srv, s, fac, pf, milters, rnd, res)
        pf.empty()
        summary(a, res)
    finally:
        fac.stop()
        pf.stop()
        for pair in milters.values():
            for d in pair:
                d.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--obj", help="the build directory holding bench/dkim_sign")
    ap.add_argument("--shared", default=sc.SHARED, help="../shared/bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("-m", "--count", default="2000,500",
                    help="messages a run, for each session count in turn")
    ap.add_argument("--sessions", default="20,1")
    ap.add_argument("--out", help="append every result line to this file too")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch directory")
    a = ap.parse_args()
    # -m: {session count: messages a run}
    a.sessions = [int(x) for x in a.sessions.split(",")]
    counts = [int(x) for x in a.count.split(",")]
    if len(counts) not in (1, len(a.sessions)) or a.rounds < 1:
        ap.error("-m takes one count or one a session count; --rounds >= 1")
    a.count = dict(zip(a.sessions, counts * len(a.sessions)))
    if os.geteuid() != 0:
        sys.exit("sign_compare: run as root (Postfix and mta-smtpd start as root)")
    tmp = tempfile.mkdtemp(prefix="sign-compare.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    sc.note(f"scratch {tmp}")
    # stop the servers and remove the scratch directory on kill too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        measure(a, tmp)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
