#!/usr/bin/env python3
"""multihost.py - issue 16's figures for several hosts on one PostgreSQL
(docs/performance.md, docs/scale-out.md), in one command:

    bench/multihost.py --bin BIN [--changes 200]
        [--rate 1000] [--seconds 10] [--rounds 5] [--msgs 300]
        [--parts latency,burst,store,e2e]

A private PostgreSQL (tests/integration/helpers.Postgres, fsync on), three
roots h1-h3 on it whose domains/ is one shared tree (test_multihost's
setup: bind mounts as root), 100 users, and a SQLite root with the same
users. Parts:

  latency  CHANGES `vadmin passwd` runs on h1, one at a time; for each,
           the time from its commit (the NOTIFY this script receives on
           its own LISTEN connection, as the watchers do) until every
           other host (h2, h3, `vadmin watch` each) has written
           db/changes.seen at or past it (written after the CDBs are
           renamed into place: an upper bound of "in the CDB"; seen with
           inotify, no polling). p50/p99/max.
  burst    RATE changes a second for SECONDS seconds, each the database
           work of a `vadmin passwd` (UPDATE users; the pending row whose
           trigger logs the change and NOTIFYs; its delete) in one
           transaction from one of this script's four libpq connections
           (ctypes; fsync on, so one connection alone would measure the
           disk's commit time, not the store; a vadmin
           process per change would measure process starts, not the
           store), over the 100 users; the same commit-to-every-host
           latency, p50/p99/max, the rate reached, and how many catch-ups
           the watchers made.
  store    MSGS messages a round (whole mailboxes): delivery (vdeliver
           runs, 4 at a time) and POP3 (pop3d --inetd
           sessions reading and deleting everything, 4 at a time) on the
           PostgreSQL root h1 and on the SQLite root, rounds alternating;
           messages a second each, the ratio of medians.
  e2e      `facteur run` on h1-h3 (127.0.0.2-4); MSGS messages over SMTP
           (6 client threads) to h1 alone, then spread over the three,
           rounds alternating, timed to the last one in its Maildir;
           the machine's CPU beside each round (user/system/idle/iowait
           from /proc/stat, as vmstat shows them, and the clients' own
           share) to say which resource is the limit, and the CPU a
           message of every process under the hosts' `facteur run`
           (their /proc/PID/stat, with the children they reaped).

Every figure line begins with its part's name; the load average (uptime)
is printed with each. Nothing is left behind: servers stopped by PID,
bind mounts undone, the scratch directory removed.
"""
import argparse
import concurrent.futures
import ctypes
import ctypes.util
import os
import resource
import select
import smtplib
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import helpers  # noqa: E402
import test_multihost as mh  # noqa: E402
sys.path.insert(0, HERE)
import smtp_compare as sc  # noqa: E402  (cpu_jiffies)

