#!/usr/bin/env python3
"""crash_peers.py - issue 15's crash points on the peers' daemons:
Postfix's smtpd, cleanup, qmgr, virtual, smtp and pickup, and Dovecot's
pop3-login and auth, each killed at its N-th call of every name of
tests/hostile/hostile.py's CRASH_CALLS while mail goes through a running
private instance.

    python3 bench/crash_peers.py --daemon smtpd [--calls write,fsync]
    python3 bench/crash_peers.py --daemon smtpd --calls read,openat,close \
        --thin-phase 1
    python3 bench/crash_peers.py --daemon pop3-login
    python3 bench/crash_peers.py --daemon cleanup --fault

With --fault the walk injects write faults instead of kills: every N of
each name of hostile.py's FAULT_CALLS fails with ENOSPC, EDQUOT or EIO
(in turn from one N to the next; --every-errno: each N with all three),
and the oracle is the same, a failed call seen standing where a kill
does (one more copy allowed per strike after a 250 or no reply; none
after a 4xx). The daemon struck is given 3 s to act on the failure
before the next case stops it. pickup's messages come by sendmail, with
no queue id to find a bounce by: there a bounced one counts as lost.

Run as root with strace and Debian's postfix, postfix-cdb, dovecot-core
and dovecot-pop3d (../shared/bench/peers/install.sh).
One daemon a command (each walk takes minutes). The instance comes from
../shared/bench/peers/ (postfix-setup.sh, dovecot-setup.sh) on free loopback
ports, and is stopped by PID at the end.

How a daemon is struck: master(8) (or Dovecot's master) starts it from a
private daemon directory (Postfix's daemon_directory, Dovecot's
`executable`) where the daemon is a wrapper that execs
`strace -f -e inject=NAME:signal=KILL:when=N -- the daemon`, the (NAME, N)
read from a file that this script rewrites before each run. strace counts
N per process from the daemon's start, as the driver does for Facteur, so
every process of the daemon started while the point is set (a restarted
one too) is struck at the same point; the point is cleared once the strike
is seen, and the daemons still running under it are stopped (SIGTERM) so
that the next ones start clean. The first, untraced-by-injection run counts
each name's calls (the most one process made, hostile.counts).

The oracle after each run, the same as Facteur's column (docs/security.md):
- Postfix: one message by SMTP to smtpd (to a virtual(8) mailbox, or for
  smtp(8) to a helpers.MX sink routed by transport_maps; for pickup(8),
  by sendmail into maildrop/, its exit 0 standing for the 250), then, with the
  point cleared, a probe message. Within 60 s (a `postqueue -f` every 3 s,
  backoffs of 1-2 s), the probe is delivered and an accepted message (250
  to the dot) is there: one whole copy, one more allowed per kill seen
  (a delivery in flight). Not delivered and still queued: hung; nowhere:
  lost. A refused one (4xx) delivered: duplicated (the client's retry
  makes two); no reply (the session died): at most one. A copy in new/ or
  cur/ (or at the sink) without its last line: partial. A 5xx, or a
  message taken and then bounced (the log's status=bounced for its queue
  id): code.
- Dovecot: three messages in the Maildir; a login (USER, PASS, STAT, QUIT)
  struck in pop3-login or auth; then, with the point cleared, the next
  login must answer +OK to all and STAT 3 within 60 s (else hung), and
  the three files be there, unchanged (lost, partial).
Both: a daemon that died of a signal other than KILL or TERM, or a panic
in the log: crashed.

Prints one line per daemon (cases, kills seen, messages, the failures by
kind, tmp/ leftovers), then each failure with its (call, N) and what was
seen, and the load average.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
sys.path[:0] = [os.path.join(TESTS, "integration"),
                os.path.join(TESTS, "hostile")]
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))
PEERS = os.path.join(SHARED, "peers")

import helpers  # noqa: E402
import hostile  # noqa: E402
from hostile import (CRASH_CALLS, ERRNOS, FAULT_CALLS, body, read,  # noqa
                     whole)

PF_SBIN = "/usr/lib/postfix/sbin"
DC_LIBEXEC = "/usr/lib/dovecot"
POSTFIX = ("smtpd", "cleanup", "qmgr", "virtual", "smtp", "pickup")
DOVECOT = ("pop3-login", "auth")
DOM, USER, PW = "example.test", "user1@example.test", "bench-pass"
DEADLINE = 60
KINDS = ("lost", "partial", "duplicated", "code", "crashed", "hung")

WRAPPER = """#!/bin/sh
# written by bench/crash_peers.py: the daemon under strace, struck at the
# point the spec file names (none: only counted)
. {spec}
exec {strace} -f -qq -o "$LOGDIR/{name}.$$" -e trace={calls} $INJECT \\
    -- {real} "$@"
