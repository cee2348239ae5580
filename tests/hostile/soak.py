"""soak - issue 15's soak: the whole system (`facteur run`) under mixed
load for a long time while processes are killed and writes fail, then
every message accounted for.

Load (threads, each a client as a user would be):
  mx         port 25 from 127.0.0.3: one message a session to a random
             local user (u0..uN), now and then one to a user that does
             not exist (refused at RCPT, counted apart)
  submit     port 587, STARTTLS + AUTH as bob: one message to a remote
             domain, in turn: remote.example (an MX that takes it),
             refuse.example (an MX that answers 550: a bounce to bob) and
             slow.example (an MX that answers 451 for a minute, then takes
             mail for a minute, and so on: deferred, then delivered)
  inject     sendmail -t as root, to a random local user
  pop        POP3 over TLS (995): each local user in turn, every message
             RETR'd then DELE'd, QUIT
Chaos (one thread):
  kill       every few seconds SIGKILL to a random process of the run
             but the supervisor (a session, mta-smtpd, mta-send, the
             vdeliver server or a worker, mta-remote, pop3d); `facteur run`
             starts the service again
  full       (root only: the root lives on its own tmpfs) the file system
             filled for a few seconds: every write, fsync, rename, link,
             mkdir of that time fails with ENOSPC
  eio        strace attached to mta-send or mta-smtpd for a few seconds,
             its fsync, fdatasync, rename, link and mkdir (and those of
             the children it makes meanwhile) failing with EIO or EDQUOT
Sampled every 5 s: RSS and open descriptors of each long-lived process
(facteur, the listeners, mta-send, the vdeliver server), by role, so a
process killed and started again is the same role.

At the end the load and the chaos stop, the queue settles, and every
message a server answered 250 (or sendmail took, exit 0) must be found:
in the user's Maildir or read over POP3 (local), at the MX (remote), in a
bounce to bob (refused), or in the queue (deferred; the deferring MX then
takes mail, and each of those must arrive). Found nowhere is
lost; a copy without its last line is partial; copies beyond the first
are duplicates, allowed at most one per kill or fault (SPEC.md: at most
one extra copy per crash). Open descriptors of each role, idle after the
run, no more than 2 over their count idle before it.

RSS flat, within 10 % (and 256 KiB of slack for page-sized noise), is
judged within one process's life, never from a killed process to the one
started in its place: that one meets what piled up while it was down,
and its heap keeps that high-water mark. mta-send, down for up to a
minute of facteur run's restart backoff, finds that minute's mail in
queue/new and takes it in at once, each message loaded (about 1 KiB) until
a delivery slot is free; once they are gone glibc keeps the freed heap for
later. The hour of issue 15 compared the mta-send of the second tenth
(3,604 KiB) with the one alive at the end (5,204 KiB), 59 kills apart: the
backlogs each had met, not a leak. Measured without kills (release build,
the load of this file): mta-send stopped for 40 s, 3,472 messages waiting,
RssAnon went from 644 to 4,272 KiB at once, then stayed flat for 90 s
and some 8,000 more messages; idle, malloc_stats() said 247,152 bytes in use
of 3,792,896 taken, and malloc_trim() gave 2.6 MiB back. What bounds the
mark is mta-send's backlog limit (20,000 busy messages, 1,000,000
recipients loaded: main.c), not the length of the run. So:
  - a process never killed: its last tenth of the run against its second
    (the first is warm-up);
  - every role in a calm tail after the chaos (the same load, no kill,
    no fault; a tenth of the run, at least a minute, from when every role
    runs again and queue/new is caught up): the tail's last fifth against
    its first, the same process throughout. A leak grows with the mail a
    process handles, and shows there; a role started again in the tail
    fails too.
Samples every 5 s: VmRSS, RssAnon, RssFile, descriptors and pid of each
role, and the messages waiting in queue/new (--samples FILE writes them).

  python3 tests/hostile/soak.py --bin build/rel/bin --seconds 3600
prints the figures as one JSON object and exits 1 when a rule fails;
--calm runs the load alone (no kill, no fault). `make soak` runs it for
SOAKTIME seconds; `slow_soak_*` (make check-slow) for 3 minutes.
"""
import argparse
import json
import os
import poplib
import random
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import helpers  # noqa: E402
from hostile_net import System, tree, DOMAIN, USER, PW  # noqa: E402