USERS = 100
BODY = ("x" * 49 + "\r\n") * 40    # 2 KB a message, in short lines


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class PQ:
    """the little of libpq (ctypes) this script needs: run SQL, LISTEN,
    and the notifications"""
    lib = None

    def __init__(self, conninfo):
        if PQ.lib is None:
            PQ.lib = ctypes.CDLL(ctypes.util.find_library("pq") or
                                 "libpq.so.5")
            L = PQ.lib
            L.PQconnectdb.restype = ctypes.c_void_p
            L.PQconnectdb.argtypes = [ctypes.c_char_p]
            L.PQstatus.argtypes = [ctypes.c_void_p]
            L.PQerrorMessage.restype = ctypes.c_char_p
            L.PQerrorMessage.argtypes = [ctypes.c_void_p]
            L.PQexec.restype = ctypes.c_void_p
            L.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            L.PQresultStatus.argtypes = [ctypes.c_void_p]
            L.PQntuples.argtypes = [ctypes.c_void_p]
            L.PQgetvalue.restype = ctypes.c_char_p
            L.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                     ctypes.c_int]
            L.PQclear.argtypes = [ctypes.c_void_p]
            L.PQsocket.argtypes = [ctypes.c_void_p]
            L.PQconsumeInput.argtypes = [ctypes.c_void_p]
            L.PQnotifies.restype = ctypes.c_void_p
            L.PQnotifies.argtypes = [ctypes.c_void_p]
            L.PQfreemem.argtypes = [ctypes.c_void_p]
            L.PQfinish.argtypes = [ctypes.c_void_p]
        self.c = PQ.lib.PQconnectdb(conninfo.encode())
        if PQ.lib.PQstatus(self.c) != 0:
            raise RuntimeError(PQ.lib.PQerrorMessage(self.c).decode())

    def exec(self, sql):
        """the first column of the rows of the last statement"""
        L = PQ.lib
        r = L.PQexec(self.c, sql.encode())
        st = L.PQresultStatus(r)
        if st not in (1, 2):    # PGRES_COMMAND_OK, PGRES_TUPLES_OK
            err = L.PQerrorMessage(self.c).decode()
            L.PQclear(r)
            raise RuntimeError(f"{sql[:60]}: {err}")
        rows = [L.PQgetvalue(r, i, 0).decode()
                for i in range(L.PQntuples(r))]
        L.PQclear(r)
        return rows

    def socket(self):
        return PQ.lib.PQsocket(self.c)

    def drain(self):
        """the notifications that have arrived: their number"""
        L = PQ.lib
        L.PQconsumeInput(self.c)
        n = 0
        while True:
            p = L.PQnotifies(self.c)
            if not p:
                return n
            L.PQfreemem(p)
            n += 1

    def close(self):
        PQ.lib.PQfinish(self.c)


class Inotify:
    """inotify (ctypes) on directories: the names renamed or written into
    them"""
    IN_CLOSE_WRITE, IN_MOVED_TO = 0x8, 0x80

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, ctypes.get_errno()
        self.wd = {}

    def add(self, path, tag):
        wd = self.libc.inotify_add_watch(
            self.fd, path.encode(), self.IN_CLOSE_WRITE | self.IN_MOVED_TO)
        assert wd >= 0, ctypes.get_errno()
        self.wd[wd] = tag

    def read(self):
        """[(tag, name)] of the events waiting"""
        out = []
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return out
        i = 0
        while i + 16 <= len(buf):
            wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
            out.append((self.wd.get(wd), name))
            i += 16 + n
        return out


class Recorder(threading.Thread):
    """commit times (from NOTIFY: max(id) of changes then) and each
    host's changes.seen as it is renamed into place"""

    def __init__(self, conninfo, roots):
        super().__init__(daemon=True)
        self.pq = PQ(conninfo)
        self.pq.exec("LISTEN facteur_changes")
        self.ino = Inotify()
        self.roots = roots
        for r in roots:
            self.ino.add(os.path.join(r, "db"), r)
        self.commits = []           # (id, time)
        self.seen = {r: [] for r in roots}    # root: [(mark, time)]
        self.stopping = False
        self.start()

    def run(self):
        last = -1
        while not self.stopping:
            rd, _, _ = select.select([self.pq.socket(), self.ino.fd], [],
                                     [], 0.2)
            now = time.monotonic()
            if self.pq.socket() in rd and self.pq.drain():
                m = int(self.pq.exec("SELECT coalesce(max(id), 0) FROM "
                                     "changes")[0])
                if m > last:
                    self.commits.append((m, now))
                    last = m
            if self.ino.fd in rd:
                for root, name in self.ino.read():
                    if name != "changes.seen":
                        continue
                    try:
                        with open(os.path.join(root, "db", name)) as f:
                            self.seen[root].append((int(f.read()), now))
                    except (OSError, ValueError):
                        pass

    def latencies(self, since_id):
        """for each commit after since_id: seconds until every root's
        mark reached it"""
        out = []
        for cid, t0 in self.commits:
            if cid <= since_id:
                continue
            worst = 0.0
            for r in self.roots:
                ts = [t for m, t in self.seen[r] if m >= cid and t >= t0]
                if not ts:
                    worst = None
                    break
                worst = max(worst, min(ts) - t0)
            if worst is not None:
                out.append(worst)
        return out

    def stop(self):
        self.stopping = True
        self.join(5)
        self.pq.close()


