#!/usr/bin/env python3
"""doctor_bench.py - `facteur doctor` on a big root (issue 14).

    bench/doctor_bench.py --bin BIN --root DIR --build [--queue-fill PROG]
    bench/doctor_bench.py --bin BIN --root DIR [--runs 3]

--build makes DIR (it must not exist): `facteur init --dev`, DOMAINS
domains (`vadmin adddomain`, sha512crypt so that it is quick), USERS
users spread evenly over them (`vadmin import` of ready `$6$` hashes),
and QUEUE deferred messages to a remote domain (bench/queue_fill, built
with `make O=OBJ OBJ/bench/queue_fill`). It takes some minutes; run it
as root (the root's mail user is made by init).

Without --build, times `facteur doctor --root DIR` (wall clock, median
of RUNS) for each of:
  resolver up    dnsmasq on a free loopback port (control/resolvers)
                 answering every domain's MX (mx.DOMAIN, an A record of
                 127.0.0.1, where --dev's listen.smtp is) and the queue's
                 remote domain (its MX on 127.0.0.2, nothing listening)
  resolver down  a loopback UDP port that takes the questions and never
                 answers
each cold (sync; echo 3 > /proc/sys/vm/drop_caches before every run;
needs root) and warm (after one untimed run). Every run's per-check
times come from doctor's --timing (stderr); --no-timing for a doctor
that has no such flag (an older build, for comparison). One line per case:
`doctor_bench resolver=up cache=cold runs=3 median_s=... all_s=...`,
then the median run's slowest checks.

The machine may be shared: the median of RUNS is what is reported.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# openssl passwd -6 -salt benchsalt secret
HASH = ("$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe.UNsSK1b2j0LH"
        "SWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1")
DNSMASQ = "/usr/sbin/dnsmasq"
REMOTE = "remote.bench"


def domain(i):
    return f"d{i:04d}.bench"


def build(a, bin_):
    vadmin = os.path.join(bin_, "vadmin")
    run = lambda *c, **k: subprocess.run(c, check=True, **k)  # noqa: E731
    t0 = time.monotonic()
    run(os.path.join(bin_, "facteur"), "init", "--root", a.root, "--dev",
        capture_output=True)
    with open(os.path.join(a.root, "control", "passwordscheme"), "w") as f:
        f.write("sha512crypt\n")
    for i in range(a.domains):
        run(vadmin, "--root", a.root, "adddomain", domain(i), "bench-pw-1",
            capture_output=True)
    print(f"build: {a.domains} domains in {time.monotonic() - t0:.0f} s",
          flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        for i in range(a.users):
            f.write(f"u{i}@{domain(i % a.domains)} {HASH}\n")
        f.flush()
        os.chmod(f.name, 0o644)
        run(vadmin, "--root", a.root, "import", f.name, capture_output=True)
    print(f"build: {a.users} users in {time.monotonic() - t0:.0f} s",
          flush=True)
    if a.queue:
        run(a.queue_fill, a.root, str(a.queue), f"someone@{REMOTE}")
        run("chown", "-R", "--reference", os.path.join(a.root, "queue"),
            os.path.join(a.root, "queue"))
    print(f"build: {a.queue} queued in {time.monotonic() - t0:.0f} s",
          flush=True)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def set_resolvers(root, port):
    with open(os.path.join(root, "control", "resolvers"), "w") as f:
        f.write(f"127.0.0.1:{port}\n")


def count_domains(root):
    out = subprocess.run(["sqlite3", os.path.join(root, "db",
                                                  "accounts.sqlite"),
                          "SELECT name FROM domains"], check=True,
                         capture_output=True, text=True).stdout
    return out.split()


def start_dnsmasq(root, tmp):
    """dnsmasq answering every domain's MX; its process"""
    port = free_udp_port()
    conf = os.path.join(tmp, "dnsmasq.conf")
    with open(conf, "w") as f:
        f.write("local=/bench/\n")
        for d in count_domains(root):
            f.write(f"mx-host={d},mx.{d},10\nhost-record=mx.{d},127.0.0.1\n")
        f.write(f"mx-host={REMOTE},mx.{REMOTE},10\n"
                f"host-record=mx.{REMOTE},127.0.0.2\n")
    log = os.path.join(tmp, "dnsmasq.log")
    p = subprocess.Popen([DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts",
                          f"--conf-file={conf}", "--pid-file=",
                          f"--port={port}", "--listen-address=127.0.0.1",
                          "--bind-interfaces"], stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    end = time.monotonic() + 20
    while b"started, version" not in open(log, "rb").read():
        if p.poll() is not None or time.monotonic() > end:
            sys.exit("dnsmasq did not start: " + open(log).read())
        time.sleep(0.05)
    set_resolvers(root, port)
    return p


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def one_run(facteur, root, cold, timing=True):
    if cold:
        drop_caches()
    t0 = time.monotonic()
    p = subprocess.run([facteur, "doctor", "--root", root] +
                       (["--timing"] if timing else []),
                       capture_output=True, text=True)
    dt = time.monotonic() - t0
    times = {}
    for line in p.stderr.splitlines():
        w = line.split()
        if len(w) == 4 and w[1] == "timing":
            times[w[2]] = int(w[3])
    return dt, p.returncode, times, p.stdout


def measure(a, facteur, resolver, cache):
    runs = []
    if cache == "warm":
        one_run(facteur, a.root, False, not a.no_timing)
    for _ in range(a.runs):
        runs.append(one_run(facteur, a.root, cache == "cold",
                            not a.no_timing))
    walls = [r[0] for r in runs]
    med = statistics.median(walls)
    mid = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    slow = sorted(mid[2].items(), key=lambda kv: -kv[1])[:5]
    print(f"doctor_bench resolver={resolver} cache={cache} runs={a.runs} "
          f"median_s={med:.1f} all_s={','.join(f'{w:.1f}' for w in walls)} "
          f"exit={mid[1]} slowest_ms="
          + ",".join(f"{k}:{v}" for k, v in slow), flush=True)
    for r in runs:
        for line in r[3].splitlines():
            if line.startswith("FAIL"):
                print("  " + line[:300], flush=True)
    if a.verbose:
        print(mid[3], flush=True)


def bench(a, bin_):
    facteur = os.path.join(bin_, "facteur")
    tmp = tempfile.mkdtemp(prefix="doctor-bench-")
    resolvers = os.path.join(a.root, "control", "resolvers")
    saved = open(resolvers).read() if os.path.exists(resolvers) else None
    try:
        if "up" in a.resolver:
            dns = start_dnsmasq(a.root, tmp)
            try:
                for cache in a.cache:
                    measure(a, facteur, "up", cache)
            finally:
                dns.terminate()
                dns.wait(timeout=10)
        if "down" in a.resolver:
            # bound and never read: questions are taken, never answered
            mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            mute.bind(("127.0.0.1", 0))
            set_resolvers(a.root, mute.getsockname()[1])
            try:
                for cache in a.cache:
                    measure(a, facteur, "down", cache)
            finally:
                mute.close()
    finally:
        if saved is None:
            os.unlink(resolvers)
        else:
            with open(resolvers, "w") as f:
                f.write(saved)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--root", required=True)
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--queue", type=int, default=100000)
    ap.add_argument("--queue-fill", default="build/rel/bench/queue_fill")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--resolver", nargs="+", default=["up", "down"])
    ap.add_argument("--cache", nargs="+", default=["warm", "cold"])
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--no-timing", action="store_true",
                    help="a doctor without --timing (before issue 14)")
    a = ap.parse_args()
    a.root = os.path.abspath(a.root)
    bin_ = os.path.abspath(a.bin)
    if a.build:
        build(a, bin_)
    else:
        bench(a, bin_)


if __name__ == "__main__":
    main()
