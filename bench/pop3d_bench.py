#!/usr/bin/env python3
"""pop3d_bench.py - pop3d under ../shared/bench/pop3_bench.py.

Makes a scratch root in /var/tmp (SHA512-CRYPT hashes, as the Dovecot peer
uses), USERS users of example.test with the password bench-pass, starts
bin/pop3d on a free loopback port, and runs the shared client:

  retr -p 1    fill USERS x MSGS messages of 4 KiB, RETR+DELE them all
  retr -p 20   the same with 20 clients
  grants       GRANTS (10,000) logins, each from its own loopback address
               127.1.X.Y: as many POP-before-SMTP grant files, no lock
  login        LOGINS x (connect, USER, PASS, QUIT) with 20 clients over
               LOGIN_USERS users (1000, as ../shared/bench/README.md does:
               with few users two clients often want the same mailbox at
               once, and the second is rightly told [IN-USE], which Dovecot,
               that does not lock POP3 sessions by default, never says)

Each shared result line is printed as it comes, followed by a
`pop3d_cpu` line: the CPU time pop3d and its session processes used in
that run (from /proc: the parent's own time, its reaped children's and
its live children's),
per message or per login. A `crypt_cost` line gives the cost of one
SHA512-CRYPT check on this machine, so the rest of a login's CPU is what
pop3d itself adds. Nothing is left behind: the server is stopped and the
root removed.

With --client c the client is bench/pop3_load (C, one process of
threads, built by `make O=OBJ OBJ/bench/pop3_load`; --obj OBJ, default the
parent of --bin) instead of the shared Python one, whose single interpreter
lock, not the server, set the pace past about 5,000 messages a second; its
line says how much CPU it took itself (client_cores=), and the summary
lists that per round.

With --dovecot (as root) a private Dovecot from ../shared/bench/peers/
(its own root and port, the same users with SHA512-CRYPT) takes each mode
in turns with pop3d, for --rounds rounds, the order flipped every round;
a `pop3_summary` line a mode then gives the medians and the ratios.

    bench/pop3d_bench.py [--bin bin] [--users 100] [--msgs 100]
                         [--logins 2000] [--login-users 1000] [--settle 60]
                         [--modes retr1,retr20,login,grants] [--grants N]
                         [--dovecot] [--rounds 1] [--client python|c]
                         [--obj OBJ]
"""
import argparse
import crypt  # noqa: deprecated in 3.11 but present; only for crypt_cost
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from smtp_compare import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))
CLK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    """utime+stime+cutime+cstime of pid, plus utime+stime of its live
    children (the session processes kept ready, lib/server: they serve
    many sessions before they are reaped), in seconds. A child that ends
    between two readings moves from the second sum to the first."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(name) == pid:
            total += sum(int(x) for x in fields[11:15])
        elif int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / CLK


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr}")
    return p.stdout


def crypt_cost(n=200):
    h = crypt.crypt("bench-pass", crypt.mksalt(crypt.METHOD_SHA512))
    t0 = time.process_time()
    for _ in range(n):
        crypt.crypt("bench-pass", h)
    return (time.process_time() - t0) / n


def grant_logins(port, n, parallel=20):
    """n logins (USER, PASS, QUIT) each from its own loopback address
    127.1.X.Y: n POP-before-SMTP grants. Returns (wall s, errors)."""
    import threading
    lock = threading.Lock()
    todo = list(range(n))
    errors = [0]

    def one(k):
        src = f"127.{1 + k // 65536}.{k // 256 % 256}.{k % 256}"
        with socket.create_connection(("127.0.0.1", port), 30,
                                      source_address=(src, 0)) as s:
            f = s.makefile("rb")
            f.readline()
            u = f"user{k % 1000 + 1}@example.test"
            s.sendall(f"USER {u}\r\nPASS bench-pass\r\nQUIT\r\n".encode())
            for _ in range(3):
                if not f.readline().startswith(b"+OK"):
                    raise RuntimeError("login failed")

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                k = todo.pop()
            try:
                one(k)
            except Exception:
                with lock:
                    errors[0] += 1

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, errors[0]


class Facteur:
    """bin/pop3d on a scratch root (SHA512-CRYPT users, as the peer's)."""
    name = "facteur"

    def __init__(self, a, tmp, bindir):
        self.root = os.path.join(tmp, "root")
        self.domains = os.path.join(self.root, "domains")
        self.srv = None
        run([f"{bindir}/facteur", "init", "--root", self.root, "--dev"])
        self.port = free_port()
        ctl = {"passwordscheme": "sha512crypt\n",
               "listen.pop3": f"127.0.0.1:{self.port}\n", "listen.pop3s": ""}
        for name, text in ctl.items():
            p = os.path.join(self.root, "control", name)
            with open(p, "w") as f:
                f.write(text)
            if os.geteuid() == 0:
                pw = pwd.getpwnam("facteur")
                os.chown(p, pw.pw_uid, pw.pw_gid)
        run([f"{bindir}/vadmin", "--root", self.root, "adddomain",
             "example.test"], input="bench-pass\n")
        imp = os.path.join(tmp, "users.txt")
        with open(imp, "w") as f:
            for i in range(1, max(a.users, a.login_users) + 1):
                f.write(f"user{i}@example.test bench-pass\n")
        os.chmod(imp, 0o644)
        run([f"{bindir}/vadmin", "--root", self.root, "import", imp])
        log = open(os.path.join(tmp, "pop3d.log"), "w")
        self.srv = subprocess.Popen([f"{bindir}/pop3d", "--root", self.root],
                                    stdout=log, stderr=log,
                                    start_new_session=True)
        while True:
            with open(log.name) as f:
                if "listening on" in f.read():
                    break
            if self.srv.poll() is not None:
                sys.exit(open(log.name).read())
            time.sleep(0.05)
        self.pid = self.srv.pid

    def stop(self):
        if self.srv:
            stop_server(self.srv, 20)


class Dovecot:
    """The private Dovecot of ../shared/bench/peers/ on its own root and
    port (SHA512-CRYPT passwd-file), its Maildirs made for vmail first."""
    name = "dovecot"

    def __init__(self, a, tmp):
        self.root = os.path.join(tmp, "dovecot-root")
        self.domains = os.path.join(self.root, "domains")
        self.port = free_port()
        self.env = dict(os.environ, BENCH_ROOT=self.root,
                        POP3_PORT=str(self.port),
                        BENCH_DOMAINS="example.test",
                        BENCH_USERS=str(max(a.users, a.login_users)))
        self.started = False
        run([os.path.join(SHARED, "peers", "dovecot-setup.sh")],
            env=self.env)
        self.started = True
        vm = pwd.getpwnam(self.env.get("VMAIL_USER", "vmail"))
        for i in range(1, max(a.users, a.login_users) + 1):
            md = os.path.join(self.domains, "example.test", f"user{i}",
                              "Maildir")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(md, sub), 0o700, exist_ok=True)
            for d in (os.path.dirname(md), md, *(os.path.join(md, x)
                      for x in ("cur", "new", "tmp"))):
                os.chown(d, vm.pw_uid, vm.pw_gid)
        for d in (self.domains, os.path.join(self.domains, "example.test")):
            os.chmod(d, 0o755)
        with open(os.path.join(self.root, "dovecot", "run",
                               "master.pid")) as f:
            self.pid = int(f.read().strip())

    def stop(self):
        if self.started:
            subprocess.run([os.path.join(SHARED, "peers",
                                         "dovecot-stop.sh")],
                           env=self.env, capture_output=True)
            self.started = False


