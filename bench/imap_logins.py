#!/usr/bin/env python3
"""imap_logins.py - IMAP logins per second through Dovecot and vchkpw.

Makes a root (helpers.Ctx, facteur init) with USERS users of
example.test (vadmin import, the configured scheme: yescrypt unless
--scheme says sha512crypt), starts Dovecot with contrib/dovecot/
exactly as tests/integration/test_imap_dovecot.py does, and runs LOGINS
logins (connect, LOGIN, LOGOUT) from CLIENTS threads, twice: as
shipped (no auth cache: every login runs vchkpw, a fork and an exec)
and with Dovecot's auth cache on (auth_cache_size = 10M), where after
the first login of each user vchkpw is not run at all. Prints one line
per run: logins, seconds, logins/s, the CPU time of the vchkpw
processes per login (the reaped children of Dovecot's auth process) and
the load average, since the machine's other work shows in the rate.
Must run as root (Dovecot's master).

    bench/imap_logins.py [--bin build/rel/bin] [--users 100]
                         [--logins 1000] [--clients 4] [--scheme yescrypt]
"""
import argparse
import concurrent.futures
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import helpers  # noqa: E402
from test_imap_dovecot import Dovecot  # noqa: E402
from vadmin_util import put  # noqa: E402

D = "example.test"
PW = "bench-pass"


def stat(pid):
    """(comm, fields after it) of /proc/PID/stat"""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.index("(") + 1:text.rindex(")")], \
        text.rsplit(")", 1)[1].split()


def checkpassword_cpu(master):
    """user+system seconds of the reaped children of Dovecot's auth
    process (a child of MASTER): the vchkpw processes, each with the
    checkpassword-reply it became"""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm, f = stat(pid)
        except OSError:
            continue
        if comm == "auth" and int(f[1]) == master:
            return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run(dc, users, logins, clients):
    todo = list(range(logins))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            c = dc.imap()
            try:
                c.login(f"u{i % users}@{D}", PW)
                c.logout()
            except Exception as e:    # noqa: BLE001 - counted, reported
                errors.append(repr(e))

    cpu0 = checkpassword_cpu(dc.p.pid)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: worker(), range(clients)))
    took = time.monotonic() - t0
    time.sleep(1)       # the last sessions' processes reaped
    return took, checkpassword_cpu(dc.p.pid) - cpu0, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--logins", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--scheme", default="yescrypt")
    a = ap.parse_args()
    t = helpers.Ctx(os.path.abspath(a.bin))
    try:
        t.init()
        put(t, t.path("control", "passwordscheme"), a.scheme + "\n", 0o644)
        t.run("vadmin", "adddomain", D, input="pm-pw\n", check=0)
        imp = os.path.join(t.tmp, "users")
        with open(imp, "w") as f:
            for i in range(a.users):
                f.write(f"u{i}@{D} {PW}\n")
        t.run("vadmin", "import", imp, check=0)
        for name, extra in (("no cache (as shipped)", ""),
                            ("auth cache", "auth_cache_size = 10M\n"
                             "auth_cache_ttl = 1 hour\n")):
            dc = Dovecot(t, extra)
            try:
                run(dc, a.users, a.clients, a.clients)     # warm up
                took, cpu, errors = run(dc, a.users, a.logins, a.clients)
            finally:
                dc.stop()
            print(f"imap_logins {name}: {a.logins} logins, {a.clients} "
                  f"clients, {a.scheme}: {took:.2f} s, "
                  f"{a.logins / took:.0f} logins/s, checkpassword CPU "
                  f"{cpu / a.logins * 1000:.1f} ms a login, load "
                  f"{os.getloadavg()[0]:.1f}"
                  + (f", {len(errors)} errors: {errors[0]}" if errors
                     else ""), flush=True)
    finally:
        t.cleanup()


if __name__ == "__main__":
    main()