def catchups(watchers):
    n = 0
    for w in watchers:
        n += mh.said(w).count("applied, up to")
    return n


def part_latency(a, t, h1, rec, watchers):
    since = rec.commits[-1][0] if rec.commits else 0
    for i in range(a.changes):
        h = mh.H1 if i % 2 else mh.H2
        mh.vadmin(t, h1, "passwd", f"u{i % USERS}@{mh.D}", "--hash", h)
        time.sleep(0.02)
    time.sleep(1.5)
    lat = rec.latencies(since)
    print(f"latency: {len(lat)} of {a.changes} vadmin passwd on h1 seen on "
          f"h2 and h3: p50 {pct(lat, 50) * 1000:.1f} ms, p99 "
          f"{pct(lat, 99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms "
          f"(load {load()})", flush=True)


def burst_driver(conn, did, a, k, nthreads, t0, n):
    """changes k, k + nthreads, ... of n, each at its due time"""
    pq = PQ(conn)
    for i in range(k, n, nthreads):
        d = t0 + i / a.rate - time.monotonic()
        if d > 0:
            time.sleep(d)
        u = f"u{i % USERS}"
        h = (mh.H1 if i % 2 else mh.H2).replace("'", "''")
        pq.exec(f"BEGIN; UPDATE users SET hash = '{h}' WHERE domain_id = "
                f"{did} AND local = '{u}'; INSERT INTO pending(kind, arg) "
                f"VALUES ('user', '{u}@{mh.D}') ON CONFLICT DO NOTHING; "
                f"DELETE FROM pending WHERE kind = 'user' AND arg = "
                f"'{u}@{mh.D}'; COMMIT")
    pq.close()


def part_burst(a, conn, rec, watchers):
    """RATE changes a second from 4 connections (one commit waits for
    the disk, fsync on: one connection alone would measure that)"""
    pq = PQ(conn)
    did = pq.exec(f"SELECT id FROM domains WHERE name = '{mh.D}'")[0]
    pq.close()
    since = rec.commits[-1][0] if rec.commits else 0
    before = catchups(watchers)
    n, nthreads = int(a.rate * a.seconds), 4
    t0 = time.monotonic()
    th = [threading.Thread(target=burst_driver, args=(conn, did, a, k,
                                                      nthreads, t0, n))
          for k in range(nthreads)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    took = time.monotonic() - t0
    time.sleep(3)
    lat = rec.latencies(since)
    print(f"burst: {n} changes in {took:.2f} s ({n / took:.0f}/s), "
          f"{len(lat)} commits (NOTIFYs this script saw) reached h2 and "
          f"h3: p50 {pct(lat, 50) * 1000:.1f} ms, p99 "
          f"{pct(lat, 99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms; "
          f"{catchups(watchers) - before} catch-ups by the two watchers "
          f"(load {load()})", flush=True)


def run_env():
    env = dict(os.environ)
    env.pop("FACTEUR_ROOT", None)
    return env


def deliver_round(a, root, md_of, n):
    env = run_env()

    def one(i):
        p = subprocess.run([os.path.join(a.bin, "vdeliver"), "--root", root,
                            "-f", "s@remote.example",
                            f"u{i % USERS}@{mh.D}"],
                           input=b"Subject: b%d\n\n%s" % (i, BODY.encode()),
                           capture_output=True, env=env)
        assert p.returncode == 0, p.stderr
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(n)))
    return n / (time.monotonic() - t0)


def pop_round(a, root, n):
    env = run_env()
    env["TCPREMOTEIP"] = "127.0.0.1"
    per = n // USERS

    def one(u):
        cmds = [f"USER u{u}@{mh.D}", f"PASS {mh.PW}"]
        for i in range(1, per + 1):
            cmds += [f"RETR {i}", f"DELE {i}"]
        cmds.append("QUIT")
        p = subprocess.run([os.path.join(a.bin, "pop3d"), "--root", root,
                            "--inetd"], input="".join(
                                x + "\r\n" for x in cmds).encode(),
                           capture_output=True, env=env)
        assert f"{per} message".encode() in p.stdout, p.stdout[-300:]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(USERS)))
    return n / (time.monotonic() - t0)