def stop_server(proc, secs):
    """SIGTERM to a server we started (a Popen in its own session), then
    SIGKILL to its group after secs"""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(secs)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def client_cmd(a, srv, mode):
    """the client's command line for MODE against SRV: the shared Python
    client, or with --client c bench/pop3_load (one process of threads in
    C, STAT instead of LIST: see its header); the settle wait is ours
    then"""
    if a.client == "c":
        cmd = [a.load, "-P", "bench-pass"]
        if mode.startswith("retr"):
            cmd += ["-m", "retr", "-u", str(a.users), "-s", mode[4:]]
        else:
            cmd += ["-m", "login", "-u", str(a.login_users), "-s", "20",
                    "-n", str(a.logins)]
        return cmd + [f"127.0.0.1:{srv.port}"]
    cmd = [sys.executable, os.path.join(SHARED, "pop3_bench.py"),
           "127.0.0.1", str(srv.port), "--password", "bench-pass",
           "--settle", str(a.settle)]
    if mode.startswith("retr"):
        return cmd + ["--mode", "retr", "-u", str(a.users), "-p", mode[4:]]
    return cmd + ["--mode", "login", "-u", str(a.login_users), "-p", "20",
                  "--logins", str(a.logins)]


class Strace:
    """strace -c -f attached to a server and every process under it (the
    session processes kept ready exist before the run, so -f alone would
    miss them): system calls counted while the client runs"""

    def __init__(self, pid, path):
        from smtp_pss import tree  # it imports this file: not at the top
        self.path = path
        cmd = ["strace", "-c", "-f", "-o", path]
        for p in tree(pid):
            cmd += ["-p", str(p)]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        time.sleep(1)  # attached to all before the client starts

    def stop(self):
        """detach; {syscall: calls}"""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        calls = {}
        with open(self.path) as f:
            for line in f:
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+"
                             r"(?:\d+\s+)?([a-z_0-9]+)$", line)
                if m and m.group(2) != "total":
                    calls[m.group(2)] = int(m.group(1))
        return calls


