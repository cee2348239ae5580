#!/usr/bin/env python3
"""smtp_compare.py - mta-smtpd against Postfix's smtpd, side by side in one run.

    python3 bench/smtp_compare.py --bin build/bench/bin [--modes accept,queue,memory,e2e]
        [--rounds 3] [--deliver-rounds 1] [--settle 30] [-m 5000] [--sessions 20,1]
        [--postfix hold,deliver] [--queue-total 100000] [--idle 100,1000] [--out FILE]
        [--e2e-rounds 5] [--e2e-count 5000] [--e2e-cases 20x1000,1x1000,50x50,20x20]
        [--e2e-conc 10,20] [--obj BUILD_DIR]

Run as root (the Postfix peer starts as root; mta-smtpd binds as root and
becomes the mail user), with Debian's postfix installed
(../shared/bench/peers/install.sh). Not run by `make bench`: the default run
takes about 25 minutes. Every result line is a shared bench result line with
`server=..`, `round=..` and the server's own CPU per message appended; the
accept mode ends with a summary (medians and ratios).

accept  A scratch Facteur root (example.test, user1..user1000, as the peers)
        and mta-smtpd alone on a free loopback port: no scheduler, so every
        accepted message stays in queue/new, fsynced (file, then queue/new/)
        before the 250. A private Postfix from ../shared/bench/peers/
        (postfix-setup.sh with its own BENCH_ROOT and port). Postfix "hold":
        `smtpd_client_restrictions = check_client_access static:HOLD`, so
        cleanup(8) writes (and fsyncs) each message into the hold queue and
        qmgr never touches it, the counterpart of Facteur's queue/new with
        no mta-send. ROUNDS rounds; in each,
        for every session count, the two servers take turns (the order
        flips every round), each run after --settle seconds of quiet.
        smtp-source sends -m messages of 4096 bytes to user1@example.test,
        one connection per message. Nothing is deleted between these runs
        (the queues grow), see accept_mode. Then Postfix "deliver": the stock
        setup, virtual(8) delivering meanwhile, measured with smtp_e2e.py as
        run-baseline.sh does, --deliver-rounds times.
queue   A second, fresh Facteur root: queue_scale.py against mta-smtpd
        alone, nothing draining (--hold and --release are `true`):
        --queue-total messages in chunks of --queue-chunk, first vs last
        chunk, then `mta-qstat` (and `ls -f | wc -l`) timed on the full
        queue.
memory  N idle sessions (greeting read, nothing sent) to mta-smtpd for each
        N of --idle, maxsessions and maxperip N+1: RSS, PSS and private dirty
        memory of the session processes from /proc/PID/smaps_rollup, the drop
        of MemAvailable, then client N+1 must get a 220.

e2e     End to end (issue 17): `facteur run` (mta-smtpd, mta-send with its
        vdeliver server), once for each --e2e-conc value of
        concurrencylocal (default 10, SPEC.md's default, and 20, what
        Postfix runs at once to one domain), against Postfix delivering
        with virtual(8). For each case SESSIONSxUSERS of --e2e-cases
        (default 20x1000, 1x1000, 50x50, 20x20): --e2e-count messages of
        4 KiB (5000), one a connection and one recipient each, spread
        evenly over user1..userUSERS by bench/smtp_spread (smtp-source sends
        to one address only); --e2e-rounds rounds (5), the servers taking
        turns in an order that turns round every round, each run after
        --settle seconds and with the recipients' new/ emptied first. Each
        run: messages per second from the first connection until the last
        file is in new/, the accept rate (until the last 250), their ratio,
        the server's CPU per message and the load average at its start;
        and how busy the whole machine was (over the run, while the client
        sent, after it: /proc/stat), its busy CPU per message and the
        client's own (its rusage), so that a run bound by the CPUs shows
        as one; then medians and per-round ratios.

The modes run in the order queue, accept, memory, e2e; then (with accept or
e2e) the
fsync probe of ../shared/bench/fsync-probe.sh in a fresh directory beside
the queues (10 s, 1 and 20 writers, plain and -u), last because its -u
runs delete thousands of files, which slows file creation nearby for a
minute or more on ext4 without a journal.
"""
import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))
HASH = ("$6$benchsalt$q9MuV9hhfkGoXDS1AtvptzAA/r/DjSa7mIywLZFUe"
        ".UNsSK1b2j0LHSWWb4kMOM/W0qWeW4vyTY5T17yMWHcE1")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs=20):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"smtp_compare: nothing listens on 127.0.0.1:{port}")