def part_store(a, h1, lite):
    res = {"sqlite": ([], []), "pg": ([], [])}
    # MSGS rounded to whole mailboxes: a short round (a few hundred
    # messages, half a second) measures the machine's moment more than
    # the store
    n = max(USERS, a.msgs // USERS * USERS)
    for rnd in range(a.rounds):
        order = [("sqlite", lite), ("pg", h1)]
        if rnd % 2:
            order.reverse()
        for name, root in order:
            res[name][0].append(deliver_round(a, root, None, n))
            res[name][1].append(pop_round(a, root, n))
    for i, what in enumerate(("delivery msgs/s", "POP3 msgs/s")):
        lm = statistics.median(res["sqlite"][i])
        pm = statistics.median(res["pg"][i])
        # each round's two runs were next to each other: their ratio is
        # the least touched by the others' load
        rr = [p / q for p, q in zip(res["pg"][i], res["sqlite"][i])]
        print(f"store: {what}: SQLite " + " / ".join(
            f"{x:.0f}" for x in res["sqlite"][i]) + f" (median {lm:.0f}), "
            "PostgreSQL " + " / ".join(f"{x:.0f}" for x in res["pg"][i]) +
            f" (median {pm:.0f}); PostgreSQL/SQLite a round " +
            " / ".join(f"{x:.3f}" for x in rr) +
            f", median {statistics.median(rr):.3f} (load {load()})",
            flush=True)


class CpuUse:
    """the machine's CPU between start and stop, from /proc/stat (what
    vmstat reads): user, system (with irq), idle and iowait, in % of all
    cores; and this script's own CPU (the SMTP clients), in % of one"""

    def __init__(self):
        self.a, self.t0 = self.read(), time.monotonic()
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)

    read = staticmethod(sc.cpu_jiffies)

    def stop(self):
        b = self.read()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        d = [y - x for x, y in zip(self.a, b)]
        total = sum(d[:8]) or 1
        wall = time.monotonic() - self.t0
        return {"us": 100 * (d[0] + d[1]) / total,
                "sy": 100 * (d[2] + d[5] + d[6]) / total,
                "id": 100 * d[3] / total, "wa": 100 * d[4] / total,
                "client": 100 * (r1.ru_utime + r1.ru_stime -
                                 self.r0.ru_utime - self.r0.ru_stime) / wall}


def tree_ticks(hosts):
    """CPU clock ticks of every process under the hosts' facteur run,
    with what each has reaped of its children (the delivery workers), by
    program name"""
    out = {}
    for h in hosts:
        for pid in h.tree():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, tail = f.read().rsplit(")", 1)
            except OSError:
                continue
            name = head.split("(", 1)[1]
            out[name] = out.get(name, 0) + sum(int(x) for x in
                                               tail.split()[11:15])
    return out


def ticks_ms(before, after, n):
    """{program: CPU ms a message} between two tree_ticks()"""
    hz = os.sysconf("SC_CLK_TCK")
    return {k: (after[k] - before.get(k, 0)) * 1000 / hz / n
            for k in after}


def e2e_round(hosts, shared, n):
    def send_one(i):
        h = hosts[i % len(hosts)]
        for _ in range(5):
            try:
                with smtplib.SMTP(h.ip, h.smtp, timeout=30) as c:
                    c.sendmail("s@remote.example", [f"u{i % USERS}@{mh.D}"],
                               f"Subject: e{i}\r\n\r\n" + BODY)
                return
            except (OSError, smtplib.SMTPException) as e:
                err = e
                time.sleep(0.2)
        raise AssertionError(f"message {i} never accepted: {err}")

    def count():
        return sum(len(os.listdir(os.path.join(
            shared, mh.D, f"u{u}", "Maildir", "new"))) for u in range(USERS))
    vm = CpuUse()
    ticks = tree_ticks(hosts)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        list(ex.map(send_one, range(n)))
    while count() < n:
        time.sleep(0.05)
    rate = n / (time.monotonic() - t0)
    cpu = vm.stop()
    cpu["by"] = ticks_ms(ticks, tree_ticks(hosts), n)
    cpu["facteur_ms"] = sum(cpu["by"].values())
    for u in range(USERS):
        d = os.path.join(shared, mh.D, f"u{u}", "Maildir", "new")
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
    return rate, cpu


