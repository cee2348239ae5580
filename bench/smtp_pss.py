#!/usr/bin/env python3
"""smtp_pss.py - the memory of the whole mail system under SMTP load:
`facteur run` and all its children against Postfix and all of its, in turns.

    python3 bench/smtp_pss.py --bin DIR [--sessions 50] [-m 3000]
                              [--rounds 3] [--settle 10]

Run as root, with Debian's postfix installed (../shared/bench/peers/
install.sh). Facteur: a scratch root (example.test, user1..user20),
`facteur run` with only an SMTP listener on a free loopback port (so
mta-smtpd, mta-send with its vdeliver server, and pop3d with no
listener). Postfix: the private instance of ../shared/bench/peers/
(postfix-setup.sh: virtual(8) delivery into Maildirs) on its own root and
port. In each round (the order flips every round) each server takes
../shared/bench/smtp_e2e.py -s SESSIONS -m COUNT to user1..user20 while a
thread samples, every 0.2 s, the PSS (/proc/PID/smaps_rollup, as
../shared/bench/rss_sample.py does) of the server's process tree from its
top process down. Prints one `smtp_pss` line per run (peak total PSS, the
processes then, the PSS by program name at that peak, the delivery rate,
the load average) and a `pss_summary` line: medians and Facteur/Postfix.
"""
import argparse
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pop3d_bench import run, stop_server
from smtp_compare import free_port, proc_stats

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))


def tree(pid):
    """pid and all its descendants"""
    kids = {}
    for p, fields in proc_stats().items():
        kids.setdefault(int(fields[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pss_of(pid):
    """(program name, PSS kB) or None when it is gone"""
    try:
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return name, int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Sampler(threading.Thread):
    """the peak of the total PSS of a process tree, with its breakdown"""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop_ev = pid, threading.Event()
        self.peak, self.procs, self.by_name = 0, 0, {}

    def run(self):
        while not self.stop_ev.is_set():
            total, names, n = 0, {}, 0
            for p in tree(self.pid):
                m = pss_of(p)
                if m:
                    total += m[1]
                    names[m[0]] = names.get(m[0], 0) + m[1]
                    n += 1
            if total > self.peak:
                self.peak, self.procs, self.by_name = total, n, names
            self.stop_ev.wait(0.2)

    def finish(self):
        self.stop_ev.set()
        self.join()


class Facteur:
    name = "facteur"

    def __init__(self, a, tmp):
        b = os.path.abspath(a.bin)
        self.root = os.path.join(tmp, "root")
        self.domains = os.path.join(self.root, "domains")
        self.port = free_port()
        run([f"{b}/facteur", "init", "--root", self.root, "--dev"])
        for kind in ("smtp", "submission", "smtps", "pop3", "pop3s"):
            p = os.path.join(self.root, "control", f"listen.{kind}")
            with open(p, "w") as f:
                f.write(f"127.0.0.1:{self.port}\n" if kind == "smtp" else "")
            pw = pwd.getpwnam("facteur")
            os.chown(p, pw.pw_uid, pw.pw_gid)
        # smtp-source's sessions all come from 127.0.0.1 (default 20)
        p = os.path.join(self.root, "control", "maxperip")
        with open(p, "w") as f:
            f.write(f"{a.sessions + 10}\n")
        run([f"{b}/vadmin", "--root", self.root, "adddomain", "example.test"],
            input="bench-pass\n")
        imp = os.path.join(tmp, "users.txt")
        with open(imp, "w") as f:
            for i in range(1, 21):
                f.write(f"user{i}@example.test bench-pass\n")
        os.chmod(imp, 0o644)
        run([f"{b}/vadmin", "--root", self.root, "import", imp])
        self.log = open(os.path.join(tmp, "facteur-run.log"), "w")
        self.proc = subprocess.Popen([f"{b}/facteur", "run", "--root",
                                      self.root], stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        self.pid = self.proc.pid
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("facteur run does not listen")

    def stop(self):
        stop_server(self.proc, 30)


class Postfix:
    name = "postfix"

    def __init__(self, a, tmp):
        self.peers = os.path.join(SHARED, "peers")
        self.root = os.path.join(tmp, "peers")
        self.domains = os.path.join(self.root, "domains")
        self.port = free_port()
        self.env = dict(os.environ, BENCH_ROOT=self.root,
                        SMTP_PORT=str(self.port), BENCH_DOMAINS="example.test")
        self.running = False
        run([os.path.join(self.peers, "postfix-setup.sh"), self.root],
            env=self.env)
        self.running = True
        with open(os.path.join(self.root, "postfix", "queue", "pid",
                               "master.pid")) as f:
            self.pid = int(f.read().strip())

    def stop(self):
        if self.running:
            subprocess.run([os.path.join(self.peers, "postfix-stop.sh"),
                            self.root], env=self.env, capture_output=True)
            self.running = False


def measure(a, srv, rnd):
    """one smtp_e2e run with the sampler on srv's process tree"""
    time.sleep(a.settle)
    smp = Sampler(srv.pid)
    smp.start()
    out = run([sys.executable, os.path.join(SHARED, "smtp_e2e.py"),
               "127.0.0.1", str(srv.port), srv.domains, "-s",
               str(a.sessions), "-m", str(a.count), "-t",
               "user{i}@example.test", "--rcpts", "20", "--clean"]).strip()
    smp.finish()
    rate = out.split("msgs_per_s=")[1].split()[0] if "msgs_per_s=" in out \
        else "?"
    load = os.getloadavg()[0]
    top = sorted(smp.by_name.items(), key=lambda kv: -kv[1])
    print(f"smtp_pss server={srv.name} round={rnd} sessions={a.sessions} "
          f"peak_pss_kb={smp.peak} procs={smp.procs} e2e_msgs_per_s={rate} "
          f"load1={load:.2f} by_name="
          f"{','.join(f'{n}:{kb}' for n, kb in top)}", flush=True)
    return smp.peak, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("-m", "--count", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=10)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("smtp_pss.py: run as root (the peer starts as root)")
    tmp = tempfile.mkdtemp(prefix="facteur-pss.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    servers, res = [], {}
    try:
        servers.append(Facteur(a, tmp))
        servers.append(Postfix(a, tmp))
        for rnd in range(1, a.rounds + 1):
            for srv in servers if rnd % 2 else servers[::-1]:
                res.setdefault(srv.name, []).append(measure(a, srv, rnd))
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    f = [x[0] for x in res.get("facteur", [])]
    p = [x[0] for x in res.get("postfix", [])]
    if f and p:
        print(f"pss_summary sessions={a.sessions} rounds={a.rounds} "
              f"facteur_median_kb={med(f):.0f} postfix_median_kb={med(p):.0f}"
              f" facteur_over_postfix={med(f) / med(p):.3f} goal<=0.25 "
              f"load1={'/'.join(f'{x[1]:.1f}' for v in res.values() for x in v)}",
              flush=True)


if __name__ == "__main__":
    main()
