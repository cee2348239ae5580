#!/usr/bin/env python3
"""delivery_profile.py - where a local delivery's time goes, per process.

    python3 bench/delivery_profile.py --bin build/rel/bin [--obj build/rel]
        [-m 2000] [-s 20] [-u 1000] [--conc 10] [--postfix] [--keep]

Run as root (mta-smtpd binds as root; strace attaches). A scratch root
(example.test, user1..user1000, as bench/smtp_compare.py makes it), `facteur
run`, then -m messages of 4 KiB over -s sessions spread over -u users
(bench/smtp_spread), twice:

1. traced: `strace -f` attached to mta-send before its first local
   delivery, so that it follows the vdeliver server and every worker from
   their birth. Prints, per delivery, the system calls of mta-send, of the
   server and of its workers, the commonest by name (fsync and the
   directory fsyncs among them: a worker's fsync of a descriptor it opened
   with O_DIRECTORY), and the forks.
2. untraced (strace slows everything): voluntary and involuntary context
   switches and CPU time per delivery of mta-send and of the server (from
   /proc), and, from the log, how long each delivery held its slot: from
   mta-send's `starting delivery` to vdeliver's `delivered` line, and from
   there to mta-send's `delivery N: success` (the hand-back); and the
   wait on the concurrency limit: from a message's `new msg` to its
   `starting delivery`, and how often mta-send's `status:` line found
   every local slot taken (an undercount: a turn logs its ends before the
   starts that fill the slots again).

3. with --postfix: the same load through a private Postfix
   (../shared/bench/peers/postfix-setup.sh, virtual(8) into the same
   layout), every process of it traced: the counts summed per program
   (smtpd, cleanup, qmgr, virtual, trivial-rewrite, ...), per message.

Counts do not depend much on the machine's load; times do. Prints lines
`profile KEY=VALUE ...`.
"""
import argparse
import collections
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_compare as sc  # noqa: E402  (the scratch root, the helpers)

CALL = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\((.*))")