def part_e2e(a, t, conn, hosts, shared):
    res = {1: [], 3: []}
    for h in hosts:
        h.start()
    try:
        for rnd in range(a.rounds):
            order = [1, 3] if rnd % 2 == 0 else [3, 1]
            for k in order:
                rate, cpu = e2e_round(hosts[:k], shared, a.msgs)
                res[k].append(rate)
                print(f"e2e: round {rnd + 1}, {k} host{'s' if k > 1 else ''}"
                      f": {rate:.0f} msgs/s; CPU us {cpu['us']:.0f} % sy "
                      f"{cpu['sy']:.0f} % id {cpu['id']:.0f} % wa "
                      f"{cpu['wa']:.0f} %, the SMTP clients {cpu['client']:.0f} % of a "
                      f"core; Facteur's processes {cpu['facteur_ms']:.2f} "
                      f"ms CPU a message (" + ", ".join(
                          f"{k} {v:.2f}" for k, v in sorted(
                              cpu["by"].items(), key=lambda x: -x[1])
                          if v >= 0.01) + f") (load {load()})", flush=True)
    finally:
        for h in hosts:
            h.stop()
    m1, m3 = statistics.median(res[1]), statistics.median(res[3])
    print(f"e2e: one host {m1:.0f} msgs/s, three hosts together {m3:.0f} "
          f"msgs/s (medians): three/one {m3 / m1:.3f} (load {load()})",
          flush=True)


def setup_users(t, root):
    imp = os.path.join(t.tmp, "users")
    with open(imp, "w") as f:
        for u in range(USERS):
            f.write(f"u{u}@{mh.D} {mh.H1}\n")
    os.chmod(imp, 0o644)
    mh.vadmin(t, root, "adddomain", mh.D, input="pm-Secret-1\n")
    mh.vadmin(t, root, "import", imp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--msgs", type=int, default=300)
    ap.add_argument("--parts", default="latency,burst,store,e2e")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    parts = a.parts.split(",")
    t = helpers.Ctx(a.bin)
    watchers, rec = [], None
    try:
        with helpers.Postgres(t, fsync=True) as pg:
            conn = pg.createdb("facteur")
            hosts = [mh.Host(t, f"h{i + 1}", f"127.0.0.{i + 2}", conn)
                     for i in range(3)]
            roots = [h.root for h in hosts]
            with mh.shared_domains(t, roots) as shared:
                setup_users(t, roots[0])
                watchers = [mh.watch(t, r) for r in roots[1:]]
                for w in watchers:
                    helpers.wait_for("a watcher's catch-up", lambda w=w:
                                     "every table regenerated" in mh.said(w),
                                     60)
                rec = Recorder(conn, roots[1:])
                if "latency" in parts:
                    part_latency(a, t, roots[0], rec, watchers)
                if "burst" in parts:
                    part_burst(a, conn, rec, watchers)
                rec.stop()
                rec = None
                for w in watchers:
                    mh.stop(w)
                watchers = []
                # the passwords as they started (the parts above left
                # two hashes), and h1's tables made from them
                pg.sql("UPDATE users SET hash = '%s'" %
                       mh.H1.replace("'", "''"))
                mh.vadmin(t, roots[0], "rebuild")
                if "store" in parts:
                    lite = os.path.join(t.tmp, "lite")
                    t.run("facteur", "init", "--root", lite, "--dev",
                          root=False, check=0)
                    t.root = lite
                    t.no_dns()
                    mh.put(t, t.path("control", "passwordscheme"),
                           "sha512crypt\n", 0o644)
                    setup_users(t, lite)
                    part_store(a, roots[0], lite)
                if "e2e" in parts:
                    part_e2e(a, t, conn, hosts, shared)
    finally:
        if rec:
            rec.stop()
        for w in watchers:
            mh.stop(w)
        t.cleanup()


if __name__ == "__main__":
    main()