"""


def note(msg):
    print(msg, file=sys.stderr, flush=True)


class Strike:
    """the wrapper's spec file and the logs of one run"""

    def __init__(self, tmp, name, real):
        self.tmp, self.name, self.real = tmp, name, real
        self.spec = os.path.join(tmp, f"spec.{name}")
        self.logs = os.path.join(tmp, "logs")
        self.set("base", None)

    def wrapper(self, path):
        with open(path, "w") as f:
            f.write(WRAPPER.format(spec=self.spec, strace=hostile.STRACE,
                                   name=self.name, calls=",".join(CRASH_CALLS),
                                   real=self.real))
        os.chmod(path, 0o755)

    def set(self, tag, inject):
        """the point for the processes started from now on (atomic: a
        wrapper reads the old spec or the new one, never half)"""
        self.dir = os.path.join(self.logs, tag)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.logs, 0o755)
        os.chmod(self.dir, 0o777)
        arg = "" if inject is None else \
            "-e inject=%s:%s:when=%d" % inject
        tmp = self.spec + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"LOGDIR='{self.dir}'\nINJECT='{arg}'\n")
        os.rename(tmp, self.spec)

    def text(self, tag=None):
        d = os.path.join(self.logs, tag) if tag else self.dir
        out = []
        for p in sorted(glob.glob(os.path.join(d, "*"))):
            out.append(hostile.read_log(p))
        return "\n".join(out)

    def kills(self, tag=None):
        """the strikes seen: kills, or calls failed by injection"""
        text = self.text(tag)
        return (text.count("+++ killed by SIGKILL +++") +
                text.count(" (INJECTED)"))

    def counts(self, tag):
        got = {}
        for p in glob.glob(os.path.join(self.logs, tag, "*")):
            for k, v in hostile.counts(hostile.read_log(p)).items():
                got[k] = max(got.get(k, 0), v)
        return got

    def live(self):
        """the daemon's processes now running (children of a wrapper's
        strace, which names our log directory on its command line)"""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{ppid}/cmdline", "rb") as f:
                    parent = f.read()
            except (OSError, ValueError, IndexError):
                continue
            if exe == self.real and self.logs.encode() in parent:
                out.append(int(pid))
        return out

    def stop_live(self, timeout=10):
        """SIGTERM to the daemon's processes (master starts new ones,
        which read the current spec), until they are gone"""
        for pid in self.live():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + timeout
        while self.live() and time.monotonic() < end:
            time.sleep(0.05)


class Tally(hostile.Tally):
    """hostile.Tally with the peers' kinds and tmp/ leftovers (allowed:
    no reader looks there)"""

    def __init__(self, group, mode="crash"):
        super().__init__(group)
        self.fail = {k: 0 for k in KINDS}
        self.tmp_left = 0
        self.mode = mode

    def line(self):
        f = " ".join(f"{k} {v}" for k, v in self.fail.items())
        return (f"{self.mode}-peer {self.group}: cases {self.runs} struck "
                f"{self.hits} messages {self.messages} {f} "
                f"tmp-leftovers {self.tmp_left}")


class Rig:
    """what both peers' instances share: a root under tmp, one user's
    Maildir, a port (given to the setup script as port_var), the struck
    daemon's wrapper (real: the daemon's own path)"""

    def __init__(self, tmp, name, port_var, real):
        self.tmp, self.name = tmp, name
        self.root = os.path.join(tmp, "peers")
        self.port = helpers.free_port()
        self.env = dict(os.environ, BENCH_ROOT=self.root, BENCH_USERS="1",
                        BENCH_DOMAINS=DOM, **{port_var: str(self.port)})
        self.maildir = os.path.join(self.root, "domains", DOM, "user1",
                                    "Maildir")
        self.strike = Strike(tmp, name, real)
        self.logpos = 0

    def tmp_left(self):
        return len(os.listdir(os.path.join(self.maildir, "tmp")))

    def new_log(self):
        """what the peer logged since the last call"""
        data = read(self.log)
        out, self.logpos = data[self.logpos:], len(data)
        return out.decode(errors="replace")


