#!/usr/bin/env python3
"""queue_scale_1m - mta-send and mta-qstat with a million queued messages.

    python3 bench/queue_scale_1m.py --bin bin --obj build/rel [--total 1000000]
        [--drain 20000] [--root /var/tmp/facteur-qscale] [--settle 10]

Fills a root's queue with --total messages for an unreachable remote
domain, as mta-send leaves them after one deferred try (build/rel/bench/
queue_fill), then measures, with that queue:
  - mta-send's start-up (the queue check reads every file) and its memory
    (VmRSS and VmHWM);
  - mta-qstat's time, with mta-send running (queue/stat) and without it
    (counting directory entries);
  - the latency of a new local message, mta-inject until the file is in the
    Maildir's new/ (10 messages);
  - the drain rate once the destination is back: smtp-sink starts on the
    route's address, SIGALRM makes every message due, and the rate is the
    first --drain messages delivered over the time they took;
and the same drain on a queue of only --drain messages, the empty-queue
rate the issue compares with. Prints one `queue_scale_1m key=value` line.
Needs Postfix's smtp-sink (../shared/bench/peers/install.sh puts it here).
"""
import argparse
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.9", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def setup(args, root, n):
    shutil.rmtree(root, ignore_errors=True)
    b = args.bin
    run([f"{b}/facteur", "init", "--root", root, "--dev"])
    run([f"{b}/vadmin", "--root", root, "adddomain", "example.test", "pw"])
    run([f"{b}/vadmin", "--root", root, "adduser", "u@example.test", "pw"])
    port = free_port()
    with open(f"{root}/control/smtproutes", "w") as f:
        f.write("unreachable.test:127.0.0.9\n")
    with open(f"{root}/control/remoteport", "w") as f:
        f.write(f"{port}\n")
    fill = [f"{args.obj}/bench/queue_fill", root, str(n),
            "x@unreachable.test", "1024", "3600"]
    if os.geteuid() == 0:
        pw = pwd.getpwnam("facteur")
        fill = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                "--clear-groups"] + fill
    t0 = time.monotonic()
    subprocess.run(fill, check=True)
    dt = time.monotonic() - t0
    # the fill's dirty pages out of the way, so that neither drain pays
    # for writing back the other's set-up
    os.sync()
    time.sleep(args.settle)
    return port, dt


def qstat(args, root):
    t0 = time.monotonic()
    out = run([f"{args.bin}/mta-qstat", "--root", root]).stdout.decode()
    dt = time.monotonic() - t0
    return int(re.search(r"messages in queue: (\d+)", out).group(1)), dt


def start_send(args, root):
    log = open(f"{root}/send.log", "wb")
    p = subprocess.Popen([f"{args.bin}/mta-send", "--root", root],
                         stdout=log, stderr=log)
    t0 = time.monotonic()
    while True:
        with open(f"{root}/send.log", "rb") as f:
            if b"queue check done:" in f.read():
                break
        if p.poll() is not None:
            sys.exit("mta-send died")
        time.sleep(0.05)
    return p, time.monotonic() - t0


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024
    return out


def local_latency(args, root, n=10):
    new = f"{root}/domains/example.test/u/Maildir/new"
    lat = []
    for i in range(n):
        before = len(os.listdir(new))
        t0 = time.monotonic()
        subprocess.run([f"{args.bin}/mta-inject", "--root", root, "-f",
                        "b@example.org", "u@example.test"],
                       input=b"Subject: l\n\nx\n", check=True)
        while len(os.listdir(new)) <= before:
            if time.monotonic() - t0 > 30:
                sys.exit("local message not delivered in 30 s")
            time.sleep(0.001)
        lat.append(time.monotonic() - t0)
        time.sleep(0.1)
    return statistics.median(lat), max(lat)


def drain(args, root, port, send, total, count):
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["smtp-sink"] + user + [f"127.0.0.9:{port}",
                             "1000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    t0 = time.monotonic()
    send.send_signal(signal.SIGALRM)
    left = total
    while total - left < count:
        time.sleep(0.2)
        left, _ = qstat(args, root)
        if time.monotonic() - t0 > 3600:
            break
    dt = time.monotonic() - t0
    sink.terminate()
    sink.wait()
    return (total - left) / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--obj", default="build/rel")
    ap.add_argument("--total", type=int, default=1000000)
    ap.add_argument("--drain", type=int, default=20000)
    ap.add_argument("--root", default="/var/tmp/facteur-qscale")
    ap.add_argument("--settle", type=float, default=10)
    args = ap.parse_args()
    res = {}
    # the empty-queue drain rate first
    small = args.root + "-small"
    port, _ = setup(args, small, args.drain)
    send, _ = start_send(args, small)
    res["empty_drain_msgs_per_s"] = drain(args, small, port, send,
                                          args.drain, args.drain)
    send.terminate()
    send.wait()
    shutil.rmtree(small, ignore_errors=True)
    # the full queue
    port, fill_s = setup(args, args.root, args.total)
    res["fill_s"] = fill_s
    n, dt = qstat(args, args.root)
    assert n == args.total, n
    res["qstat_counting_ms"] = dt * 1000
    send, start_s = start_send(args, args.root)
    res["send_start_s"] = start_s
    time.sleep(1)
    ts = []
    for _ in range(5):
        n, dt = qstat(args, args.root)
        ts.append(dt)
    assert n >= args.total, n
    res["qstat_ms"] = statistics.median(ts) * 1000
    m = mem(send.pid)
    res["send_rss_mb"] = m["VmRSS"]
    res["send_hwm_mb"] = m["VmHWM"]
    med, worst = local_latency(args, args.root)
    res["local_latency_ms"] = med * 1000
    res["local_latency_max_ms"] = worst * 1000
    res["full_drain_msgs_per_s"] = drain(args, args.root, port, send,
                                         args.total, args.drain)
    res["drain_ratio"] = (res["full_drain_msgs_per_s"] /
                          res["empty_drain_msgs_per_s"])
    m = mem(send.pid)
    res["send_hwm_after_drain_mb"] = m["VmHWM"]
    send.terminate()
    send.wait()
    print("queue_scale_1m total=%d " % args.total +
          " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
