#!/usr/bin/env python3
"""accept_syscalls.py - mta-smtpd's system calls per accepted message.

    python3 bench/accept_syscalls.py --bin build/rel/bin [-m 200] [--pool]

A scratch root (example.test, user1..user3), then one `mta-smtpd --inetd`
session from 127.0.0.1 (a relay client, as the e2e bench's sessions are)
that sends -m messages of 4 KiB, one recipient each, under `strace -c -f`;
and a session of one message. The difference, divided by m - 1, is what
one more message costs the accept path: the session's start-up and end
drop out. The input is given at once, so reads and writes to the client
are fewer than over a socket that waits for each reply; the rest (queue
file, fsyncs, table lookups, control files) is what each message does.
Prints one line `accept syscalls_per_msg=N fsync=F` and the commonest calls.
Counts do not depend on the machine's load.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

BODY = (b"Subject: t\r\nFrom: a@remote.example\r\n\r\n" +
        (b"x" * 76 + b"\r\n") * 52)


def session(n):
    s = b"EHLO c\r\n"
    for i in range(n):
        s += (b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<user%d@example.test>"
              b"\r\nDATA\r\n" % (i % 3 + 1)) + BODY + b".\r\n"
    return s + b"QUIT\r\n"


def counts(path):
    """strace -c's table: {call: count}"""
    out = {}
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) >= 5 and w[0][0].isdigit() and w[-1] != "total":
                out[w[-1]] = int(w[3])
    return out


def traced(a, root, tmp, n):
    out = os.path.join(tmp, f"strace.{n}")
    env = dict(os.environ, TCPREMOTEIP="127.0.0.1")
    env.pop("FACTEUR_ROOT", None)
    p = subprocess.run(["strace", "-c", "-f", "-o", out,
                        os.path.join(a.bin, "mta-smtpd"), "--root", root,
                        "--inetd"], input=session(n), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    got = p.stdout.count(b"\r\n250 2.0.0 ok ")
    if got != n:
        sys.exit(f"accept_syscalls: {got} of {n} messages accepted")
    return counts(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("-m", "--count", type=int, default=200)
    ap.add_argument("--pool", action="store_true",
                    help="with an empty queue/pool/ (else none yet)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="accept-sys.", dir="/var/tmp")
    os.chmod(tmp, 0o755)    # the mail user reaches the root below it
    try:
        root = os.path.join(tmp, "root")
        run = lambda *x, **k: subprocess.run(  # noqa: E731
            [os.path.join(a.bin, x[0]), "--root", root, *x[1:]], check=True,
            stdout=subprocess.DEVNULL, **k)
        run("facteur", "init", "--dev")
        run("vadmin", "adddomain", "example.test", input=b"pw\n")
        for i in (1, 2, 3):
            run("vadmin", "adduser", f"user{i}@example.test", "pw")
        if a.pool:
            # an empty queue/pool/, as after mta-send's first message
            # while accept outruns delivery (lib/queue.c, pool_take)
            q = os.stat(os.path.join(root, "queue", "tmp"))
            os.mkdir(os.path.join(root, "queue", "pool"), 0o700)
            os.chown(os.path.join(root, "queue", "pool"), q.st_uid, q.st_gid)
        many, one = traced(a, root, tmp, a.count), traced(a, root, tmp, 1)
        per = {k: (many.get(k, 0) - one.get(k, 0)) / (a.count - 1)
               for k in set(many) | set(one)}
        top = sorted(((v, k) for k, v in per.items() if v > 0.004),
                     reverse=True)
        print(f"accept syscalls_per_msg={sum(per.values()):.1f} "
              f"fsync={per.get('fsync', 0):.2f}")
        print("  " + ", ".join(f"{k} {v:.2f}" for v, k in top))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