LOCAL_USERS = 20
UPW = "Soak-pw-1"
TOKEN = re.compile(rb"X-Soak: (\d+)")
KIB = 1024


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def message(n, frm, to, size):
    """message n: its token in a header and on its last line"""
    line = b"soak soak soak soak soak soak soak soak soak soak soak soak\r\n"
    return (b"From: %s\r\nTo: %s\r\nSubject: soak %d\r\nX-Soak: %d\r\n\r\n"
            % (frm.encode(), to.encode(), n, n) +
            line * max(1, size // len(line)) + b"end of soak %d\r\n" % n)


def whole(data, n):
    return data.rstrip(b"\r\n").endswith(b"end of soak %d" % n)


class Book:
    """what the clients did, under one lock"""

    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0
        self.accepted = {}      # token -> kind (local, remote, refuse, slow)
        self.unknown = set()    # the answer never came (a kill, a fault)
        self.refused = 0        # a temporary or permanent refusal
        self.copies = {}        # token -> set of copy keys
        self.partial = []
        self.errors = {}        # client error kind -> count

    def next(self):
        with self.lock:
            self.n += 1
            return self.n

    def count(self, what):
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def seen(self, data, key, bounce=False):
        """a copy of a message, found under a unique key (a Maildir
        name, an MX transaction); a bounce quotes the message, maybe not
        whole"""
        m = TOKEN.search(data)
        if not m:
            return
        n = int(m.group(1))
        with self.lock:
            self.copies.setdefault(n, set()).add(key)
            if not bounce and not whole(data, n):
                self.partial.append((n, key))


# --- the clients -------------------------------------------------------------

def mx_one(s, book):
    n = book.next()
    u = random.randrange(LOCAL_USERS + 1)
    rcpt = f"u{u}@{DOMAIN}" if u < LOCAL_USERS else f"nobody{n}@{DOMAIN}"
    try:
        with smtplib.SMTP("127.0.0.1", s.ports["smtp"], timeout=30,
                          source_address=("127.0.0.3", 0)) as c:
            c.sendmail(f"far{n}@sender.example", [rcpt],
                       message(n, "far@sender.example", rcpt,
                               random.choice((800, 3000, 20000))))
        with book.lock:
            book.accepted[n] = "local"
    except smtplib.SMTPRecipientsRefused:
        with book.lock:
            book.refused += 1
    except (smtplib.SMTPResponseException, smtplib.SMTPSenderRefused):
        with book.lock:
            book.refused += 1
    except (OSError, smtplib.SMTPException):
        with book.lock:
            book.unknown.add(n)


KINDS = ("remote", "refuse", "slow")


def submit_one(s, book):
    n = book.next()
    kind = KINDS[n % 3]
    rcpt = f"r{n}@{kind}.example"
    try:
        with smtplib.SMTP("127.0.0.1", s.ports["submission"], timeout=30,
                          source_address=("127.0.0.4", 0)) as c:
            c.starttls(context=ctx())
            c.login(USER, PW)
            c.sendmail(USER, [rcpt], message(n, USER, rcpt, 2000))
        with book.lock:
            book.accepted[n] = kind
    except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused):
        with book.lock:
            book.refused += 1
    except (OSError, smtplib.SMTPException):
        with book.lock:
            book.unknown.add(n)


def inject_one(s, book):
    n = book.next()
    rcpt = f"u{random.randrange(LOCAL_USERS)}@{DOMAIN}"
    p = s.t.run("sendmail", "-t", "-f", USER,
                input=message(n, USER, rcpt, 1500),
                env={"ASAN_OPTIONS": "detect_leaks=0"}, timeout=60)
    with book.lock:
        if p.returncode == 0:
            book.accepted[n] = "local"
        elif p.returncode < 0:
            book.unknown.add(n)
        else:
            book.refused += 1


def pop_user(s, book, u):
    c = poplib.POP3_SSL("127.0.0.1", s.ports["pop3s"], timeout=30,
                        context=ctx())
    try:
        c.user(f"u{u}@{DOMAIN}")
        c.pass_(UPW)
        uidl = {}
        for line in c.uidl()[1]:
            i, uid = line.split()
            uidl[int(i)] = uid.decode()
        for i, uid in sorted(uidl.items())[:50]:
            data = b"\r\n".join(c.retr(i)[1]) + b"\r\n"
            book.seen(data, ("md", uid.split(":")[0]))
            c.dele(i)
    finally:
        c.quit()


def loop(stop, book, name, fn, pause):
    while not stop.is_set():
        try:
            fn()
        except (OSError, poplib.error_proto, smtplib.SMTPException,
                subprocess.TimeoutExpired, EOFError) as e:
            book.count(f"{name}: {type(e).__name__}")
        stop.wait(pause)


# --- chaos ---------------------------------------------------------------

class Chaos:
    def __init__(self, s, tmpfs, rng):
        self.s, self.tmpfs, self.rng = s, tmpfs, rng
        self.kills, self.fulls, self.eios = {}, 0, 0
        self.lock = threading.Lock()

    def victims(self):
        out = []
        for pid in tree(self.s.p.pid)[1:]:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm not in ("strace", "sh", "facteur"):
                out.append((pid, comm))
        return out

    def kill(self):
        v = self.victims()
        if not v:
            return
        # a program first, then one of its processes: the many workers
        # and sessions would otherwise take nearly every kill
        comm = self.rng.choice(sorted({c for _, c in v}))
        pid = self.rng.choice([p for p, c in v if c == comm])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills[comm] = self.kills.get(comm, 0) + 1

    def full(self, seconds):
        """fill the root's tmpfs for a while, then free it"""
        path = os.path.join(self.s.t.root, ".soak-filler")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            block = b"\0" * (1 << 20)
            while True:
                try:
                    os.write(fd, block)
                except OSError:
                    block = block[:len(block) // 2]
                    if len(block) < 512:
                        break
            self.fulls += 1
            time.sleep(seconds)
        finally:
            os.close(fd)
            os.unlink(path)

    def eio(self, seconds):
        """strace on mta-send or the mta-smtpd listener, its writes that
        make mail durable failing for a few seconds"""
        v = [p for p, c in self.victims() if c in ("mta-send", "mta-smtpd")]
        if not v:
            return
        pid = self.rng.choice(v)
        err = self.rng.choice(("EIO", "EDQUOT"))
        calls = "fsync,fdatasync,rename,renameat,renameat2,link,linkat," \
                "mkdir,mkdirat"
        p = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null",
                              "-p", str(pid),
                              f"-e inject={calls}:error={err}:when=2+3"],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        p.send_signal(signal.SIGINT)     # detaches from every traced one
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.eios += 1

    def flip(self, stop, mx, every):
        """the deferring MX takes mail every other period: deferred mail
        leaves the queue as new mail enters it, so the queue (and what
        mta-send holds for it) stays level, as on a real server"""
        while not stop.wait(every):
            mx.mode = "accept" if mx.mode == "tempfail" else "tempfail"
        mx.mode = "tempfail"

    def run(self, stop, kill_every, fault_every):
        if kill_every <= 0:     # --calm: the load alone
            stop.wait()
            return
        next_fault = time.monotonic() + fault_every
        while not stop.wait(self.rng.uniform(kill_every / 2,
                                             kill_every * 1.5)):
            self.kill()
            if time.monotonic() >= next_fault:
                next_fault = time.monotonic() + fault_every
                if self.tmpfs and self.rng.random() < 0.5:
                    self.full(self.rng.uniform(2, 5))
                else:
                    self.eio(self.rng.uniform(2, 5))

    def total(self):
        return sum(self.kills.values()) + self.fulls + self.eios


# --- samples -----------------------------------------------------------------

def roles(s):
    """{role: pid} of the long-lived processes: the supervisor's children
    by command line, and the vdeliver server (mta-send's vdeliver)"""
    out = {"facteur": s.p.pid}
    for pid in tree(s.p.pid)[1:]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == s.p.pid and comm not in ("strace",):
            key = comm + " " + b" ".join(a for a in argv[1:] if
                                         a.startswith(b"-")).decode()
            out[key.strip()] = pid
        elif comm == "vdeliver":
            try:
                with open(f"/proc/{ppid}/comm") as f:
                    if f.read().strip() == "mta-send":
                        out["vdeliver server"] = pid
            except OSError:
                pass
    return out


def rss_fds(pid):
    """(VmRSS, open descriptors, RssAnon, RssFile), bytes; RssAnon is the
    heap and stacks, RssFile the pages of the program and its libraries"""
    got = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    got[k] = int(line.split()[1]) * KIB
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    if "VmRSS" not in got:
        return None
    return got["VmRSS"], fds, got.get("RssAnon"), got.get("RssFile")


def backlog(t):
    """messages waiting in queue/new (mta-send's pickup behind)"""
    try:
        return len(os.listdir(t.path("queue", "new")))
    except OSError:
        return None


def sampler(s, stop, samples):
    """every 5 s: per role (time, RSS, fds, pid, RssAnon, RssFile), and
    under "queue/new" (time, messages waiting there)"""
    while not stop.wait(5):
        now = time.monotonic()
        for role, pid in roles(s).items():
            v = rss_fds(pid)
            if v:
                samples.setdefault(role, []).append(
                    (now, v[0], v[1], pid, v[2], v[3]))
        samples.setdefault("queue/new", []).append((now, backlog(s.t)))


def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def same_process(xs, w0, w1):
    """[(pid, median RSS in window w0, median RSS in w1)] for each process
    sampled in both windows (time ranges): RSS is compared within one
    process's life, never from a process to the one that replaced it"""
    out = []
    for pid in sorted({x[3] for x in xs}):
        a = [x[1] for x in xs if x[3] == pid and w0[0] <= x[0] < w0[1]]
        b = [x[1] for x in xs if x[3] == pid and w1[0] <= x[0] < w1[1]]
        if a and b:
            out.append((pid, med(a), med(b)))
    return out


def grown(r0, r1):
    """the rule: within 10 % (and 256 KiB of slack for page-sized noise)"""
    return r1 > r0 * 1.10 + 256 * KIB


def flat(samples, t0, t1, ta=None, tb=None):
    """per role, RSS compared within one process's life: over the run,
    from its second tenth (the first is warm-up) to its last, for a
    process alive through both (one that was never killed); over the calm
    tail [ta, tb], from its first fifth to its last, for the process alive
    at its start, which must still be the same at its end. The figures,
    and the roles that broke the rule"""
    span = t1 - t0
    out, bad = {}, []
    for role, xs in sorted(samples.items()):
        if role == "queue/new":
            continue
        fig = {"lives": len({x[3] for x in xs if t0 <= x[0] < t1}),
               "rss KiB max": max(x[1] for x in xs) // KIB}
        for pid, r0, r1 in same_process(
                xs, (t0 + span * 0.1, t0 + span * 0.2),
                (t0 + span * 0.9, t1)):
            fig["rss KiB first"] = r0 // KIB
            fig["rss KiB last"] = r1 // KIB
            if grown(r0, r1):
                bad.append(role)
        if ta is not None:
            w0, w1 = (ta, ta + (tb - ta) * 0.2), (tb - (tb - ta) * 0.2, tb)
            both = same_process(xs, w0, w1)
            for pid, r0, r1 in both:
                fig["calm rss KiB first"] = r0 // KIB
                fig["calm rss KiB last"] = r1 // KIB
                if grown(r0, r1):
                    bad.append(role + " (calm tail)")
            if not both and any(w0[0] <= x[0] < w0[1] for x in xs):
                bad.append(role + " (started again in the calm tail)")
        out[role] = fig
    return out, bad


def calm_start(s, samples, t1, limit=120):
    """the chaos is over: once every role sampled at its end runs again
    and the pickup has caught up with what piled up in queue/new while
    mta-send was down (a backoff of up to a minute), the calm tail
    starts; at most LIMIT seconds"""
    want = {r for r, xs in samples.items()
            if r != "queue/new" and xs and xs[-1][0] >= t1 - 15}
    time.sleep(10)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if want <= set(roles(s)) and (backlog(s.t) or 0) < 50:
            break
        time.sleep(1)
    return time.monotonic()


def write_samples(path, samples, t0):
    """every sample as JSON lines: role, seconds into the run, then the
    rest of the sample (sampler()), sizes in KiB"""
    with open(path, "w") as f:
        for role, xs in sorted(samples.items()):
            for x in xs:
                v = [round(x[0] - t0, 1)] + [
                    y // KIB if i in (1, 4, 5) and y is not None and
                    role != "queue/new" else y
                    for i, y in enumerate(x) if i]
                f.write(json.dumps([role] + v) + "\n")


def idle_fds(s):
    """{role: (pid, open descriptors)} of a run with no client"""
    out = {}
    for role, pid in roles(s).items():
        v = rss_fds(pid)
        if v:
            out[role] = (pid, v[1])
    return out


# mta-send may hold two descriptors at the end that it did not hold at the
# first count, taken before any mail: its socket to the vdeliver server
# and control/assign.cdb in its table cache, both opened on its first
# delivery and kept (the same process or one started again after a kill)
LAZY_FDS = {"mta-send": 2}


def fds_grown(fds0, fds1):
    """the roles with more descriptors idle at the end than at the start:
    none more, but for what LAZY_FDS names"""
    out = []
    for role, (_, n) in fds1.items():
        if role not in fds0:
            continue
        if n > fds0[role][1] + LAZY_FDS.get(role.split()[0], 0):
            out.append(role)
    return out


# --- the end: where every message went ----------------------------------

def scan_maildirs(t, book):
    bob = os.sep + USER.split("@")[0] + os.sep
    for d, _, files in os.walk(t.path("domains")):
        if os.path.basename(d) not in ("new", "cur"):
            continue
        for name in files:
            try:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            book.seen(data, ("md", name.split(":")[0]), bounce=bob in d)


def scan_queue(t):
    """tokens of the messages still queued"""
    out = set()
    for p in helpers.queue_files(t):
        if p.endswith(".s"):
            continue
        try:
            with open(p, "rb") as f:
                m = TOKEN.search(f.read())
        except OSError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def settled(t, book, deferred_kind, timeout):
    """wait until only the deferred kind is left in the queue"""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        q = scan_queue(t)
        with book.lock:
            if all(book.accepted.get(n) == deferred_kind for n in q):
                return q
        time.sleep(1)
    return scan_queue(t)


def account(t, book, mxs, chaos):
    """the figures and the rules"""
    for mx in mxs:
        with mx.lock:
            for i, (_, _, data) in enumerate(mx.got):
                book.seen(data, ("mx", id(mx), i))
    scan_maildirs(t, book)
    queued = scan_queue(t)
    lost, dups = [], 0
    for n, kind in sorted(book.accepted.items()):
        keys = book.copies.get(n, set())
        if n in queued:
            continue
        if not keys:
            lost.append((n, kind))
        dups += max(0, len(keys) - 1)
    # a refused message's one copy is its bounce to bob (the MX took no
    # recipient, so no data); an unknown one may be anywhere, whole
    return {"accepted": len(book.accepted),
            "by kind": {k: sum(1 for v in book.accepted.values() if v == k)
                        for k in ("local", "remote", "refuse", "slow")},
            "unanswered": len(book.unknown), "refused": book.refused,
            "queued at end": len(queued), "lost": lost[:20],
            "lost count": len(lost), "partial": book.partial[:20],
            "partial count": len(book.partial), "duplicates": dups,
            "kills": chaos.kills, "kill count": sum(chaos.kills.values()),
            "disk full": chaos.fulls, "eio windows": chaos.eios,
            "allowed duplicates": chaos.total(),
            "client errors": book.errors}


# --- the run -------------------------------------------------------------

class Refuse(dict):
    """MX.rcpt for an MX that has no users: 550 to every local part"""

    def get(self, key, default=None):
        return "550 5.1.1 no such user"


def setup(t, mxs, tmpfs_mb):
    """the root (on its own tmpfs when root), users, routes"""
    tmpfs = False
    if tmpfs_mb and os.geteuid() == 0:
        root = os.path.join(t.tmp, "root")
        os.mkdir(root, 0o755)
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size={tmpfs_mb}m,mode=0755", "tmpfs", root],
                       check=True)
        tmpfs = True
    t.init()
    for name, value in (("passwordscheme", "sha512crypt"),
                        ("retrybase", "1"), ("me", "mx.example.test")):
        helpers_put(t, name, value)
    t.run("vadmin", "adddomain", DOMAIN, input="pm-pw\n", check=0)
    t.run("vadmin", "adduser", USER, PW, check=0)
    for u in range(LOCAL_USERS):
        t.run("vadmin", "adduser", f"u{u}@{DOMAIN}", UPW, check=0)
    routes = "".join(f"{k}.example:127.0.0.1:{mx.port}\n"
                     for k, mx in zip(KINDS, mxs))
    helpers_put(t, "smtproutes", routes.rstrip("\n"))
    return tmpfs


def helpers_put(t, name, value):
    path = t.path("control", name)
    with open(path, "w") as f:
        f.write(value + "\n")
    if os.geteuid() == 0:
        st = os.stat(t.path("control"))
        os.lchown(path, st.st_uid, st.st_gid)


def soak(t, seconds, kill_every=8.0, fault_every=45.0, tmpfs_mb=256,
         seed=None, pace=0.02, dump=None, calm=None):
    """the soak on a fresh root of t; returns the figures and the list of
    rules broken (empty: it passed). CALM: seconds of the calm tail (a
    tenth of the run, at least a minute); DUMP: a file for every sample"""
    if calm is None:
        calm = max(60, seconds // 10)
    rng = random.Random(seed)
    mxs = [helpers.MX(mode="accept"),
           helpers.MX(mode="accept", rcpt=Refuse(x="")),
           helpers.MX(mode="tempfail")]
    tmpfs = setup(t, mxs, tmpfs_mb)
    # no ASan quarantine: freed blocks held there would fill it over the
    # first minutes and read as growth (release builds have none)
    s = System(t, timeout=30, quarantine_mb=0)
    book, stop, cstop = Book(), threading.Event(), threading.Event()
    kstop = threading.Event()   # the kills and faults
    chaos = Chaos(s, tmpfs, rng)
    samples = {}
    threads = [threading.Thread(target=sampler, args=(s, stop, samples),
                                daemon=True)]
    for name, fn, pause in (
            ("mx", lambda: mx_one(s, book), pace),
            ("mx2", lambda: mx_one(s, book), pace),
            ("submit", lambda: submit_one(s, book), 0.05),
            ("inject", lambda: inject_one(s, book), 0.5),
            ("pop", lambda: pop_user(s, book, rng.randrange(LOCAL_USERS)),
             0.1)):
        threads.append(threading.Thread(target=loop, args=(
            stop, book, name, fn, pause), daemon=True))
    threads.append(threading.Thread(target=chaos.flip, args=(
        cstop, mxs[2], min(60.0, seconds / 6)), daemon=True))
    threads.append(threading.Thread(target=chaos.run, args=(
        kstop, kill_every, fault_every), daemon=True))
    fds0 = idle_fds(s)
    t0 = time.monotonic()
    try:
        for th in threads:
            th.start()
        time.sleep(seconds)
        t1 = time.monotonic()
        kstop.set()
        threads[-1].join()
        # the calm tail: the same load, no kill, no fault
        ta = calm_start(s, samples, t1)
        time.sleep(calm)
        tb = time.monotonic()
        cstop.set()
        threads[-2].join()
        stop.set()
        for th in threads[:-2]:
            th.join(120)
        queued = settled(t, book, "slow", 300)
        fig = account(t, book, mxs, chaos)
        fig["queued at end"] = len(queued)
        fig["processes"], grew = flat(samples, t0, t1, ta, tb)
        fig["calm tail seconds"] = round(tb - ta)
        if dump:
            write_samples(dump, samples, t0)
        # the deferred ones go once their MX takes them (retries hold
        # descriptors while they run); then the run is idle
        mxs[2].mode = "accept"
        helpers.wait_for("an empty queue", lambda: not scan_queue(t), 300)
        with mxs[2].lock:
            late = {int(m.group(1)) for m in (TOKEN.search(d) for _, _, d
                                              in mxs[2].got) if m}
        fig["deferred, then delivered"] = len(late & queued)
        fig["deferred, never delivered"] = sorted(queued - late)[:20]
        time.sleep(5)       # the sessions of the last clients end
        fds1 = idle_fds(s)
        fig["idle fds before, after (pid, count)"] = {
            r: (fds0.get(r), fds1.get(r)) for r in sorted(set(fds0) | set(fds1))}
        grew += fds_grown(fds0, fds1)
        fig["seconds"] = round(t1 - t0)
        fig["load average"] = os.getloadavg()
        text = s.stop()
    finally:
        if s.p.poll() is None:
            s.stop()
        for mx in mxs:
            mx.close()
        if tmpfs:
            subprocess.run(["umount", "-l", t.root], check=False)
    fig["sanitizer reports"] = sum(text.count(k) for k in (
        "ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"))
    broken = []
    if fig["lost count"]:
        broken.append("lost")
    if fig["partial count"]:
        broken.append("partial")
    if fig["duplicates"] > fig["allowed duplicates"]:
        broken.append("duplicates beyond one per kill or fault")
    if grew:
        broken.append(f"grew: {grew}")
    if fig["deferred, never delivered"]:
        broken.append("deferred mail not delivered once its MX took it")
    if fig["by kind"]["local"] == 0 or fig["by kind"]["remote"] == 0:
        broken.append("no load went through")
    return fig, broken


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=3600)
    ap.add_argument("--kill-every", type=float, default=8.0)
    ap.add_argument("--fault-every", type=float, default=45.0)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--calm", action="store_true",
                    help="no kill and no fault: the load alone")
    ap.add_argument("--calm-tail", type=int, metavar="SECONDS",
                    help="the calm tail (default: a tenth of the run, "
                    "at least 60 s)")
    ap.add_argument("--samples", metavar="FILE",
                    help="write every RSS and backlog sample to FILE")
    ap.add_argument("--pace", type=float, default=0.02,
                    help="seconds each port-25 client waits between "
                    "messages")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, ".."))
    from run import reachable_bin   # a 0700 clone: the mail user's copy
    bindir, copy = reachable_bin(os.path.abspath(a.bin))
    t = helpers.Ctx(bindir)
    try:
        fig, broken = soak(t, a.seconds, 0 if a.calm else a.kill_every,
                           a.fault_every, seed=a.seed, pace=a.pace,
                           dump=a.samples, calm=a.calm_tail)
    finally:
        if copy:
            shutil.rmtree(copy, ignore_errors=True)
    fig["command"] = " ".join(sys.argv)
    fig["broken"] = broken
    print(json.dumps(fig, indent=1, default=str))
    if not broken:
        shutil.rmtree(t.tmp, ignore_errors=True)
    else:
        print(f"the root is kept for a look: {t.root}")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