def print_calls(mode, srv, calls, units):
    """one line: system calls per unit, the total then each by count"""
    total = sum(calls.values())
    parts = " ".join(f"{k}={v / units:.2f}" for k, v in
                     sorted(calls.items(), key=lambda kv: -kv[1])
                     if v / units >= 0.005)
    print(f"pop3_strace mode={mode} server={srv.name} units={units} "
          f"per_unit={total / units:.2f} {parts}", flush=True)


def measure(a, srv, mode):
    """one run of MODE against SRV: (rate, CPU ms a unit, load), the
    lines printed with server=, round and load appended"""
    if mode.startswith("retr"):
        run([sys.executable, os.path.join(SHARED, "maildir_fill.py"),
             srv.domains, "-u", str(a.users), "-n", str(a.msgs), "-l",
             "4096", "--clean"])
        units = a.users * a.msgs
        key = "msgs_per_s"
    else:
        units = a.logins
        key = "logins_per_s"
    if a.client == "c":
        time.sleep(a.settle)
    tracer = (Strace(srv.pid, os.path.join(os.path.dirname(srv.root),
                                          f"strace-{srv.name}.txt"))
              if a.strace else None)
    c0 = cpu_of(srv.pid)
    out = run(client_cmd(a, srv, mode)).strip()
    if tracer:
        time.sleep(1)
        print_calls(mode, srv, tracer.stop(), units)
    time.sleep(1)  # the last sessions reaped: their CPU counted
    used = cpu_of(srv.pid) - c0
    load = os.getloadavg()[0]
    tail = f" server={srv.name} load1={load:.2f}"
    print(out + tail, flush=True)
    print(f"pop3d_cpu mode={mode} cpu_s={used:.2f} "
          f"per_unit_ms={used / units * 1e3:.3f}{tail}", flush=True)
    rate = float(out.split(f"{key}=")[1].split()[0])
    cores = (float(out.split("client_cores=")[1].split()[0])
             if "client_cores=" in out else float("nan"))
    return rate, used / units * 1e3, load, cores