def parse(line):
    f = {}
    for kv in line.split()[1:]:
        k, _, v = kv.partition("=")
        f[k] = v
    return f


class Facteur:
    def __init__(self, a, tmp, name="facteur"):
        self.bin = os.path.abspath(a.bin)
        self.root = os.path.join(tmp, name)
        self.port = free_port()
        self.proc = None
        subprocess.run([f"{self.bin}/facteur", "init", "--root", self.root, "--dev"],
                       check=True, stdout=subprocess.DEVNULL)
        ctl = os.path.join(self.root, "control")
        self.ctl("listen.smtp", f"127.0.0.1:{self.port}")
        # only the port under test: no submission/smtps listeners
        self.ctl("listen.submission", "")
        self.ctl("listen.smtps", "")
        # one client address opens 20 connections back to back; a session
        # that has answered QUIT may not be reaped yet when the next comes
        self.ctl("maxperip", "1000")
        subprocess.run([f"{self.bin}/vadmin", "--root", self.root, "adddomain",
                        "example.test"], input=b"bench-pass\n", check=True)
        users = os.path.join(tmp, "users.txt")
        with open(users, "w") as f:
            for i in range(1, 1001):
                f.write(f"user{i}@example.test {HASH}\n")
        subprocess.run([f"{self.bin}/vadmin", "--root", self.root, "import", users],
                       check=True, stdout=subprocess.DEVNULL)
        self.new = os.path.join(self.root, "queue", "new")
        assert os.path.isdir(ctl)

    def ctl(self, name, text):
        with open(os.path.join(self.root, "control", name), "w") as f:
            f.write(text + ("\n" if text else ""))

    def start(self):
        log = open(os.path.join(self.root, "log", "smtpd.log"), "ab")
        self.proc = subprocess.Popen([f"{self.bin}/mta-smtpd", "--root", self.root],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_port(self.port)
        note(f"mta-smtpd pid {self.proc.pid} on 127.0.0.1:{self.port}, root {self.root}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.proc = None

    def queued(self):
        return len(os.listdir(self.new))

    def empty(self):
        """the accept runs' messages out of the queue (mta-send is not
        running then), so that e2e starts from an empty queue"""
        for f in os.listdir(self.new):
            os.unlink(os.path.join(self.new, f))


class Postfix:
    def __init__(self, a, tmp):
        self.peers = os.path.join(a.shared, "peers")
        self.root = os.path.join(tmp, "peers")
        self.port = free_port()
        self.conf = os.path.join(self.root, "postfix", "etc")
        self.env = dict(os.environ, BENCH_ROOT=self.root, SMTP_PORT=str(self.port),
                        BENCH_DOMAINS="example.test")
        self.running = False
        self.mode = "deliver"

    def start(self):
        subprocess.run([os.path.join(self.peers, "postfix-setup.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        self.running = True

    def stop(self):
        if self.running:
            subprocess.run([os.path.join(self.peers, "postfix-stop.sh"), self.root],
                           env=self.env, stdout=sys.stderr)
        self.running = False

    def master(self):
        with open(os.path.join(self.root, "postfix", "queue", "pid", "master.pid")) as f:
            return int(f.read().strip())

    def postconf(self, setting):
        subprocess.run(["postconf", "-c", self.conf, "-e", setting], check=True)
        if not self.running:
            return      # read when it starts (e2e after accept)
        subprocess.run(["postfix", "-c", self.conf, "reload"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)

    def set_mode(self, mode):
        if mode == self.mode:
            return
        if mode == "hold":
            self.postconf("smtpd_client_restrictions=check_client_access static:HOLD")
        else:
            self.postconf("smtpd_client_restrictions=")
        self.mode = mode

    def empty(self):
        subprocess.run(["postsuper", "-c", self.conf, "-d", "ALL"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def queued(self):
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.root, "postfix", "queue", q)):
                n += len(files)
        return n


def shared(a, script, *args):
    """Run a shared bench script; return its last stdout line (the result)."""
    cmd = [sys.executable, os.path.join(a.shared, script), *map(str, args)]
    note("+ " + " ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = r.stdout.strip().splitlines()
    return lines[-1] if lines else f"{script.split('.')[0]} failed=1 rc={r.returncode}"


def proc_stats():
    """{pid: the fields of /proc/PID/stat after the command name}"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        out[int(d)] = s[s.rindex(")") + 2:].split()
    return out


def tree_cpu(root):
    """CPU seconds of ROOT and its descendants, live and reaped: every live
    process's utime+stime+cutime+cstime (mta-smtpd and mta-send reap their
    session and delivery children, facteur run its services). Differences
    of two calls are the server's CPU meanwhile."""
    if root is None:
        return 0.0
    stat = proc_stats()
    kids = {}
    for pid, v in stat.items():
        kids.setdefault(int(v[1]), []).append(pid)
    if root not in stat:
        return 0.0
    tot, todo = 0, [root]
    while todo:
        p = todo.pop()
        v = stat[p]
        # its own time and that of the children it has reaped (a live
        # process's cutime never holds a live process: no double count)
        tot += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
        todo.extend(kids.get(p, []))
    return tot / os.sysconf("SC_CLK_TCK")


def emit(line, out, **tags):
    line = line + "".join(f" {k}={v}" for k, v in tags.items())
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
    return line


def fsync_probe(a, d, out):
    """The disk's durable creations a second in this run; a message costs
    two (its queue file, its Maildir file), so half the 20-writer churn
    figure is the ceiling the e2e rates are set against."""
    probe = os.path.join(a.shared, "fsync-probe.sh")
    for threads in (1, 20):
        for extra in ([], ["-u"]):
            time.sleep(a.settle)
            cmd = [probe, d, "10", str(threads), *extra]
            note("+ " + " ".join(cmd))
            r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            line = emit(r.stdout.strip(), out, server="disk", threads=threads,
                        churn=int(bool(extra)), load1=f"{os.getloadavg()[0]:.2f}")
            if threads == 20 and extra:
                ops = float(parse(line).get("ops_per_s", 0))
                print(f"fsync probe, 20 writers with unlinks: {ops:.0f} durable "
                      f"creations/s, so at most {ops / 2:.0f} msgs/s at two a "
                      f"message", flush=True)


def one_run(a, srv, s, fac, pf, rnd, out, res):
    common = ["-s", s, "-m", a.count, "-l", 4096, "-f", "bench@example.test",
              "-t", "user1@example.test", "--settle", a.settle]
    if srv == "facteur":
        c0 = tree_cpu(fac.proc.pid)
        line = shared(a, "smtp_accept.py", "127.0.0.1", fac.port, *common)
        cpu = tree_cpu(fac.proc.pid) - c0
        queued = fac.queued()
    else:
        mode = srv.split("-", 1)[1]
        pf.set_mode(mode)
        c0 = tree_cpu(pf.master())
        if mode == "hold":
            line = shared(a, "smtp_accept.py", "127.0.0.1", pf.port, *common)
        else:
            line = shared(a, "smtp_e2e.py", "127.0.0.1", pf.port,
                          os.path.join(pf.root, "domains"), *common, "--clean")
        cpu = tree_cpu(pf.master()) - c0
        queued = pf.queued()
    line = emit(line, out, server=srv, round=rnd, queued=queued,
                server_cpu_ms_per_msg=f"{cpu * 1000 / a.count:.2f}")
    f = parse(line)
    rate = float(f.get("accept_msgs_per_s", f.get("msgs_per_s", 0)))
    if f.get("ok") != "1":
        rate = 0.0
    res.setdefault((s, srv), []).append((rate, cpu * 1000 / a.count))


def profile_args(doc, count):
    """the options bench/delivery_profile.py and bench/cpu_profile.py
    share: the build, the load (-m COUNT by default), concurrencylocal"""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[1])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--obj", help="holds bench/smtp_spread (default: --bin/..)")
    ap.add_argument("-m", "--count", type=int, default=count)
    ap.add_argument("-s", "--sessions", type=int, default=20)
    ap.add_argument("-u", "--users", type=int, default=1000)
    ap.add_argument("--conc", type=int, default=10)
    ap.add_argument("--keep", action="store_true")
    return ap


def profile_setup(a, name, tool, why):
    """the checks and scratch directory of a profiling script NAME that
    needs root and TOOL (a Debian package WHY): a.obj filled in, the
    scratch directory made (/var/tmp, 0755) and returned"""
    if os.geteuid() != 0:
        sys.exit(f"{name}: run as root (mta-smtpd binds as root; {tool})")
    if not shutil.which(tool):
        sys.exit(f"{name}: {tool} is needed (apt-get install {why})")
    a.obj = os.path.abspath(a.obj or os.path.join(a.bin, ".."))
    tmp = tempfile.mkdtemp(prefix=f"{name}.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    return tmp


def facteur_run(binpath, tmp, conc):
    """a scratch root (Facteur above) under `facteur run`, its POP3 on
    free ports, concurrencylocal CONC: (Facteur, the supervisor's Popen);
    bench/delivery_profile.py and bench/cpu_profile.py start from it"""
    fac = Facteur(argparse.Namespace(bin=binpath), tmp)
    for k in ("listen.pop3", "listen.pop3s"):
        fac.ctl(k, f"127.0.0.1:{free_port()}")
    fac.ctl("concurrencylocal", str(conc))
    log = open(os.path.join(fac.root, "log", "run.out"), "ab")
    run = subprocess.Popen([f"{fac.bin}/facteur", "run", "--root", fac.root],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return fac, run


def spread_tool(a):
    """bench/smtp_spread.c, built by `make O=OBJ OBJ/bench/smtp_spread`"""
    path = os.path.join(a.obj, "bench", "smtp_spread")
    if not os.access(path, os.X_OK):
        sys.exit(f"smtp_compare: {path} missing: make O={a.obj} {path}")
    return path


class NewCounter:
    """Files in the new/ of user1..userU, cheaply enough to poll every
    50 ms: a directory is listed again only when its mtime moved."""

    def __init__(self, maildirs, users):
        self.dirs = [os.path.join(maildirs, "example.test", f"user{i}",
                                  "Maildir", "new") for i in range(1, users + 1)]
        self.seen = {}

    def clean(self):
        for d in self.dirs:
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
        self.seen = {}

    def count(self):
        n = 0
        for d in self.dirs:
            m = os.stat(d).st_mtime_ns
            old = self.seen.get(d)
            if old is None or old[0] != m:
                old = (m, len(os.listdir(d)))
                self.seen[d] = old
            n += old[1]
        return n


def cpu_jiffies():
    """the whole machine's CPU since boot, the first line of /proc/stat
    (what vmstat reads): user, nice, system, idle, iowait, irq, softirq,
    steal, ... in clock ticks, at least 8 of them"""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v + [0] * (8 - len(v))


def machine_cpu():
    """(busy, all) ticks of cpu_jiffies(): busy is user, nice, system, irq
    and softirq; all adds idle and iowait (steal and guest are left out:
    not ours)"""
    w = cpu_jiffies()
    busy = w[0] + w[1] + w[2] + w[5] + w[6]
    return busy, busy + w[3] + w[4]


def busy_share(a, b):
    """the share of the machine's CPUs busy between machine_cpu()
    readings A and B"""
    return (b[0] - a[0]) / max(1, b[1] - a[1])


def e2e_once(a, port, maildirs, sessions, users, timeout=120):
    """One timed run: smtp_spread sends --e2e-count messages over
    `sessions` connections at a time to user1..user`users` (one recipient
    a message). Returns (accept msgs/s, e2e msgs/s, delivered, ok, cpu):
    cpu is how busy the whole machine was over the run, while the client
    sent and after it, the machine's busy CPU ms a message, and the
    client's own (its rusage), so that a run bound by the CPUs shows as
    one; each is the same for both servers."""
    cnt = NewCounter(maildirs, users)
    cnt.clean()
    time.sleep(a.settle)
    before = cnt.count()
    m0 = machine_cpu()
    t0 = time.monotonic()
    p = subprocess.Popen([spread_tool(a), "-s", str(sessions), "-m",
                          str(a.e2e_count), "-l", "4096", "-u", str(users),
                          "-f", "bench@example.test", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, text=True)
    accept_s, got, last, m1, client = None, 0, t0, m0, 0.0
    while True:
        now = time.monotonic()
        if accept_s is None:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                accept_s, m1 = now - t0, machine_cpu()
                p.returncode = os.waitstatus_to_exitcode(status)
                client = ru.ru_utime + ru.ru_stime
        n = cnt.count() - before
        if n != got:
            got, last = n, now
        if got >= a.e2e_count and accept_s is not None:
            break
        if accept_s is not None and now - last > timeout:
            note(f"smtp_compare: gave up, {got}/{a.e2e_count} delivered")
            break
        time.sleep(0.05)
    e2e_s = time.monotonic() - t0
    m2 = machine_cpu()
    ok = p.returncode == 0 and got >= a.e2e_count
    note(f"  smtp_spread: {p.stdout.read().strip()}")
    p.stdout.close()
    cpu = {"machine_busy": f"{busy_share(m0, m2):.2f}",
           "busy_sending": f"{busy_share(m0, m1):.2f}",
           "busy_after": f"{busy_share(m1, m2):.2f}" if m2[1] > m1[1] else "-",
           "machine_cpu_ms_per_msg":
               f"{(m2[0] - m0[0]) * 1000 / TICK / a.e2e_count:.2f}",
           "client_cpu_ms_per_msg": f"{client * 1000 / a.e2e_count:.2f}"}
    return a.e2e_count / accept_s, got / e2e_s, got, ok, cpu


def send_pid(run):
    for p, v in proc_stats().items():
        if int(v[1]) == run.pid and open(f"/proc/{p}/comm").read().strip() == "mta-send":
            return p
    return None


def e2e_server(srv, fac, pf, run):
    """(port, Maildir root, process whose tree is the server) of srv"""
    if srv.startswith("facteur"):
        conc = srv.split("-c", 1)[1]
        fac.ctl("concurrencylocal", conc)
        pid = send_pid(run)
        if pid:
            os.kill(pid, signal.SIGHUP)     # mta-send reads control/ again
            time.sleep(0.5)
        return fac.port, os.path.join(fac.root, "domains"), run.pid
    return pf.port, os.path.join(pf.root, "domains"), pf.master()


def e2e_mode(a, fac, pf, out):
    """End to end: first SMTP connection until every message is in its
    Maildir. Facteur under `facteur run` (mta-smtpd, mta-send with its
    vdeliver server), once per --e2e-conc value of concurrencylocal,
    against Postfix delivering with virtual(8) (20 deliveries at once to a
    domain, its default_destination_concurrency_limit). For each case
    SESSIONSxUSERS of --e2e-cases: --e2e-count messages of 4 KiB, one a
    connection, one recipient each, spread evenly over user1..userUSERS
    (bench/smtp_spread). --e2e-rounds rounds; in each, every case, the
    servers taking turns (the order turns round every round)."""
    for k in ("listen.pop3", "listen.pop3s"):
        fac.ctl(k, f"127.0.0.1:{free_port()}")
    # what --modes accept left queued would be delivered in round 1
    fac.empty()
    pf.empty()
    log = open(os.path.join(fac.root, "log", "run.out"), "ab")
    run = subprocess.Popen([f"{fac.bin}/facteur", "run", "--root", fac.root],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    wait_port(fac.port)
    pf.set_mode("deliver")
    pf.start()
    servers = [f"facteur-c{c}" for c in a.e2e_conc] + ["postfix"]
    res = {}
    try:
        for rnd in range(1, a.e2e_rounds + 1):
            for sessions, users in a.e2e_cases:
                order = servers if rnd % 2 else servers[::-1]
                for srv in order:
                    port, maildirs, pid = e2e_server(srv, fac, pf, run)
                    load = os.getloadavg()[0]
                    c0 = tree_cpu(pid)
                    acc, e2e, got, ok, mach = e2e_once(a, port, maildirs,
                                                       sessions, users)
                    cpu = (tree_cpu(pid) - c0) * 1000 / a.e2e_count
                    emit(f"smtp_e2e msgs_per_s={e2e:.1f} accept_msgs_per_s={acc:.1f} "
                         f"sessions={sessions} users={users} n={a.e2e_count} "
                         f"delivered={got} ok={int(ok)} e2e_over_accept={e2e / acc:.3f}",
                         out, server=srv, round=rnd, load1=f"{load:.2f}",
                         server_cpu_ms_per_msg=f"{cpu:.2f}", **mach)
                    res.setdefault((sessions, users, srv), []).append(
                        (e2e if ok else 0.0, acc, cpu))
                    res.setdefault(("machine", sessions, users, srv), []).append(mach)
    finally:
        pf.empty()
        pf.stop()
        run.terminate()
        run.wait()
    e2e_summary(a, servers, res)


def e2e_summary(a, servers, res):
    med = statistics.median
    print("\nsummary e2e: median of the rounds, msgs/s end to end [accepted "
          "msgs/s] {server CPU ms/msg}; ratio = facteur / postfix, per round "
          "then median", flush=True)
    for sessions, users in a.e2e_cases:
        pr = [x for x, _, _ in res[(sessions, users, "postfix")]]
        for srv in servers:
            v = res[(sessions, users, srv)]
            line = (f"{sessions}x{users} {srv}: e2e {med([x for x, _, _ in v]):.0f} "
                    f"[{med([y for _, y, _ in v]):.0f}] {{{med([c for _, _, c in v]):.2f}}}")
            if srv != "postfix":
                ratios = [x / y if y else 0 for (x, _, _), y in zip(v, pr)]
                share = [x / y for x, y, _ in v]
                line += (f"; ratio {' / '.join(f'{r:.2f}' for r in ratios)} "
                         f"(median {med(ratios):.2f}); e2e/accept "
                         f"{' / '.join(f'{r:.2f}' for r in share)} "
                         f"(median {med(share):.2f})")
            print(line, flush=True)
            m = res[("machine", sessions, users, srv)]
            f = {k: med([float(x[k]) for x in m if x[k] != "-"] or [0.0])
                 for k in m[0]}
            print(f"    machine busy {f['machine_busy']:.2f} (while sending "
                  f"{f['busy_sending']:.2f}, after {f['busy_after']:.2f}); "
                  f"machine CPU {f['machine_cpu_ms_per_msg']:.2f} ms/msg, of "
                  f"it the client {f['client_cpu_ms_per_msg']:.2f}", flush=True)


def accept_mode(a, fac, pf, out):
    fac.start()
    pf.start()
    res = {}
    # Nothing is deleted between the timed runs: deleting thousands of
    # files makes every file creation in that block group slow for about a
    # minute on this file system (../shared/bench/README.md), so the queues
    # grow instead (rounds x 2 x -m messages each, a small fraction of the
    # 100,000 the queue test shows to cost little).
    for rnd in range(1, a.rounds + 1):
        for s in a.sessions:
            order = ["facteur"] + (["postfix-hold"] if "hold" in a.postfix else [])
            if rnd % 2 == 0:
                order.reverse()
            for srv in order:
                one_run(a, srv, s, fac, pf, rnd, out, res)
    # Postfix delivering deletes its queue files as it goes: measured after
    # every held run, so that it slows none of them
    # (the held messages stay: qmgr ignores the hold queue)
    if "deliver" in a.postfix:
        for rnd in range(1, a.deliver_rounds + 1):
            for s in a.sessions:
                one_run(a, "postfix-deliver", s, fac, pf, rnd, out, res)
    pf.empty()
    pf.stop()
    fac.stop()
    print("\nsummary: accepted msgs/s [server CPU ms/msg] per round, median; "
          "ratio = facteur / postfix", flush=True)
    for s in a.sessions:
        fr = [x for x, _ in res[(s, "facteur")]]
        fc = [c for _, c in res[(s, "facteur")]]
        print(f"-s {s} facteur: {' / '.join(f'{x:.0f} [{c:.2f}]' for x, c in res[(s, 'facteur')])}"
              f" (median {statistics.median(fr):.0f} [{statistics.median(fc):.2f}])")
        for m in a.postfix:
            pr = [x for x, _ in res[(s, f"postfix-{m}")]]
            pc = [c for _, c in res[(s, f"postfix-{m}")]]
            line = (f"-s {s} postfix-{m}: "
                    f"{' / '.join(f'{x:.0f} [{c:.2f}]' for x, c in res[(s, f'postfix-{m}')])}"
                    f" (median {statistics.median(pr):.0f} [{statistics.median(pc):.2f}])")
            if m == "hold":
                ratios = [x / y if y else 0 for x, y in zip(fr, pr)]
                line += (f"; ratio per round {' / '.join(f'{x:.2f}' for x in ratios)}"
                         f" (median {statistics.median(ratios):.2f}); CPU ratio "
                         f"{statistics.median(pc) / statistics.median(fc):.2f}")
            else:
                line += f"; ratio of medians {statistics.median(fr) / statistics.median(pr):.2f}"
            print(line, flush=True)


def queue_mode(a, fac, out):
    fac.start()
    note(f"settling {a.settle}s")
    time.sleep(a.settle)
    qstat = f"{fac.bin}/mta-qstat --root {fac.root}"
    line = shared(a, "queue_scale.py", "127.0.0.1", fac.port, os.path.join(fac.root, "domains"),
                  "--hold", "true", "--release", "true", "--list", qstat,
                  "--list", f"ls -f {fac.new} | wc -l",
                  "--total", a.queue_total, "--chunk", a.queue_chunk, "-s", 20,
                  "--rcpts", 20, "--inject-limit", 1800, "--drain-limit", 0.5,
                  "--clean")
    f = parse(line)
    first, last = float(f.get("first_chunk_msgs_per_s", 0)), float(f.get("last_chunk_msgs_per_s", 0))
    emit(line, out, server="facteur", queued=fac.queued(),
         last_over_first=f"{last / first:.3f}" if first else "0")
    fac.stop()


def session_pids(parent):
    return [p for p, v in proc_stats().items() if int(v[1]) == parent]


def rollup(pid):
    m = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            p = line.split()
            if len(p) >= 2 and p[0].endswith(":") and p[1].isdigit():
                m[p[0][:-1]] = int(p[1])
    return m


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def memory_mode(a, fac, out):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(a.idle) + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    for n in a.idle:
        fac.ctl("maxsessions", str(n + 1))
        fac.ctl("maxperip", str(n + 1))
        fac.start()
        time.sleep(1)
        avail0 = meminfo("MemAvailable")
        socks, bad = [], 0
        t0 = time.monotonic()
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", fac.port), timeout=30)
            g = c.recv(512)
            bad += not g.startswith(b"220 ")
            socks.append(c)
        open_s = time.monotonic() - t0
        time.sleep(2)
        pids = session_pids(fac.proc.pid)
        tot = {"Rss": 0, "Pss": 0, "Private_Dirty": 0, "Anonymous": 0}
        for p in pids:
            m = rollup(p)
            for k in tot:
                tot[k] += m.get(k, 0)
        par = rollup(fac.proc.pid)
        avail1 = meminfo("MemAvailable")
        # client n+1: maxsessions allows it, nothing else may refuse it
        c = socket.create_connection(("127.0.0.1", fac.port), timeout=30)
        last = c.recv(512).decode(errors="replace").strip()
        c.close()
        k = len(pids) or 1
        emit(f"idle_sessions n={n} procs={len(pids)} bad_greetings={bad} open_s={open_s:.2f} "
             f"rss_kb={tot['Rss']} pss_kb={tot['Pss']} "
             f"rss_per_session_kb={tot['Rss'] / k:.0f} pss_per_session_kb={tot['Pss'] / k:.0f} "
             f"private_dirty_per_session_kb={tot['Private_Dirty'] / k:.0f} "
             f"parent_rss_kb={par.get('Rss', 0)} parent_pss_kb={par.get('Pss', 0)} "
             f"memavailable_drop_per_session_kb={(avail0 - avail1) / k:.0f} "
             f"next_client={last.split(' ')[0]}",
             out, server="facteur")
        note(f"client {n + 1}: {last}")
        for c in socks:
            c.close()
        fac.stop()
    fac.ctl("maxsessions", "1000")
    fac.ctl("maxperip", "1000")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--shared", default=SHARED, help="../shared/bench")
    ap.add_argument("--modes", default="accept,queue,memory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=30)
    ap.add_argument("-m", "--count", type=int, default=5000)
    ap.add_argument("--sessions", default="20,1")
    ap.add_argument("--postfix", default="hold,deliver",
                    help="Postfix settings to measure: hold and/or deliver")
    ap.add_argument("--deliver-rounds", type=int, default=1)
    ap.add_argument("--e2e-rounds", type=int, default=5)
    ap.add_argument("--e2e-count", type=int, default=5000)
    ap.add_argument("--e2e-cases", default="20x1000,1x1000,50x50,20x20",
                    help="SESSIONSxUSERS, comma-separated")
    ap.add_argument("--e2e-conc", default="10,20",
                    help="Facteur's concurrencylocal values to measure")
    ap.add_argument("--obj", help="the build directory that holds "
                    "bench/smtp_spread (default: the parent of --bin)")
    ap.add_argument("--queue-total", type=int, default=100000)
    ap.add_argument("--queue-chunk", type=int, default=10000)
    ap.add_argument("--idle", default="100,1000")
    ap.add_argument("--no-probe", dest="probe", action="store_false",
                    help="leave out the fsync probe")
    ap.add_argument("--out", help="append every result line to this file too")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("smtp_compare: run as root (Postfix starts as root; so does mta-smtpd)")
    a.sessions = [int(x) for x in a.sessions.split(",")]
    a.postfix = [x for x in a.postfix.split(",") if x]
    a.idle = [int(x) for x in a.idle.split(",") if x]
    a.e2e_cases = [tuple(int(y) for y in x.split("x")) for x in a.e2e_cases.split(",") if x]
    a.e2e_conc = [int(x) for x in a.e2e_conc.split(",") if x]
    a.obj = os.path.abspath(a.obj or os.path.join(a.bin, ".."))
    modes = a.modes.split(",")
    tmp = tempfile.mkdtemp(prefix="smtp-compare.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    note(f"scratch {tmp}")
    fac = Facteur(a, tmp)
    fac2 = Facteur(a, tmp, "facteur2") if "queue" in modes or "memory" in modes else fac
    pf = Postfix(a, tmp)
    # stop the servers and remove the scratch directory on kill too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        print(f"# smtp_compare {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
              f"cores={os.cpu_count()} settle={a.settle} n={a.count}", flush=True)
        # queue first, into a queue directory where nothing was deleted;
        # the fsync probe last, as its -u runs delete thousands of files
        # (which slows file creation nearby for a minute or more)
        if "queue" in modes:
            queue_mode(a, fac2, a.out)
        if "accept" in modes:
            accept_mode(a, fac, pf, a.out)
        if "memory" in modes:
            memory_mode(a, fac2, a.out)
        if "e2e" in modes:
            e2e_mode(a, fac, pf, a.out)
        if ("accept" in modes or "e2e" in modes) and a.probe:
            probe = os.path.join(tmp, "probe")
            os.mkdir(probe)
            fsync_probe(a, probe, a.out)
    finally:
        fac.stop()
        fac2.stop()
        pf.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
