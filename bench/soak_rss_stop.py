"""soak_rss_stop - where mta-send's RSS goes after a backlog (issue 15).

The soak's load (tests/hostile/soak.py) without kills or faults; after
PRE seconds mta-send is stopped (SIGSTOP) for STOP seconds, so that the
mail of that time waits in queue/new as it does during a restart
backoff, then resumed, and the load goes on for POST seconds. Every 3 s
one line: [seconds, mta-send pid, VmRSS KiB, RssAnon KiB, RssFile KiB,
messages in queue/new, client attempts so far, event]. Then, idle, gdb
calls malloc_stats() (its lines land in log/current) and malloc_trim(0)
in mta-send, and RSS is sampled again: heap in use against heap held.

  python3 bench/soak_rss_stop.py BINDIR [PRE STOP POST]   # root; gdb
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "hostile"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import helpers  # noqa: E402
import soak  # noqa: E402
from hostile_net import System  # noqa: E402


def main():
    bindir = os.path.abspath(sys.argv[1])
    pre, stop_s, post = (int(x) for x in (sys.argv[2:5] or (60, 40, 90)))
    t = helpers.Ctx(bindir)
    mxs = [helpers.MX(mode="accept"),
           helpers.MX(mode="accept", rcpt=soak.Refuse(x="")),
           helpers.MX(mode="tempfail")]
    soak.setup(t, mxs, 0)
    s = System(t, timeout=30, quarantine_mb=0)
    book, stop, cstop = soak.Book(), threading.Event(), threading.Event()
    rng = random.Random(1)
    th = [threading.Thread(target=soak.loop, args=(stop, book, n, fn, p),
                           daemon=True) for n, fn, p in (
        ("mx", lambda: soak.mx_one(s, book), 0.02),
        ("mx2", lambda: soak.mx_one(s, book), 0.02),
        ("submit", lambda: soak.submit_one(s, book), 0.05),
        ("inject", lambda: soak.inject_one(s, book), 0.5),
        ("pop", lambda: soak.pop_user(s, book, rng.randrange(20)), 0.1))]
    th.append(threading.Thread(target=soak.Chaos(s, False, rng).flip,
                               args=(cstop, mxs[2], 60.0), daemon=True))
    t0 = time.monotonic()

    def sample(tag=""):
        pids = s.pids("mta-send")
        v = soak.rss_fds(pids[0]) if pids else None
        print(json.dumps([round(time.monotonic() - t0),
                          pids[0] if pids else None,
                          v and v[0] // 1024, v and v[2] // 1024,
                          v and v[3] // 1024, soak.backlog(t), book.n,
                          tag]), flush=True)

    def sampler():
        while not stop.wait(3):
            sample()

    for x in th:
        x.start()
    threading.Thread(target=sampler, daemon=True).start()
    time.sleep(pre)
    pid = s.pids("mta-send")[0]
    os.kill(pid, signal.SIGSTOP)
    sample("SIGSTOP")
    time.sleep(stop_s)
    os.kill(pid, signal.SIGCONT)
    sample("SIGCONT")
    time.sleep(post)
    stop.set()
    cstop.set()
    mxs[2].mode = "accept"
    time.sleep(20)
    sample("idle")
    for expr, tag in (("call (void)malloc_stats()", "after malloc_stats"),
                      ("call (int)malloc_trim(0)", "after malloc_trim")):
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", expr],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
        time.sleep(1)
        sample(tag)
    print("\n".join(x for x in s.log().splitlines()
                    if re.search(r"system bytes|in use bytes", x)))
    s.stop()
    for m in mxs:
        m.close()
    print("accepted", len(book.accepted))
    t.cleanup()


if __name__ == "__main__":
    main()