def summary(res, rounds):
    """medians of each server and of the round-by-round ratios"""
    med = statistics.median
    for mode in sorted({m for m, _ in res}):
        f = res.get((mode, "facteur"), [])
        d = res.get((mode, "dovecot"), [])
        line = (f"pop3_summary mode={mode} rounds={rounds} "
                f"facteur_median={med(x[0] for x in f):.1f} "
                f"facteur_cpu_ms={med(x[1] for x in f):.3f}")
        if d:
            ratios = [x[0] / y[0] for x, y in zip(f, d) if y[0] > 0]
            line += (f" dovecot_median={med(x[0] for x in d):.1f}"
                     f" dovecot_cpu_ms={med(x[1] for x in d):.3f}"
                     f" ratio_of_medians="
                     f"{med(x[0] for x in f) / med(x[0] for x in d):.2f}"
                     f" median_of_round_ratios={med(ratios):.2f}"
                     f" round_ratios={'/'.join(f'{r:.2f}' for r in ratios)}")
        line += f" load1={'/'.join(f'{x[2]:.1f}' for x in f + d)}"
        if all(x[3] == x[3] for x in f + d):  # not NaN: bench/pop3_load
            line += (" client_cores="
                     f"{'/'.join(f'{x[3]:.2f}' for x in f + d)}")
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--msgs", type=int, default=100)
    ap.add_argument("--logins", type=int, default=2000)
    ap.add_argument("--login-users", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=60)
    ap.add_argument("--modes", default="retr1,retr20,login,grants")
    ap.add_argument("--grants", type=int, default=10000)
    ap.add_argument("--dovecot", action="store_true",
                    help="the peer too: rounds in turns, order flipped "
                    "every round (run as root)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--client", choices=("python", "c"), default="python",
                    help="c: bench/pop3_load, built by `make O=OBJ "
                    "OBJ/bench/pop3_load` (a client that is not the limit)")
    ap.add_argument("--obj", help="the build directory that holds "
                    "bench/pop3_load (default: the parent of --bin)")
    ap.add_argument("--strace", action="store_true",
                    help="count the servers' system calls per message or "
                    "login (strace -c -f; slows them: rates not comparable)")
    a = ap.parse_args()
    bindir = os.path.abspath(a.bin)
    a.load = os.path.join(os.path.abspath(a.obj or os.path.join(bindir,
                                                                "..")),
                          "bench", "pop3_load")
    if a.client == "c" and not os.access(a.load, os.X_OK):
        sys.exit(f"pop3d_bench: {a.load} missing: make O=OBJ "
                 "OBJ/bench/pop3_load")
    tmp = tempfile.mkdtemp(prefix="facteur-pop3bench.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    servers = []
    try:
        fac = Facteur(a, tmp, bindir)
        servers.append(fac)
        if a.dovecot:
            servers.append(Dovecot(a, tmp))
        cc = crypt_cost()
        print(f"crypt_cost sha512crypt_ms={cc * 1e3:.2f}", flush=True)
        res = {}
        for rnd in range(a.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for mode in a.modes.split(","):
                if mode == "grants":
                    grants_mode(a, fac)
                    continue
                for srv in order:
                    print(f"# round {rnd + 1} {mode} {srv.name}",
                          flush=True)
                    res.setdefault((mode, srv.name), []).append(
                        measure(a, srv, mode))
        if res:
            summary(res, a.rounds)
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def grants_mode(a, fac):
    """GRANTS logins from as many loopback addresses"""
    time.sleep(a.settle)
    c0 = cpu_of(fac.pid)
    wall, errs = grant_logins(fac.port, a.grants)
    time.sleep(1)
    used = cpu_of(fac.pid) - c0
    n = len(os.listdir(os.path.join(fac.root, "open-smtp")))
    print(f"pop3_grants logins={a.grants} distinct_ips={n} "
          f"wall_s={wall:.1f} logins_per_s={a.grants / wall:.1f}"
          f" errors={errs}", flush=True)
    print(f"pop3d_cpu mode=grants cpu_s={used:.2f} "
          f"per_unit_ms={used / a.grants * 1e3:.2f}", flush=True)


if __name__ == "__main__":
    main()