# --- Postfix -----------------------------------------------------------------

class Postfix(Rig):
    """a private Postfix (postfix-setup.sh) whose daemon NAME runs under
    the wrapper, with short retries, and a sink MX for smtp(8)"""

    def __init__(self, tmp, name):
        super().__init__(tmp, name, "SMTP_PORT", os.path.join(PF_SBIN, name))
        self.conf = os.path.join(self.root, "postfix", "etc")
        self.queue = os.path.join(self.root, "postfix", "queue")
        self.log = os.path.join(self.root, "postfix", "log", "maillog")
        self.mx = helpers.MX()
        subprocess.run([os.path.join(PEERS, "postfix-setup.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        subprocess.run([os.path.join(PEERS, "postfix-stop.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        sbin = os.path.join(tmp, "sbin")
        os.makedirs(sbin)
        for p in os.listdir(PF_SBIN):
            if p != name:
                os.symlink(os.path.join(PF_SBIN, p), os.path.join(sbin, p))
        self.strike.wrapper(os.path.join(sbin, name))
        os.chmod(tmp, 0o755)
        for s in (f"daemon_directory={sbin}", "service_throttle_time=1s",
                  "queue_run_delay=1s", "minimal_backoff_time=1s",
                  "maximal_backoff_time=2s", "transport_retry_time=1s",
                  "transport_maps=inline:{relay.test="
                  f"smtp:[127.0.0.1]:{self.mx.port}}}"):
            subprocess.run(["postconf", "-c", self.conf, "-e", s], check=True)
        self.one_use()
        subprocess.run(["postfix", "-c", self.conf, "start"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.rcpt = "x@relay.test" if name == "smtp" else USER

    def one_use(self):
        """max_use=1 for the struck service (qmgr and pickup aside, which
        live on and are restarted by stop_live): each message meets a new
        process, started under the point then set"""
        if self.name in ("qmgr", "pickup"):
            return
        path = os.path.join(self.conf, "master.cf")
        lines = open(path).read().splitlines()
        out = []
        for ln in lines:
            out.append(ln)
            f = ln.split()
            if len(f) >= 8 and not ln[0].isspace() and f[7] == self.name:
                out.append("  -o max_use=1")
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")

    def close(self):
        subprocess.run([os.path.join(PEERS, "postfix-stop.sh"), self.root],
                       env=self.env, stdout=sys.stderr)
        self.mx.close()

    def send(self, k, timeout=DEADLINE):
        """one message by SMTP: the reply to the dot (an int), None if
        the session died first (or a step outlived timeout), or the
        refusal's code"""
        self.said = b""
        if self.name == "pickup":
            return self.sendmail(k, timeout)
        try:
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)
            try:
                s.ehlo("client.test")
                code, _ = s.mail("s@sender.test")
                if code != 250:
                    return code
                code, _ = s.rcpt(self.rcpt)
                if code not in (250, 251):
                    return code
                code, self.said = s.data(body(k))
                return code
            finally:
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    pass
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException,
                ConnectionError, socket.timeout, OSError):
            return None

    def sendmail(self, k, timeout):
        """pickup's input: sendmail and postdrop into maildrop/; exit 0
        stands for a 250, another exit for a 451"""
        try:
            p = subprocess.run(["/usr/sbin/sendmail", "-C", self.conf, "-f",
                                "s@sender.test", "--", self.rcpt],
                               input=body(k), capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return 250 if p.returncode == 0 else 451

    def copies(self, k):
        """(whole, partial) copies of message k where readers look: the
        Maildir's new/ and cur/, or the sink's accepted transactions"""
        good = bad = 0
        if self.name == "smtp":
            with self.mx.lock:
                got = list(self.mx.got)
            datas = [g[2] if isinstance(g[2], bytes) else g[2].encode()
                     for g in got]
        else:
            datas = [read(p) for sub in ("new", "cur")
                     for p in glob.glob(os.path.join(self.maildir, sub, "*"))]
        for d in datas:
            d = d.replace(b"\r\n", b"\n")
            if b"X-Seq: %d\n" % k in d:
                ok = whole(d, k)
                good, bad = good + ok, bad + (not ok)
        return good, bad

    def queued(self, k):
        pat = re.compile(rb"X-Seq: %d(?!\d)" % k)
        for p in glob.glob(os.path.join(self.queue, "*", "**"),
                           recursive=True):
            if os.path.isfile(p) and pat.search(read(p)):
                return True
        return False

    def flush(self):
        subprocess.run(["postqueue", "-c", self.conf, "-f"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        nxt = time.monotonic() + 3
        while time.monotonic() < end:
            if cond():
                return True
            if time.monotonic() > nxt:
                self.flush()
                nxt = time.monotonic() + 3
            time.sleep(0.1)
        return cond()

    def clean(self):
        for sub in ("new", "cur", "tmp"):
            for p in glob.glob(os.path.join(self.maildir, sub, "*")):
                os.unlink(p)
        with self.mx.lock:
            self.mx.got.clear()
            self.mx.sessions.clear()


def crashed(log):
    """a daemon dead of a signal nobody sent, or a panic"""
    out = []
    for m in re.finditer(r"killed by signal (\d+)", log):
        if m.group(1) not in ("9", "15"):
            out.append(m.group(0))
    out += re.findall(r"panic: .*", log)
    return out


def postfix_case(pf, k, inject):
    """one message with the point set, then a probe with it cleared;
    the problems seen"""
    st = pf.strike
    st.stop_live()
    tag = "base" if inject is None else f"k{k}"
    st.set(tag, inject)
    # a daemon struck at its start is struck again at each restart
    # while the point is set: the session gives up after 5 s
    code = pf.send(k, timeout=5)
    said = pf.said.decode(errors="replace")
    # the strike, or the message through, or a refusal already final
    pf.wait(lambda: st.kills(tag) or pf.copies(k)[0]
            or (code != 250 and not st.live()), 20)
    st.set("clear", None)
    if inject is not None and inject[1].startswith("error="):
        # a daemon that met a failed call lives on to act on it: a
        # one-use one (smtpd, cleanup, virtual, smtp) ends by itself;
        # qmgr and pickup are given the same few seconds
        pf.wait(lambda: not st.live(), 3)
    st.stop_live()
    probe = k + 1000000
    pcode = pf.send(probe)
    accepted = code == 250
    pf.wait(lambda: pf.copies(probe)[0] and
            (not accepted or pf.copies(k)[0]), DEADLINE)
    kills = st.kills(tag)
    good, bad = pf.copies(k)
    pgood, pbad = pf.copies(probe)
    log = pf.new_log()
    probs = []
    if bad or pbad:
        probs.append(("partial", f"{bad + pbad} copies without their end"))
    if accepted and good == 0:
        qid = re.search(r"queued as (\w+)", said)
        bounced = qid and re.search(r"\b" + re.escape(qid.group(1)) +
                                    r": to=<[^>]*>.*status=bounced.*", log)
        if bounced:
            # returned to the sender (its report may still be queued,
            # holding the message): not lost, but a fault of the host
            # answered as the message's own permanent failure
            probs.append(("code", "250, then bounced: " + bounced.group(0)))
        elif pf.queued(k):
            probs.append(("hung", "250, still queued after 60 s"))
        else:
            probs.append(("lost", "250, then nowhere"))
    if good > (1 + kills if code in (250, None) else 0):
        probs.append(("duplicated", f"reply {code} {said!r}, {good} "
                                    f"copies, {kills} kills"))
    if code is not None and 500 <= code < 600:
        probs.append(("code", f"a kill answered {code}"))
    if pcode != 250 or pgood != 1:
        probs.append(("hung", f"the probe: reply {pcode}, {pgood} copies "
                              f"after {DEADLINE} s"))
    for c in crashed(log):
        probs.append(("crashed", c))
    note(f"  case {k} {inject}: reply {code} {said!r}, {kills} kills, "
         f"copies {good}+{bad} partial, probe {pcode} {pgood}")
    return probs, kills, pf.tmp_left()


# --- Dovecot -----------------------------------------------------------------

class Dovecot(Rig):
    """a private Dovecot (dovecot-setup.sh) whose pop3-login or auth runs
    under the wrapper, over one Maildir of three messages"""

    def __init__(self, tmp, name):
        super().__init__(tmp, name, "POP3_PORT",
                         os.path.join(DC_LIBEXEC, name))
        self.d = os.path.join(self.root, "dovecot")
        self.conf = os.path.join(self.d, "dovecot.conf")
        self.log = os.path.join(self.d, "log", "dovecot.log")
        os.makedirs(self.maildir + "/new")
        subprocess.run([os.path.join(PEERS, "dovecot-setup.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        subprocess.run([os.path.join(PEERS, "dovecot-stop.sh"), self.root],
                       env=self.env, check=True, stdout=sys.stderr)
        wrap = os.path.join(tmp, name)
        self.strike.wrapper(wrap)
        os.chmod(tmp, 0o755)
        with open(self.conf, "a") as f:
            f.write(f"service {name} {{\n  executable = {wrap}\n}}\n")
        self.fill()
        subprocess.run(["dovecot", "-c", self.conf], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def fill(self):
        """three messages, owned as virtual(8) would leave them"""
        import pwd
        vmail = pwd.getpwnam(self.env.get("VMAIL_USER", "vmail"))
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)
        self.msgs = {}
        for i in (1, 2, 3):
            p = os.path.join(self.maildir, "new", f"100{i}.M1P1.peer")
            with open(p, "wb") as f:
                f.write(body(i))
            self.msgs[i] = body(i)
        for top, dirs, files in os.walk(os.path.dirname(self.maildir)):
            for x in dirs + files:
                os.chown(os.path.join(top, x), vmail.pw_uid, vmail.pw_gid)

    def close(self):
        subprocess.run([os.path.join(PEERS, "dovecot-stop.sh"), self.root],
                       env=self.env, stdout=sys.stderr)

    def login(self, timeout=DEADLINE):
        """USER, PASS, STAT, QUIT: the replies (None where the session
        ended first)"""
        reps = []
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=timeout) as s:
                f = s.makefile("rb")
                reps.append(f.readline().decode(errors="replace").strip())
                for cmd in (f"USER {USER}", f"PASS {PW}", "STAT", "QUIT"):
                    s.sendall(cmd.encode() + b"\r\n")
                    reps.append(f.readline().decode(errors="replace")
                                .strip() or None)
        except OSError:
            reps.append(None)
        return reps

    def mailbox(self):
        """(whole, changed) messages of the three, wherever they are"""
        good = bad = 0
        for sub in ("new", "cur"):
            for p in glob.glob(os.path.join(self.maildir, sub, "*")):
                d = read(p)
                for i, m in self.msgs.items():
                    if b"X-Seq: %d\n" % i in d:
                        good, bad = good + (d == m), bad + (d != m)
        return good, bad



def dovecot_case(dc, k, inject):
    """one login with the point set, the next with it cleared"""
    st = dc.strike
    st.stop_live()
    tag = "base" if inject is None else f"k{k}"
    st.set(tag, inject)
    first = dc.login(timeout=20)
    st.set("clear", None)
    st.stop_live()
    t0 = time.monotonic()
    nxt = dc.login()
    while not ok_login(nxt) and time.monotonic() - t0 < DEADLINE:
        time.sleep(1)
        nxt = dc.login(timeout=max(1, DEADLINE - (time.monotonic() - t0)))
    probs = []
    if not ok_login(nxt):
        probs.append(("hung", f"the next login after {DEADLINE} s: {nxt}"))
    if inject is None and not ok_login(first):
        probs.append(("code", f"the login without a point: {first}"))
    good, bad = dc.mailbox()
    if bad:
        probs.append(("partial", f"{bad} messages changed"))
    if good + bad < 3:
        probs.append(("lost", f"{good + bad} of 3 left"))
    for c in crashed(dc.new_log()):
        probs.append(("crashed", c))
    note(f"  case {k} {inject}: {st.kills(tag)} kills, first {first[1:3]}, "
         f"next after {time.monotonic() - t0:.1f} s, mailbox {good}+{bad}")
    return probs, st.kills(tag), dc.tmp_left()


def ok_login(reps):
    return (len(reps) == 5 and all(r and r.startswith("+OK") for r in reps)
            and reps[3].startswith("+OK 3 "))


# --- the walk ----------------------------------------------------------------

def wait_port(port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def walk(rig, case, name, stride, calls, limit, thin, phase, mode="crash",
         every_errno=False):
    """the base case (which counts the calls), then every stride-th N of
    each name of calls (every thin[name]-th for a name thinned, shifted
    by phase: phase 1 walks the Ns that phase 0 leaves out). The first N
    of a name is shifted by its place in CRASH_CALLS, as the driver's
    walk does, whatever names are given"""
    probs, _, _ = case(rig, 0, None)
    if probs:
        raise SystemExit(f"{name}: the case without a point failed: {probs}")
    n_of = rig.strike.counts("base")
    note(f"{name}: calls of the base case: " + ", ".join(
        f"{c} {n_of[c]}" for c in calls if n_of.get(c)))
    tally = Tally(name, mode)
    k = 0
    for call in calls:
        ci = CRASH_CALLS.index(call) if call in CRASH_CALLS else 0
        st = thin.get(call, stride)
        done = set(hostile.points(n_of.get(call, 0), st, ci)) \
            if phase and call in thin else set()
        ci += phase if call in thin else 0
        for n in hostile.points(n_of.get(call, 0), st, ci):
            if n in done:
                continue        # phase 0 had it (the last N)
            for act in hostile.actions(mode, ERRNOS, every_errno, k):
                if limit and tally.runs >= limit:
                    break
                k += 1
                probs, kills, left = case(rig, k, (call, act, n))
                tally.runs += 1
                tally.hits += kills > 0
                tally.messages += 1 if isinstance(rig, Postfix) else 3
                tally.tmp_left += left
                tally.add(f"{call} #{n} {act} ({kills} strikes)", probs)
                if probs:
                    note(f"{name} {call} #{n} {act}: {probs}")
                if isinstance(rig, Postfix):
                    rig.clean()
    return tally


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon", required=True, choices=POSTFIX + DOVECOT)
    ap.add_argument("--stride", type=int, default=1,
                    help="every STRIDE-th N of each call (1: every call)")
    ap.add_argument("--calls",
                    help="the names to strike (default: CRASH_CALLS, "
                    "with --fault FAULT_CALLS)")
    ap.add_argument("--fault", action="store_true",
                    help="write faults instead of kills")
    ap.add_argument("--every-errno", action="store_true",
                    help="with --fault, each N with each errno")
    ap.add_argument("--thin", default="read,openat,close",
                    help="names struck every THIN_STRIDE-th N only: most "
                    "of their calls are the daemon's start (its "
                    "configuration, libraries, tables), each a case of "
                    "5 s; '' for none")
    ap.add_argument("--thin-stride", type=int, default=2)
    ap.add_argument("--thin-phase", type=int, default=0,
                    help="1: the thinned names' other Ns (with --calls "
                    "read,openat,close, the complement of a phase 0 walk)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (the straced "
                    "daemons' logs of every case, under logs/TAG)")
    ap.add_argument("--limit", type=int, default=0,
                    help="stop after this many cases (0: no limit)")
    a = ap.parse_args()
    if a.calls is None:
        a.calls = ",".join(FAULT_CALLS if a.fault else CRASH_CALLS)
    if os.geteuid() != 0:
        raise SystemExit("run as root (the peers start as root)")
    why = hostile.skip_reason()
    if why:
        raise SystemExit(why)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="crash-peers-")
    os.chmod(tmp, 0o755)
    t0 = time.monotonic()
    load0 = os.getloadavg()
    rig = None
    try:
        if a.daemon in POSTFIX:
            rig = Postfix(tmp, a.daemon)
            case = postfix_case
        else:
            rig = Dovecot(tmp, a.daemon)
            case = dovecot_case
        thin = {c: a.thin_stride for c in a.thin.split(",") if c}
        tally = walk(rig, case, a.daemon, a.stride, a.calls.split(","),
                     a.limit, thin, a.thin_phase,
                     "fault" if a.fault else "crash", a.every_errno)
    finally:
        if rig is not None:
            rig.strike.set("clear", None)
            rig.close()
    print(tally.line() + f" stride {a.stride} thin {a.thin or '-'}/"
          f"{a.thin_stride} phase {a.thin_phase} seconds "
          f"{time.monotonic() - t0:.0f}")
    for x in tally.examples:
        print("  " + x)
    print("load average %.2f %.2f %.2f at the start, " % load0 +
          "%.2f %.2f %.2f at the end" % os.getloadavg())
    if a.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
