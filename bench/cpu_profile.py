#!/usr/bin/env python3
"""cpu_profile.py - where the CPU of a message goes, the whole system at once.

    python3 bench/cpu_profile.py --bin BIN [--obj OBJ] [-m 5000] [-s 20]
        [-u 1000] [--conc 10] [--freq 997] [--warm 1000] [--top 12]
        [--perf-data FILE] [--keep]

Run as root, with perf installed (linux-perf). The e2e case of
bench/smtp_compare.py, Facteur only: a scratch root (example.test,
user1..user1000, made by smtp_compare's Facteur), `facteur run` with
concurrencylocal --conc, a warm-up of --warm messages (not profiled), then
-m messages of 4 KiB over -s sessions spread over -u users by
bench/smtp_spread while `perf record -a -g -e cpu-clock` samples both cores
(a software clock: hardware counters are not available on every machine).
It waits, as smtp_compare's e2e does, until the last file is in new/.

Prints, per message (CPU milliseconds = samples / --freq * 1000 / -m):
the share of every process role (mta-smtpd's parent and its sessions,
mta-send, the vdeliver server and its workers, the supervisor, the client
smtp_spread, the bench's own poller, jbd2, kworkers, other kernel threads,
everything else on the machine, idle), each split into user and kernel
time and the part of the kernel time spent in softirq (loopback TCP is
processed there); then, for mta-smtpd's sessions, the vdeliver workers and
mta-send, the system calls the kernel time went to (from the `__x64_sys_`
frame of each sample's kernel stack; page faults apart), the top user
symbols and the top kernel symbols. User stacks are not walked (the build
omits frame pointers): user symbols are the sampled function itself.
Also how many distinct inode numbers the queue files of the -m messages
had (mta-send's `qp` in its `info msg` lines): fewer than -m when files
are reused (lib/queue.h's pool of spent files) or the kernel hands a
freed inode out again. Prints lines `cpuprof KEY=VALUE ...` and tables; --perf-data keeps the
recording for `perf report -i FILE`.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_compare as sc  # noqa: E402  (the scratch root, the e2e run)

HEAD = re.compile(r"^(\S.*?)\s+(\d+)/(\d+)\s")
FRAME = re.compile(r"^\s+[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")
SYS = re.compile(r"^(?:__x64_sys_|__ia32_sys_|__do_sys_)(\w+)$")
SOFTIRQ = {"handle_softirqs", "__do_softirq", "net_rx_action", "do_softirq"}
FAULT = {"exc_page_fault", "asm_exc_page_fault", "do_user_addr_fault"}


def pids_of(run):
    """the long-lived processes' roles: {pid: role}"""
    roles = {run.pid: "facteur run"}
    kids = collections.defaultdict(list)
    for p, v in sc.proc_stats().items():
        kids[int(v[1])].append(int(p))
    for p in kids[run.pid]:
        comm = open(f"/proc/{p}/comm").read().strip()
        if comm == "mta-smtpd":
            roles[p] = "mta-smtpd parent"
        elif comm == "mta-send":
            roles[p] = "mta-send"
            for q in kids[p]:
                if open(f"/proc/{q}/comm").read().strip() == "vdeliver":
                    roles[q] = "vdeliver server"
        elif comm == "pop3d":
            roles[p] = "pop3d (idle)"
    return roles


def role(comm, pid, roles):
    """the row a sample is counted in"""
    if pid in roles:
        return roles[pid]
    if comm == "mta-smtpd":
        return "mta-smtpd sessions"
    if comm == "vdeliver":
        return "vdeliver workers"
    if comm in ("smtp_spread", "mta-send", "facteur"):
        return comm
    if comm == os.path.basename(sys.executable)[:15] and pid == os.getpid():
        return "bench poller (python)"
    if comm.startswith("jbd2"):
        return "jbd2 (ext4 journal)"
    if comm.startswith("kworker"):
        return "kworkers"
    if comm.startswith("ksoftirqd"):
        return "ksoftirqd"
    if comm == "swapper" or pid == 0:
        return "idle"
    return "others (not the bench)"


class Row:
    def __init__(self):
        self.n = self.kern = self.soft = self.fault = 0
        self.sys = collections.Counter()
        self.usym = collections.Counter()
        self.ksym = collections.Counter()


