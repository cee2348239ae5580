#!/usr/bin/env python3
"""share_cost.py - what sharing grants and failed logins between hosts
costs the servers (issue 16; docs/scale-out.md, docs/performance.md).

    bench/share_cost.py --bin bin [--sessions 200]
        [--rounds 5]

A private PostgreSQL (tests/integration/helpers.Postgres) and two roots
served by mta-smtpd and pop3d daemons on loopback: "sqlite" (one host,
nothing shared) and "shared" (control/accountdb names the PostgreSQL,
`vadmin share` running, so the servers map db/fails.SERVICE and tell it
their failures). Neither relays for 127.0.0.1 (relayrules empty), so each
SMTP session (EHLO, MAIL, RCPT of a remote address, QUIT) is a client with
no grant, refused 553 after the grant check; each POP3 session is a
login (USER, PASS, QUIT), whose check of the address's failures reads
the shared table when there is one.
1. strace -f of each daemon over SESSIONS sessions: system calls per
   session by the servers on each root, and every connect() they made
   (none may reach the database's port);
2. the same sessions without strace, the roots taking turns for ROUNDS
   rounds: median wall time a session, and the ratio shared/sqlite;
   pop3d once more with the bridge stopped (bridge=off), which leaves
   the servers' own part of the cost.
Each result is one line `NAME key=value ...` with the load average.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import helpers  # noqa: E402

# openssl passwd -6 -salt benchsalt secret
HASH = ("$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe.UNsSK1b2j0LH"
        "SWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1")
SMTP = (b"EHLO client.example\r\nMAIL FROM:<a@remote.example>\r\n"
        b"RCPT TO:<b@remote.example>\r\nQUIT\r\n")
POP = b"USER u@bench.test\r\nPASS secret\r\nQUIT\r\n"


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Root:
    def __init__(self, a, tmp, name, accountdb=None):
        self.bin = os.path.abspath(a.bin)
        self.root = os.path.join(tmp, name)
        self.name = name
        self.procs = []
        self.run("facteur", "init", "--root", self.root, "--dev")
        self.port = {k: helpers.free_port() for k in ("smtp", "pop3")}
        files = {"relayrules": "", "me": name + ".bench\n",
                 "pop3plaintext": "1\n", "listen.submission": "",
                 "listen.smtps": "", "listen.pop3s": "",
                 "listen.smtp": f"127.0.0.1:{self.port['smtp']}\n",
                 "listen.pop3": f"127.0.0.1:{self.port['pop3']}\n",
                 "passwordscheme": "sha512crypt\n"}
        if accountdb:
            files["accountdb"] = accountdb + "\n"
        st = os.stat(os.path.join(self.root, "control"))
        for k, v in files.items():
            path = os.path.join(self.root, "control", k)
            with open(path, "w") as f:
                f.write(v)
            os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, 0o600 if k == "accountdb" else 0o644)
        self.run("mta-rules", "--root", self.root)
        self.run("vadmin", "--root", self.root, "adddomain", "bench.test",
                 inp="bench-pass\n")
        self.run("vadmin", "--root", self.root, "adduser", "u@bench.test",
                 "--hash", HASH)

    def run(self, prog, *args, inp=None):
        p = subprocess.run([os.path.join(self.bin, prog), *args], input=inp,
                           capture_output=True, text=True)
        assert p.returncode == 0, f"{self.name}: {prog} {args}: {p.stderr}"

    def start(self, prog, *args, wrap=(), port=None):
        """a daemon listening on port, or vadmin share, up when its log
        says so"""
        log = os.path.join(self.root, f"{prog}-{len(self.procs)}.log")
        with open(log, "wb") as f:
            p = subprocess.Popen([*wrap, os.path.join(self.bin, prog),
                                  "--root", self.root, *args],
                                 stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=f, start_new_session=True)
        helpers.wait_for(f"{prog} on {self.name}", lambda: (
            listening(port) if port else "sharing as" in open(
                log, errors="replace").read()) or p.poll() is not None, 60)
        assert p.poll() is None, open(log).read()
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.remove(p)


def listening(port):
    """whether 127.0.0.1:port is in LISTEN state (no probing session)"""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A"
                   for line in f.readlines()[1:])


def session(port, data, want):
    """one session, its wall time in ms; the reply text must hold want"""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(data)
        got = b""
        while not got.endswith((b"221 ", b"+OK bye")) and (
                b := c.recv(65536)):
            got += b
    assert want in got, got
    return (time.monotonic() - t0) * 1000


def syscalls(path):
    """system calls in an strace -f log, by name, and the connect lines"""
    n = collections.Counter()
    conn = []
    for line in open(path, errors="replace"):
        m = re.match(r"\d+\s+(\w+)\(", line)
        if m and "resumed>" not in line:
            n[m.group(1)] += 1
            if m.group(1) == "connect":
                conn.append(line.strip())
            if "fails." in line and m.group(1) == "openat":
                n["open_fails_file"] += 1
    return n, conn


def traced(r, prog, port, data, want, n, pgport):
    """syscalls a session of prog on root r, and its connects"""
    out = os.path.join(r.root, f"strace-{prog}")
    p = r.start(prog, wrap=("strace", "-f", "-qq", "-o", out), port=port)
    for _ in range(n):
        session(port, data, want)
    time.sleep(0.2)
    r.stop(p)
    counts, conn = syscalls(out)
    total = sum(counts.values()) - counts["open_fails_file"]
    bad = [c for c in conn if f"htons({pgport})" in c]
    # where the connects went: a Unix socket's path or an IP port
    to = collections.Counter(
        (re.search(r'sun_path="([^"]*)"|sin6?_port=htons\((\d+)\)', c)
         or re.search("()()", "")).group(1, 2) for c in conn)
    print(f"share_strace prog={prog} root={r.name} sessions={n} "
          f"syscalls_per_session={total / n:.1f} connects={len(conn)} "
          f"db_connects={len(bad)} fails_file_opens="
          f"{counts['open_fails_file']} connect_to="
          f"{sorted((x or y, k) for (x, y), k in to.items())} "
          f"load={load()}", flush=True)
    assert not bad, bad
    return total / n


def timed(a, roots, prog, kind, data, want, bridge="on"):
    """the sessions without strace, the roots taking turns"""
    ps = [r.start(prog, port=r.port[kind]) for r in roots]
    times = {r.name: [] for r in roots}
    for _ in range(a.rounds):
        for r in roots:
            times[r.name] += [session(r.port[kind], data, want)
                              for _ in range(a.sessions)]
    for r, p in zip(roots, ps):
        r.stop(p)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"share_session prog={prog} bridge={bridge} rounds={a.rounds} "
          f"sessions="
          f"{a.sessions} sqlite_median_ms={med['sqlite']:.3f} "
          f"shared_median_ms={med['shared']:.3f} ratio="
          f"{med['shared'] / med['sqlite']:.3f} load={load()}",
          flush=True)


class Scratch:
    """what helpers.Postgres wants of a test: a temporary directory"""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="facteur-bench-", dir="/var/tmp")
        os.chmod(self.tmp, 0o755)


def main():
    ap = argparse.ArgumentParser()
    for opt, default in (("--bin", "bin"), ("--sessions", 200),
                         ("--rounds", 5)):
        ap.add_argument(opt, default=default, type=type(default))
    a = ap.parse_args()
    # a SIGTERM (timeout, kill) still stops the servers and PostgreSQL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(111))
    ctx = Scratch()
    tmp = ctx.tmp
    pg = None
    roots = []
    try:
        pg = helpers.Postgres(ctx)
        roots = [Root(a, tmp, "sqlite"),
                 Root(a, tmp, "shared", pg.createdb("facteur"))]
        bridge = roots[1].start("vadmin", "share")
        jobs = [("mta-smtpd", "smtp", SMTP, b"553 5.7.1"),
                ("pop3d", "pop3", POP, b"+OK logged in")]
        for prog, kind, data, want in jobs:
            per = [traced(r, prog, r.port[kind], data, want, a.sessions,
                          pg.port) for r in roots]
            print(f"share_strace_ratio prog={prog} shared/sqlite="
                  f"{per[1] / per[0]:.3f}", flush=True)
            timed(a, roots, prog, kind, data, want)
        # the bridge and PostgreSQL share these cores (an upsert a login
        # whose grant is newer than the database's): without them, what
        # is left is the servers' own cost (db/fails.pop3 stays mapped)
        roots[1].stop(bridge)
        timed(a, roots, *jobs[1], bridge="off")
    finally:
        for r in roots:
            for p in list(r.procs):
                r.stop(p)
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
