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

    bench/pop3d_bench.py [--bin bin] [--users 100] [--msgs 100]
                         [--logins 2000] [--login-users 1000] [--settle 60]
                         [--modes retr1,retr20,login,grants] [--grants N]
"""
import argparse
import crypt  # noqa: deprecated in 3.11 but present; only for crypt_cost
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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
    a = ap.parse_args()
    bindir = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="facteur-pop3bench.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "root")
    srv = None
    try:
        run([f"{bindir}/facteur", "init", "--root", root, "--dev"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ctl = {"passwordscheme": "sha512crypt\n",
               "listen.pop3": f"127.0.0.1:{port}\n", "listen.pop3s": ""}
        for name, text in ctl.items():
            p = os.path.join(root, "control", name)
            with open(p, "w") as f:
                f.write(text)
            if os.geteuid() == 0:
                pw = pwd.getpwnam("facteur")
                os.chown(p, pw.pw_uid, pw.pw_gid)
        run([f"{bindir}/vadmin", "--root", root, "adddomain",
             "example.test"], input="bench-pass\n")
        imp = os.path.join(tmp, "users.txt")
        with open(imp, "w") as f:
            for i in range(1, max(a.users, a.login_users) + 1):
                f.write(f"user{i}@example.test bench-pass\n")
        os.chmod(imp, 0o644)
        run([f"{bindir}/vadmin", "--root", root, "import", imp])
        log = open(os.path.join(tmp, "pop3d.log"), "w")
        srv = subprocess.Popen([f"{bindir}/pop3d", "--root", root],
                               stdout=log, stderr=log,
                               start_new_session=True)
        while True:
            with open(log.name) as f:
                if "listening on" in f.read():
                    break
            if srv.poll() is not None:
                sys.exit(open(log.name).read())
            time.sleep(0.05)
        cc = crypt_cost()
        print(f"crypt_cost sha512crypt_ms={cc * 1e3:.2f}", flush=True)
        client = [sys.executable, os.path.join(SHARED, "pop3_bench.py"),
                  "127.0.0.1", str(port), "--password", "bench-pass",
                  "--settle", str(a.settle)]
        fill = [sys.executable, os.path.join(SHARED, "maildir_fill.py"),
                os.path.join(root, "domains"), "-u", str(a.users), "-n",
                str(a.msgs), "-l", "4096", "--clean"]
        for mode in a.modes.split(","):
            if mode == "grants":
                time.sleep(a.settle)
                c0 = cpu_of(srv.pid)
                wall, errs = grant_logins(port, a.grants)
                time.sleep(1)
                used = cpu_of(srv.pid) - c0
                n = len(os.listdir(os.path.join(root, "open-smtp")))
                print(f"pop3_grants logins={a.grants} distinct_ips={n} "
                      f"wall_s={wall:.1f} logins_per_s={a.grants / wall:.1f}"
                      f" errors={errs}", flush=True)
                print(f"pop3d_cpu mode=grants cpu_s={used:.2f} "
                      f"per_unit_ms={used / a.grants * 1e3:.2f}", flush=True)
                continue
            if mode.startswith("retr"):
                run(fill)
                args = ["--mode", "retr", "-u", str(a.users), "-p",
                        mode[4:]]
                units = a.users * a.msgs
            else:
                args = ["--mode", "login", "-u", str(a.login_users), "-p",
                        "20",
                        "--logins", str(a.logins)]
                units = a.logins
            c0 = cpu_of(srv.pid)
            out = run(client + args)
            time.sleep(1)  # the last sessions reaped: their CPU counted
            used = cpu_of(srv.pid) - c0
            print(out.strip(), flush=True)
            print(f"pop3d_cpu mode={mode} cpu_s={used:.2f} "
                  f"per_unit_ms={used / units * 1e3:.2f}", flush=True)
    finally:
        if srv and srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(srv.pid, signal.SIGKILL)
                srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