def spread(a, port, n):
    subprocess.run([os.path.join(a.obj, "bench", "smtp_spread"), "-s",
                    str(a.sessions), "-m", str(n), "-u", str(a.users),
                    f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)


def delivered(srv, users):
    """files in the users' new/ (Facteur's root or the peer's)"""
    return sum(len(os.listdir(os.path.join(
        srv.root, "domains", "example.test", f"user{i}", "Maildir", "new")))
        for i in range(1, users + 1))


def wait_delivered(fac, users, want, secs=300):
    end = time.monotonic() + secs
    while delivered(fac, users) < want:
        if time.monotonic() > end:
            sys.exit(f"delivery_profile: {delivered(fac, users)}/{want} delivered")
        time.sleep(0.1)


def child(ppid, name):
    for p, v in sc.proc_stats().items():
        if int(v[1]) == ppid:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() == name:
                    return p
    return None


def parse_trace(path):
    """{pid: Counter(syscall)}; an fsync of a descriptor that was opened
    with O_DIRECTORY also counts as "fsync(dir)" """
    per = collections.defaultdict(collections.Counter)
    dirfds = collections.defaultdict(set)
    pending = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = CALL.match(line)
            if not m:
                continue
            pid = int(m.group(1))
            if m.group(3):
                name, text = m.group(3), m.group(4)
                per[pid][name] += 1
                if "<unfinished ...>" in text:
                    pending[pid] = (name, text)
                    continue
            else:
                name, text = pending.pop(pid, (m.group(2), ""))
                text += line
            fds = dirfds[pid]
            res = re.search(r"\) += (\d+)", text)
            arg = re.match(r"(\d+)", text)
            if name == "openat" and res:
                (fds.add if "O_DIRECTORY" in text else fds.discard)(int(res.group(1)))
            elif name == "close" and arg:
                fds.discard(int(arg.group(1)))
            elif name == "dup2":
                a2 = re.match(r"\d+, (\d+)", text)
                if a2:
                    fds.discard(int(a2.group(1)))
            elif name == "fsync" and arg and int(arg.group(1)) in fds:
                per[pid]["fsync(dir)"] += 1
    return per


def show(name, c, n):
    tot = sum(v for k, v in c.items() if k != "fsync(dir)")
    top = ", ".join(f"{k} {v / n:.2f}" for k, v in c.most_common(16))
    print(f"profile process={name} syscalls_per_delivery={tot / n:.1f} "
          f"fsync={c['fsync'] / n:.2f} dir_fsync={c['fsync(dir)'] / n:.2f} "
          f"fdatasync={c['fdatasync'] / n:.2f} forks={(c['clone'] + c['fork'] + c['vfork'] + c['clone3']) / n:.4f}",
          flush=True)
    print(f"  {top}", flush=True)


def traced(a, fac, run):
    send = child(run.pid, "mta-send")
    trace = os.path.join(fac.root, "trace")
    st = subprocess.Popen(["strace", "-f", "-o", trace, "-p", str(send)],
                          stderr=subprocess.DEVNULL)
    time.sleep(1)
    spread(a, fac.port, a.count)
    wait_delivered(fac, a.users, a.count)
    st.send_signal(signal.SIGINT)
    st.wait()
    per = parse_trace(trace)
    server = child(send, "vdeliver")
    workers = collections.Counter()
    for p, c in per.items():
        if p not in (send, server):
            workers.update(c)
    show("mta-send", per[send], a.count)
    show("vdeliver-server", per.get(server, collections.Counter()), a.count)
    show("vdeliver-workers", workers, a.count)
    os.unlink(trace)


def comms(per, trace_path, known):
    """pid -> program: from its execve in the trace, else as it was when
    strace attached (known)"""
    names = dict(known)
    with open(trace_path, errors="replace") as f:
        for line in f:
            m = re.match(r'^(\d+)\s+execve\("([^"]+)"', line)
            if m:
                names[int(m.group(1))] = os.path.basename(m.group(2))
    # a forked child that did not exec is its parent's program
    return {p: names.get(p, "?") for p in per}


def postfix_traced(a, tmp):
    """The same load through a private Postfix (../shared/bench/peers),
    every one of its processes traced; counts summed per program"""
    pf = sc.Postfix(argparse.Namespace(shared=sc.SHARED), tmp)
    pf.start()
    try:
        pids = [pf.master()] + [p for p, v in sc.proc_stats().items()
                                if int(v[1]) == pf.master()]
        known = {}
        for p in pids:
            with open(f"/proc/{p}/comm") as f:
                known[p] = f.read().strip()
        trace = os.path.join(tmp, "pf-trace")
        argv = ["strace", "-f", "-o", trace]
        for p in pids:
            argv += ["-p", str(p)]
        st = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(1)
        fake = argparse.Namespace(root=pf.root, port=pf.port)
        base = delivered(fake, a.users)
        spread(a, pf.port, a.count)
        wait_delivered(fake, a.users, base + a.count)
        time.sleep(1)
        st.send_signal(signal.SIGINT)
        st.wait()
        per = parse_trace(trace)
        prog = comms(per, trace, known)
        by = collections.defaultdict(collections.Counter)
        for p, c in per.items():
            by[prog[p]].update(c)
        for name in sorted(by, key=lambda k: -sum(by[k].values())):
            if sum(by[name].values()) >= a.count:
                show(f"postfix-{name}", by[name], a.count)
        os.unlink(trace)
    finally:
        pf.empty()
        pf.stop()


def ctx(pid):
    v = n = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                v = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                n = int(line.split()[1])
    st = sc.proc_stats()[pid]
    return v, n, (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def stamp(s):
    return datetime.datetime.strptime(s[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def waits(log_text, conc):
    """the wait on the concurrency limit: per message, from its `new msg`
    to its `starting delivery` (seconds); and the share of mta-send's
    `status:` lines that found every local slot taken"""
    picked, waited, full, lines = {}, [], 0, 0
    for line in log_text.splitlines():
        m = re.match(r"(\S+) mta-send\[\d+\]: (new msg|starting delivery "
                     r"\d+: msg) (\S+)", line)
        if m and m.group(2) == "new msg":
            picked[m.group(3)] = stamp(m.group(1))
        elif m and m.group(3) in picked:
            waited.append(stamp(m.group(1)) - picked.pop(m.group(3)))
        m = re.search(r"mta-send\[\d+\]: status: local (\d+)/(\d+)", line)
        if m:
            lines += 1
            full += m.group(1) == m.group(2)
    return waited, full / lines if lines else 0


def slots(log_text):
    """per delivery: (slot held, start to vdeliver's line, its line to the
    end mta-send saw), in seconds"""
    start, end, to, vd = {}, {}, {}, collections.defaultdict(list)
    for line in log_text.splitlines():
        m = re.match(r"(\S+) mta-send\[\d+\]: starting delivery (\d+): msg "
                     r"\S+ to local (\S+)", line)
        if m:
            start[m.group(2)], to[m.group(2)] = stamp(m.group(1)), m.group(3)
            continue
        m = re.match(r"(\S+) mta-send\[\d+\]: delivery (\d+): success", line)
        if m:
            end[m.group(2)] = stamp(m.group(1))
            continue
        m = re.match(r"(\S+) vdeliver\[\d+\]: delivered msg to (\S+):", line)
        if m:
            vd[m.group(2)].append(stamp(m.group(1)))
    held, lead, back = [], [], []
    for k, t0 in start.items():
        if k not in end:
            continue
        held.append(end[k] - t0)
        c = [t for t in vd[to[k]] if t0 <= t <= end[k]]
        if len(c) == 1:
            lead.append(c[0] - t0)
            back.append(end[k] - c[0])
    return held, lead, back


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] * 1000 if v else 0


def untraced(a, fac, run):
    send = child(run.pid, "mta-send")
    server = child(send, "vdeliver")
    logp = os.path.join(fac.root, "log", "current")
    off = os.path.getsize(logp)
    s0, v0 = ctx(send), ctx(server)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    spread(a, fac.port, a.count)
    wait_delivered(fac, a.users, 2 * a.count)
    secs = time.monotonic() - t0
    s1, v1 = ctx(send), ctx(server)
    n = a.count
    for name, x, y in (("mta-send", s0, s1), ("vdeliver-server", v0, v1)):
        print(f"profile process={name} voluntary_cs={(y[0] - x[0]) / n:.2f} "
              f"involuntary_cs={(y[1] - x[1]) / n:.2f} "
              f"cpu_ms={(y[2] - x[2]) * 1000 / n:.3f} (per delivery)", flush=True)
    time.sleep(1)       # facteur run writes the last lines
    with open(logp, errors="replace") as f:
        f.seek(off)
        text = f.read()
    held, lead, back = slots(text)
    waited, full = waits(text, a.conc)
    print(f"profile limit_wait_ms_median={pct(waited, .5):.2f} "
          f"limit_wait_ms_p90={pct(waited, .9):.2f} "
          f"status_lines_with_every_local_slot_taken={full:.2f}", flush=True)
    print(f"profile slot_ms_median={pct(held, .5):.2f} slot_ms_p90={pct(held, .9):.2f} "
          f"to_delivered_ms_median={pct(lead, .5):.2f} to_delivered_ms_p90={pct(lead, .9):.2f} "
          f"handback_ms_median={pct(back, .5):.2f} handback_ms_p90={pct(back, .9):.2f} "
          f"e2e_msgs_per_s={n / secs:.0f} concurrencylocal={a.conc} load1={load:.2f}",
          flush=True)


def main():
    ap = sc.profile_args(__doc__, 2000)
    ap.add_argument("--postfix", action="store_true",
                    help="also trace the same load through a private Postfix")
    a = ap.parse_args()
    tmp = sc.profile_setup(a, "delivery_profile", "strace", "strace")
    fac, run = sc.facteur_run(a.bin, tmp, a.conc)
    try:
        sc.wait_port(fac.port)
        time.sleep(1)
        traced(a, fac, run)
        untraced(a, fac, run)
    finally:
        run.terminate()
        run.wait()
    try:
        if a.postfix:
            postfix_traced(a, tmp)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
