#!/usr/bin/env python3
"""vpop_import.py - `vadmin import-vpopmail` of a big vpopmail tree (issue 14).

    bench/vpop_import.py --bin /tmp/vpop-bin [--users 10000] [--msgs 3]

Builds a vpopmail tree from vpopmail's documented layout
(tests/integration/vpoptree.py): USERS users over four domains, the big
one with vpopmail's hashed user directories (0/..9/..), hashes as
vpopmail leaves them (half MD5-crypt with the clear-text field, half
SHA-512-crypt without, 1% clear text only), MSGS messages each, aliases
and a catch-all. Then:

1. times `vadmin import-vpopmail` into a fresh root (default
   passwordscheme, yescrypt, for the clear-text-only users);
2. logs every user in over POP3 (pop3d on a free loopback port, USER/PASS,
   STAT) with the password of the old tree, and counts the failures and
   the users whose message count differs (both must be 0).

One line `NAME key=value ...` a result, as the other benches print.
"""
import argparse
import os
import poplib
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from vpoptree import OLD_HOME, Tree, crypt_hash, message  # noqa: E402

DOMAINS = ("big.test", "a.test", "b.test", "c.test")


def password(i):
    return f"old-Pass-{i}"


def build(top, users, msgs):
    """The tree; returns (tree, [(address, password, messages)])."""
    tr = Tree(top)
    rels = {d: tr.domain(d, catchall="bounce-no-mailbox") for d in DOMAINS}
    # a few salts, reused: building 10,000 distinct hashes in Python
    # would cost more than the import; every password still differs
    who = []
    body = [message(k) for k in range(msgs)]
    for i in range(users):
        d = DOMAINS[0] if i < users * 7 // 10 else DOMAINS[1 + i % 3]
        name = f"user{i}"
        pw = password(i)
        sub = str(i // 100 % 10) if d == DOMAINS[0] and i >= 100 else None
        if i % 100 == 99:
            crypted, clear = "", pw
        elif i % 2:
            crypted, clear = crypt_hash(pw, "$1$", f"s{i % 97:07d}"), pw
        else:
            crypted, clear = crypt_hash(pw, "$6$", f"salt{i % 89}"), None
        tr.user(rels[d], name, crypted, clear=clear, sub=sub,
                msgs=body[:2], cur=body[2:])
        who.append((f"{name}@{d}", pw, msgs))
    tr.qmail(rels[DOMAINS[0]], "info", f"&user0@{DOMAINS[0]}\n")
    tr.write(os.path.join(tr.home, rels[DOMAINS[1]]), ".qmail-default",
             f"| {OLD_HOME}/bin/vdelivermail '' delete\n", 0o644)
    assign, _ = tr.finish()
    return tr, assign, who


def logins(port, who, threads=4):
    """USER/PASS and STAT for every user; (failed logins, wrong counts)."""
    failed, wrong = [], []
    lock = threading.Lock()
    it = iter(who)

    def worker():
        while True:
            with lock:
                w = next(it, None)
            if w is None:
                return
            addr, pw, n = w
            try:
                p = poplib.POP3("127.0.0.1", port, timeout=60)
                p.user(addr)
                p.pass_(pw)
                count = p.stat()[0]
                p.quit()
            except (poplib.error_proto, OSError) as e:
                with lock:
                    failed.append((addr, str(e)))
                continue
            if count != n:
                with lock:
                    wrong.append((addr, count))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return failed, wrong


def options():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--msgs", type=int, default=3)
    return ap.parse_args()


def main():
    a = options()
    bindir = os.path.abspath(a.bin)
    # under /var/tmp, 0755: the mail user must reach the root and the tree
    tmp = tempfile.mkdtemp(prefix="facteur-vpopbench-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    srv = None
    try:
        root = os.path.join(tmp, "root")
        t0 = time.monotonic()
        tr, assign, who = build(os.path.join(tmp, "old"), a.users, a.msgs)
        print(f"vpop_tree users={a.users} messages={a.users * a.msgs} "
              f"build_s={time.monotonic() - t0:.1f}", flush=True)
        subprocess.run([f"{bindir}/facteur", "init", "--root", root,
                        "--dev"], check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        uid = gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("facteur")
            uid, gid = pw.pw_uid, pw.pw_gid
            tr.give(uid, gid)
        for name, text in (("listen.pop3", f"127.0.0.1:{port}\n"),
                           ("listen.pop3s", "")):
            p = os.path.join(root, "control", name)
            with open(p, "w") as f:
                f.write(text)
            if uid is not None:
                os.chown(p, uid, gid)
        subprocess.run(["sync"])
        t0 = time.monotonic()
        p = subprocess.run([f"{bindir}/vadmin", "--root", root,
                            "import-vpopmail", tr.home, "--assign", assign],
                           capture_output=True, text=True)
        dt = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        summary = p.stdout.strip().splitlines()[-1]
        print(f"vpop_import users={a.users} seconds={dt:.1f} "
              f"users_per_s={a.users / dt:.0f} summary=\"{summary}\"",
              flush=True)
        log = open(os.path.join(tmp, "pop3d.log"), "w")
        srv = subprocess.Popen([f"{bindir}/pop3d", "--root", root],
                               stdout=log, stderr=log,
                               start_new_session=True)
        while "listening on" not in open(log.name).read():
            if srv.poll() is not None:
                sys.exit(open(log.name).read())
            time.sleep(0.05)
        t0 = time.monotonic()
        failed, wrong = logins(port, who)
        dt = time.monotonic() - t0
        print(f"vpop_logins users={len(who)} failed={len(failed)} "
              f"wrong_count={len(wrong)} seconds={dt:.1f}", flush=True)
        for f in (failed + wrong)[:10]:
            print(f"  {f}", flush=True)
        return 1 if failed or wrong else 0
    finally:
        if srv and srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            srv.wait(30)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