def parse(path, roles):
    """perf script's samples folded into one Row a role"""
    rows = collections.defaultdict(Row)
    p = subprocess.Popen(["perf", "script", "-i", path, "-F",
                          "comm,pid,tid,ip,sym,dso"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, errors="replace")
    cur = None

    def close(s):
        if s is None:
            return
        r = rows[role(s[0], s[1], roles)]
        r.n += 1
        frames = s[2]
        if not frames:
            return
        leaf, dso = frames[0]
        if dso.startswith("[kernel"):
            r.kern += 1
            r.ksym[leaf] += 1
            names = [f for f, _ in frames]
            if SOFTIRQ.intersection(names):
                r.soft += 1
            if FAULT.intersection(names):
                r.fault += 1
                r.sys["(page fault)"] += 1
                return
            for f in names:
                m = SYS.match(f)
                if m:
                    r.sys[m.group(1)] += 1
                    break
            else:
                r.sys["(no system call: interrupt, softirq, scheduler)"] += 1
        else:
            r.usym[f"{leaf} ({os.path.basename(dso)})"] += 1

    for line in p.stdout:
        m = HEAD.match(line)
        if m:
            close(cur)
            cur = (m.group(1).strip(), int(m.group(2)), [])
            continue
        m = FRAME.match(line)
        if m and cur is not None:
            cur[2].append((m.group(1), m.group(2)))
    close(cur)
    p.wait()
    return rows


def report(a, rows, n, secs):
    ms = 1000.0 / a.freq / n
    total = sum(r.n for r in rows.values())
    print(f"cpuprof messages={n} secs={secs:.2f} msgs_per_s={n / secs:.1f} "
          f"samples={total} freq={a.freq} cores={os.cpu_count()} "
          f"load1={os.getloadavg()[0]:.2f}", flush=True)
    print("\n| role | CPU ms/msg | user | kernel | of it softirq | of it page faults | share of busy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    busy = sum(r.n for k, r in rows.items() if k != "idle") or 1
    for k, r in sorted(rows.items(), key=lambda kv: -kv[1].n):
        print(f"| {k} | {r.n * ms:.3f} | {(r.n - r.kern) * ms:.3f} | "
              f"{r.kern * ms:.3f} | {r.soft * ms:.3f} | {r.fault * ms:.3f} | "
              f"{100.0 * r.n / busy if k != 'idle' else 0:.1f} % |")
    for k in ("mta-smtpd sessions", "vdeliver workers", "vdeliver server",
              "mta-send", "smtp_spread"):
        r = rows.get(k)
        if not r or not r.n:
            continue
        print(f"\n{k}: {r.n * ms:.3f} ms/msg")
        for title, c in (("kernel time by system call", r.sys),
                         ("user symbols (self)", r.usym),
                         ("kernel symbols (self)", r.ksym)):
            top = ", ".join(f"{s} {v * ms * 1000:.0f}" for s, v in c.most_common(a.top))
            print(f"  {title}, us/msg: {top}")


def queue_inodes(root, n):
    """distinct inode numbers (mta-send's `qp`) of the last N messages"""
    qp = []
    with open(os.path.join(root, "log", "current"), errors="replace") as f:
        for line in f:
            m = re.search(r" info msg \S+ bytes \d+ from <[^>]*> qp (\d+)", line)
            if m:
                qp.append(m.group(1))
    return len(set(qp[-n:]))


def main():
    ap = sc.profile_args(__doc__, 5000)
    ap.add_argument("--freq", type=int, default=997)
    ap.add_argument("--warm", type=int, default=1000)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--perf-data", help="keep the recording here")
    a = ap.parse_args()
    tmp = sc.profile_setup(a, "cpu_profile", "perf", "linux-perf")
    fac, run = sc.facteur_run(a.bin, tmp, a.conc)
    data = a.perf_data or os.path.join(tmp, "perf.data")
    maildirs = os.path.join(fac.root, "domains")
    e2e = argparse.Namespace(settle=2, obj=a.obj, e2e_count=a.warm)
    try:
        sc.wait_port(fac.port)
        time.sleep(1)
        if a.warm:
            sc.e2e_once(e2e, fac.port, maildirs, a.sessions, a.users)
        roles = pids_of(run)
        e2e.e2e_count = a.count
        e2e.settle = 0
        perf = subprocess.Popen(["perf", "record", "-a", "-g", "-e", "cpu-clock",
                                 "-F", str(a.freq), "-o", data, "--", "sleep", "3600"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)     # perf's own start-up is not the bench's
        t0 = time.monotonic()
        acc, rate, got, ok, _ = sc.e2e_once(e2e, fac.port, maildirs, a.sessions, a.users)
        secs = time.monotonic() - t0
        perf.send_signal(signal.SIGINT)
        perf.wait()
        if not ok:
            sys.exit(f"cpu_profile: {got}/{a.count} delivered")
        sc.note(f"cpu_profile: accepted at {acc:.0f} msgs/s, e2e {rate:.0f} msgs/s")
        inodes = queue_inodes(fac.root, a.count)
    finally:
        run.terminate()
        run.wait()
    print(f"cpuprof queue_files={a.count} distinct_inodes={inodes}")
    # the samples of the whole recording; perf's own 1.5 s of start is in
    # "others" and idle, and counted in secs only for the run
    report(a, parse(data, roles), a.count, secs)
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
