"""scenarios - the runs that test_crash.py and test_faults.py walk with
hostile.walk(), each with its oracle (hostile.py says what the failure
kinds mean). Message k carries `X-Seq: k` and ends with `end of k`, so
that every copy of it can be found and proved whole.

Not a test module itself (run.py collects test_*.py only).
"""
import glob
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from hostile import (Scenario, body, drain, finish,  # noqa: E402
                     maildir_copies, put_control, queue_copies, read,
                     setup_root, spawn, temporary_ok, traced, whole)

DOM = "a.test"


def clear_queue(t):
    """the queue emptied between runs, so that each run's oracle looks at
    its own message only (tmp/ leftovers included: counted by then)"""
    for p in helpers.queue_files(t) + glob.glob(
            t.path("queue", "tmp", "*")):
        os.unlink(p)


def clear_maildir(t, user):
    for sub in ("new", "cur", "tmp"):
        d = t.path("domains", DOM, user, "Maildir", sub)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            os.unlink(os.path.join(d, name))


def queue_check(t):
    """mta-send --check: the queue holds nothing a reader would refuse"""
    p = t.run("mta-send", "--check", env={"ASAN_OPTIONS": "detect_leaks=0"})
    return [] if p.returncode == 0 else [("check", p.out[-300:])]


def count_rule(good, bad, accepted, killed, where):
    """the rule of every message: accepted means exactly one whole copy
    (a kill may leave one more unacknowledged one); not accepted means
    none, or one whole that a kill left between the commit and the
    acknowledgment; never a partial one"""
    out = []
    if bad:
        out.append(("partial", f"{bad} partial copies in {where}"))
    if accepted and good == 0:
        out.append(("lost", f"acknowledged, no copy in {where}"))
    elif good > 1:
        out.append(("duplicated", f"{good} copies in {where}"))
    elif good == 1 and not accepted and not killed:
        out.append(("duplicated", f"a temporary failure, yet queued in "
                                  f"{where}: the retry makes two"))
    return out


def code_rule(run, inject, codes=(0, 111)):
    if temporary_ok(run, inject, codes):
        return []
    return [("code", f"exit {run.rc}: "
                     f"{run.err.decode(errors='replace')[-200:]}")]


# --- mta-inject -------------------------------------------------------------

class Inject(Scenario):
    """mta-inject accepting a message into the queue"""
    name = "mta-inject"

    def prepare(self, t):
        setup_root(t)

    def argv(self, t, k):
        return [t.bin("mta-inject"), "--root", t.root, "-f",
                "s@sender.test", f"u@{DOM}"]

    def input(self, t, k):
        return body(k)

    def judge(self, t, k, run, inject):
        killed = run.killed      # the program or a child it started
        good, bad = queue_copies(t, k)
        out = code_rule(run, inject)
        out += count_rule(good, bad, run.rc == 0, killed, "queue")
        out += queue_check(t)
        if run.rc != 0 and good == 0:
            out += self.retry(t, k)
        clear_queue(t)
        return out

    def retry(self, t, k):
        p = t.run("mta-inject", "-f", "s@sender.test", f"u@{DOM}",
                  input=body(k), env={"ASAN_OPTIONS": "detect_leaks=0"})
        good, _ = queue_copies(t, k)
        if p.returncode != 0 or good != 1:
            return [("lost", f"the retry: exit {p.returncode}, {good} "
                             f"copies: {p.err[-200:]}")]
        return []


# --- mta-smtpd --------------------------------------------------------------

def smtp_session(k):
    data = body(k).replace(b"\n", b"\r\n")
    return (b"EHLO client.test\r\nMAIL FROM:<s@sender.test>\r\n"
            b"RCPT TO:<u@" + DOM.encode() + b">\r\nDATA\r\n" + data +
            b".\r\nQUIT\r\n")


def data_reply(text):
    """the reply to the end of data: the one after 354"""
    lines = [ln for ln in text.split("\r\n") if len(ln) > 3]
    for i, ln in enumerate(lines):
        if ln.startswith("354"):
            return lines[i + 1] if i + 1 < len(lines) else None
    return None


class Smtpd(Scenario):
    """mta-smtpd --inetd accepting a message from a relay client; the
    session process is the one killed"""
    name = "mta-smtpd"

    def prepare(self, t):
        setup_root(t)

    def argv(self, t, k):
        return [t.bin("mta-smtpd"), "--root", t.root, "--inetd"]

    def input(self, t, k):
        return smtp_session(k)

    def go(self, t, k, inject):
        return traced(t, self.argv(t, k), self.input(t, k), inject=inject,
                      env={"TCPREMOTEIP": "127.0.0.1"})

    def judge(self, t, k, run, inject):
        reply = data_reply(run.text)
        accepted = bool(reply and reply.startswith("250"))
        out = []
        if reply and reply[0] not in "24":
            out.append(("code", f"{reply!r} to a temporary fault"))
        good, bad = queue_copies(t, k)
        # no reply at all: the session died (killed, or its reply could
        # not be written) and the client cannot know; one copy queued
        # then is the unacknowledged one of the rule
        out += count_rule(good, bad, accepted, reply is None, "queue")
        out += queue_check(t)
        if not accepted and good == 0:
            out += self.retry(t, k)
        clear_queue(t)
        return out

    def retry(self, t, k):
        p = t.run("mta-smtpd", "--inetd", input=smtp_session(k),
                  env={"TCPREMOTEIP": "127.0.0.1",
                       "ASAN_OPTIONS": "detect_leaks=0"})
        reply = data_reply(p.out) or ""
        if not reply.startswith("250") or queue_copies(t, k)[0] != 1:
            return [("lost", f"the retry was answered {reply!r}")]
        return []


# --- vdeliver ---------------------------------------------------------------

class Vdeliver(Scenario):
    """vdeliver delivering into a Maildir"""
    name = "vdeliver"

    def prepare(self, t):
        setup_root(t)

    def argv(self, t, k):
        return [t.bin("vdeliver"), "--root", t.root, "-f", "s@sender.test",
                "--", f"u@{DOM}"]

    def input(self, t, k):
        return body(k)

    def copies(self, t, k):
        return maildir_copies(t, "u", DOM, k)

    def judge(self, t, k, run, inject):
        killed = run.killed      # the program or a child it started
        good, bad = self.copies(t, k)
        out = code_rule(run, inject)
        out += count_rule(good, bad, run.rc == 0, killed, "the mailbox")
        if run.rc != 0 and good == 0:
            p = subprocess.run(self.argv(t, k), input=body(k),
                               capture_output=True,
                               env=dict(os.environ,
                                        ASAN_OPTIONS="detect_leaks=0"))
            if p.returncode != 0 or self.copies(t, k)[0] != 1:
                out.append(("lost", f"the retry: exit {p.returncode}"))
        self.clear(t)
        return out

    def clear(self, t):
        clear_maildir(t, "u")


class Forward(Vdeliver):
    """vdeliver forwarding to a remote address: into the queue, with an
    SRS sender"""
    name = "vdeliver-forward"

    def prepare(self, t):
        setup_root(t, users=("u", "f"))
        t.run("vadmin", "forward", f"f@{DOM}", "x@r.test", check=0)

    def argv(self, t, k):
        return [t.bin("vdeliver"), "--root", t.root, "-f", "s@sender.test",
                "--", f"f@{DOM}"]

    def copies(self, t, k):
        return queue_copies(t, k)

    def go(self, t, k, inject):
        # vdeliver alone: the mta-inject it starts gets an environment of
        # its own, where LeakSanitizer would fail under ptrace; mta-inject
        # has its own walk
        return traced(t, self.argv(t, k), self.input(t, k), inject=inject,
                      follow=False)

    def clear(self, t):
        clear_queue(t)


# --- mta-send with the vdeliver server --------------------------------------

class Send(Scenario):
    """mta-send delivering one queued message to a local mailbox through
    its vdeliver server (the whole process tree is traced: the scheduler,
    the server and its workers). strace counts calls per process, so an
    injection strikes every worker that gets that far: the fault lasts as
    long as the traced run (window seconds); then mta-send is stopped and
    run again untraced until the queue is empty (the fault is gone), as
    facteur run restarts it after a crash"""
    name = "mta-send"
    window = 8

    def prepare(self, t):
        setup_root(t)

    def go(self, t, k, inject):
        t.run("mta-inject", "-f", "s@sender.test", f"u@{DOM}",
              input=body(k), env={"ASAN_OPTIONS": "detect_leaks=0"}, check=0)
        p = spawn(t, [t.bin("mta-send"), "--root", t.root], inject=inject)
        end = time.monotonic() + self.window
        while p.poll() is None and helpers.queue_files(t) and \
                time.monotonic() < end:
            time.sleep(0.02)
        for pid in helpers.children(p.pid):     # mta-send: a clean stop
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass        # it ended between the listing and the kill
        return finish(p, timeout=30)

    def judge(self, t, k, run, inject):
        out = []
        if helpers.queue_files(t):
            drain(t)
        good, bad = maildir_copies(t, "u", DOM, k)
        # the rule: one copy more for each kill that caught a delivery
        # in flight (every killed process counted); none for a fault
        kills = run.log.count("killed by SIGKILL")
        if bad:
            out.append(("partial", f"{bad} partial copies"))
        if good == 0:
            out.append(("lost", "not delivered after a restart"))
        elif good > 1 + kills:
            out.append(("duplicated", f"{good} copies, {kills} kills"))
        out += queue_check(t)
        clear_maildir(t, "u")
        clear_queue(t)
        return out


# --- mta-remote -------------------------------------------------------------

class Remote(Scenario):
    """mta-remote delivering to an SMTP sink (helpers.MX) named in
    smtproutes"""
    name = "mta-remote"

    def prepare(self, t):
        setup_root(t)
        self.mx = helpers.MX("127.0.0.6")
        put_control(t, "smtproutes", f"r.test:127.0.0.6:{self.mx.port}")

    def close(self):
        self.mx.close()

    def argv(self, t, k):
        return [t.bin("mta-remote"), "--root", t.root, "--", "r.test",
                "s@sender.test", "x@r.test"]

    def input(self, t, k):
        return body(k)

    def mx_copies(self, k):
        good = bad = 0
        with self.mx.lock:
            for _, rcpts, data in self.mx.got:
                if b"X-Seq: %d\r\n" % k in data:
                    ok = whole(data.replace(b"\r\n", b"\n"), k)
                    good, bad = good + ok, bad + (not ok)
        return good, bad

    def judge(self, t, k, run, inject):
        line = run.text.strip()
        out = []
        if line.startswith("F"):
            out.append(("code", f"a permanent failure: {line[:200]}"))
        if run.rc not in (0, 111, -signal.SIGKILL):
            out.append(("code", f"exit {run.rc}"))
        done = run.rc == 0 and line.startswith("D")
        good, bad = self.mx_copies(k)
        if bad:
            out.append(("partial", "the sink accepted a truncated message"))
        if done and good != 1:
            out.append(("lost" if good == 0 else "duplicated",
                        f"D, and {good} copies at the sink"))
        if not done:
            # the SMTP rule (RFC 1047): a kill or fault after the sink's
            # 250 and before our record of it makes one copy more
            p = subprocess.run(self.argv(t, k), input=body(k),
                               capture_output=True,
                               env=dict(os.environ,
                                        ASAN_OPTIONS="detect_leaks=0"))
            g2, _ = self.mx_copies(k)
            if not p.stdout.startswith(b"D"):
                out.append(("lost", "the retry was not delivered"))
            elif g2 > 2:
                out.append(("duplicated", f"{g2} copies"))
        return out


# --- pop3d ------------------------------------------------------------------

POP_LOGIN = b"USER u@" + DOM.encode() + b"\r\nPASS Pw-Secret-1\r\n"
POP_CMDS = b"RETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n"
# the next session only looks: its own DELE would name whatever it
# lists as 1 and 2, which after a commit that the killed one left (and
# the next one finishes) are other messages
POP_LOOK = b"STAT\r\nQUIT\r\n"


def pop_replies(text):
    """the status lines of a session's replies (multi-line bodies of
    RETR skipped: our messages have no line that starts with +OK)"""
    return [ln for ln in text.split("\r\n")
            if ln.startswith("+OK") or ln.startswith("-ERR")]


def put_three(d, k):
    """messages 10k, 10k+1, 10k+2 in the Maildir new/ D, owned as D is"""
    st = os.stat(d)
    for i in range(3):
        p = os.path.join(d, f"{1000000 + k}.M{i}P1Q1.host")
        with open(p, "wb") as f:
            f.write(body(k * 10 + i))
        os.lchown(p, st.st_uid, st.st_gid)
        os.chmod(p, 0o600)


class Pop3(Scenario):
    """pop3d --inetd: RETR and DELE two of three messages, then QUIT"""
    name = "pop3d"
    messages = 3
    login = 3           # replies before the commands: greeting, USER, PASS

    def prepare(self, t):
        setup_root(t)

    def maildir(self, t):
        return t.path("domains", DOM, "u", "Maildir")

    def left(self, t, k):
        """(whole, partial) of the three messages in the mailbox"""
        left = bad = 0
        for i in range(3):
            good = 0
            for sub in ("new", "cur"):
                d = os.path.join(self.maildir(t), sub)
                for name in os.listdir(d):
                    data = read(os.path.join(d, name))
                    if b"X-Seq: %d\n" % (k * 10 + i) in data:
                        ok = whole(data, k * 10 + i)
                        good, bad = good + ok, bad + (not ok)
            left += good
        return left, bad

    def session(self, t, inject, timeout=60, cmds=POP_CMDS):
        return traced(t, [t.bin("pop3d"), "--root", t.root, "--inetd"],
                      POP_LOGIN + cmds, inject=inject, timeout=timeout,
                      env={"TCPREMOTEIP": "127.0.0.1"})

    def go(self, t, k, inject):
        # each run on a fresh mailbox: the messages, the server's own
        # files (indexes, locks) of the run before removed
        top = self.maildir(t)
        for sub in ("new", "cur", "tmp", "."):
            d = os.path.join(top, sub)
            for name in os.listdir(d):
                if not os.path.isdir(os.path.join(d, name)):
                    os.unlink(os.path.join(d, name))
        put_three(os.path.join(self.maildir(t), "new"), k)
        return self.session(t, inject)

    def judge(self, t, k, run, inject):
        reps = pop_replies(run.text)
        left, bad = self.left(t, k)
        out = []
        if bad:
            out.append(("partial", f"{bad} messages changed"))
        # replies go out in batches, so what the client saw does not say
        # how far pop3d got; what must hold: a message no DELE named is
        # never gone, and a QUIT answered +OK removed both named ones
        quit = self.login + 4
        quit_ok = len(reps) > quit and reps[quit].startswith("+OK")
        if quit_ok and left != 1:
            out.append(("lost" if left < 1 else "duplicated",
                        f"QUIT +OK, {left} of 3 left (want 1)"))
        elif left < 1:
            out.append(("lost", "a message no DELE named is gone"))
        # the next session (the lock free) logs in and lists; a commit
        # the killed one left half done may be finished by it, but the
        # message no DELE named stays
        r2 = self.session(t, None, timeout=15, cmds=POP_LOOK)
        reps = pop_replies(r2.text)
        n = self.left(t, k)[0]
        if r2.hung:
            out.append(("hung", "the next session waited 15 s and more "
                                "(a lock the run before left)"))
        elif len(reps) != self.login + 2 or \
                not all(x.startswith("+OK") for x in reps):
            out.append(("code", f"the next session: {reps[-3:]}"))
        if n < 1:
            out.append(("lost", f"after the next session {n} of 3 left"))
        return out


DOVECOT_POP3 = "/usr/lib/dovecot/pop3"
DOVECOT_CONF = """mail_location = maildir:~/Maildir
ssl = no
protocols = pop3
log_path = /dev/stderr
base_dir = {d}/run
state_dir = {d}/state
"""


class DovecotPop3(Pop3):
    """the peer: Dovecot's pop3 in a session already logged in (its
    standalone mode, as doveadm exec starts it), as the user nobody, over
    a Maildir of its own; the same RETR, DELE, QUIT and oracle"""
    name = "dovecot-pop3"
    login = 0
    peer = True

    def prepare(self, t):
        import pwd
        self.home = os.path.join(t.tmp, "dovecot", "u")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.home, "Maildir", sub))
        for sub in ("run", "state"):
            os.makedirs(os.path.join(t.tmp, "dovecot", sub))
        self.conf = os.path.join(t.tmp, "dovecot", "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=os.path.join(t.tmp, "dovecot")))
        nobody = pwd.getpwnam("nobody")
        for top, dirs, _ in os.walk(os.path.join(t.tmp, "dovecot")):
            for x in dirs:
                os.chown(os.path.join(top, x), nobody.pw_uid,
                         nobody.pw_gid)

    def maildir(self, t):
        return os.path.join(self.home, "Maildir")

    def session(self, t, inject, timeout=60, cmds=POP_CMDS):
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup",
                "--clear-groups", "env", "-i", "USER=u", "HOME=" + self.home,
                DOVECOT_POP3, "-c", self.conf]
        return traced(t, argv, cmds, inject=inject, timeout=timeout)


POSTFIX_MAIN = """compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = peer.localdomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
"""


class PostfixSendmail(Scenario):
    """the peer of mta-inject: Postfix's sendmail and postdrop writing
    a message into maildrop/ of a private instance (its own
    config_directory and queue, no daemon started: nothing of the
    system's Postfix is touched). A maildrop file is taken by pickup once
    its owner-execute bit says it is ready; a ready file without its end
    record is partial"""
    name = "postfix-sendmail"
    peer = True

    def prepare(self, t):
        self.d = os.path.join(t.tmp, "postfix")
        for sub in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.d, sub))
        with open(os.path.join(self.d, "etc", "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN.format(d=self.d))
        with open("/etc/postfix/master.cf", "rb") as f:
            master = f.read()
        with open(os.path.join(self.d, "etc", "master.cf"), "wb") as f:
            f.write(master)
        shutil_chown(os.path.join(self.d, "data"), "postfix")
        subprocess.run(["postfix", "-c", os.path.join(self.d, "etc"),
                        "check"], check=True, capture_output=True)
        self.drop = os.path.join(self.d, "queue", "maildrop")

    def argv(self, t, k):
        return ["/usr/sbin/sendmail", "-C", os.path.join(self.d, "etc"),
                "-f", "s@sender.test", "--", f"u@{DOM}"]

    def input(self, t, k):
        return body(k)

    def copies(self, k):
        good = bad = 0
        for name in os.listdir(self.drop):
            p = os.path.join(self.drop, name)
            if b"X-Seq: %d" % k not in read(p) or \
                    not os.stat(p).st_mode & 0o100:
                continue        # not ready: pickup leaves it alone
            c = subprocess.run(["postcat", "-c",
                                os.path.join(self.d, "etc"), p],
                               capture_output=True).stdout
            ok = b"MESSAGE FILE END" in c and b"end of %d" % k in c
            good, bad = good + ok, bad + (not ok)
        return good, bad

    def judge(self, t, k, run, inject):
        killed = run.killed      # the program or a child it started
        good, bad = self.copies(k)
        out = code_rule(run, inject, codes=(0, 75))
        out += count_rule(good, bad, run.rc == 0, killed, "maildrop")
        if run.rc != 0 and good == 0:
            p = subprocess.run(self.argv(t, k), input=body(k),
                               capture_output=True)
            if p.returncode != 0 or self.copies(k)[0] != 1:
                out.append(("lost", f"the retry: exit {p.returncode}"))
        for name in os.listdir(self.drop):
            os.unlink(os.path.join(self.drop, name))
        return out


def shutil_chown(path, user):
    import shutil
    shutil.chown(path, user)


# --- vadmin -----------------------------------------------------------------

def vadmin_check(t):
    p = t.run("vadmin", "check", env={"ASAN_OPTIONS": "detect_leaks=0"})
    if p.returncode != 0 or "problem" in p.out:
        return [("check", (p.out + p.err)[-300:])]
    return []


def passwd_keys(t, domain=DOM):
    import vadmin_util
    try:
        return {k.decode() for k in vadmin_util.passwd(t, domain)}
    except (OSError, ValueError, IndexError):
        return None


def users(t, domain=DOM):
    p = t.run("vadmin", "listusers", domain,
              env={"ASAN_OPTIONS": "detect_leaks=0"})
    return {a.split("@")[0] for a in p.out.split()} if p.returncode == 0 \
        else None


class Vadmin(Scenario):
    """one vadmin change; subclasses say which (args, stdin), how to see
    that it happened (done), and what to prepare first (before)"""
    name = "vadmin"
    messages = 0

    def prepare(self, t):
        setup_root(t)

    def before(self, t, k):
        pass

    def args(self, k):
        raise NotImplementedError

    def stdin(self, k):
        return b""

    def go(self, t, k, inject):
        self.before(t, k)
        return traced(t, [t.bin("vadmin"), "--root", t.root,
                          *self.args(k)], self.stdin(k), inject=inject)

    def judge(self, t, k, run, inject):
        out = code_rule(run, inject)
        out += vadmin_check(t)
        db, cdb = users(t), passwd_keys(t)
        if db is None or cdb is None or db != cdb:
            out.append(("check", f"database {db} and CDB {cdb} differ"))
        if run.rc == 0 and not self.done(t, k):
            out.append(("lost", "exit 0, the change is not there"))
        if run.rc != 0 and not self.done(t, k):
            p = t.run("vadmin", *self.args(k), input=self.stdin(k),
                      env={"ASAN_OPTIONS": "detect_leaks=0"})
            if p.returncode != 0 or not self.done(t, k):
                out.append(("lost", f"the retry: exit {p.returncode}: "
                                    f"{p.err[-200:]}"))
        return out


class AddUser(Vadmin):
    name = "vadmin-adduser"

    def args(self, k):
        return ["adduser", f"n{k}@{DOM}", "Pw-New-1234"]

    def done(self, t, k):
        return f"n{k}" in (users(t) or ())


class DelUser(Vadmin):
    name = "vadmin-deluser"

    def before(self, t, k):
        t.run("vadmin", "adduser", f"d{k}@{DOM}", "Pw-Del-1234", check=0)

    def args(self, k):
        return ["deluser", f"d{k}@{DOM}"]

    def done(self, t, k):
        return f"d{k}" not in (users(t) or {f"d{k}"})


class Passwd(Vadmin):
    name = "vadmin-passwd"

    def before(self, t, k):
        t.run("vadmin", "adduser", f"p{k}@{DOM}", "Pw-Old-1234", check=0)
        self.old = (passwd_record(t, f"p{k}"))

    def args(self, k):
        return ["passwd", f"p{k}@{DOM}", "Pw-Changed-99"]

    def done(self, t, k):
        rec = passwd_record(t, f"p{k}")
        return rec is not None and rec != self.old


def passwd_record(t, local):
    import vadmin_util
    try:
        return vadmin_util.passwd(t, DOM).get(local.encode())
    except (OSError, ValueError, IndexError):
        return None


class AddDomain(Vadmin):
    name = "vadmin-adddomain"

    def args(self, k):
        return ["adddomain", f"d{k}.test"]

    def stdin(self, k):
        return b"pm-Secret-1\n"

    def done(self, t, k):
        p = t.run("vadmin", "listdomains",
                  env={"ASAN_OPTIONS": "detect_leaks=0"})
        return f"d{k}.test" in p.out.split()


class DkimAdd(Vadmin):
    name = "vadmin-dkim-add"

    def before(self, t, k):
        t.run("vadmin", "adddomain", f"k{k}.test", input="pm-Secret-1\n",
              check=0)

    def args(self, k):
        return ["dkim", "add", f"k{k}.test", "--type", "ed25519"]

    def done(self, t, k):
        p = t.run("vadmin", "dkim", "list", f"k{k}.test",
                  env={"ASAN_OPTIONS": "detect_leaks=0"})
        return p.returncode == 0 and f"k{k}.test" in p.out


VADMIN = (AddUser, DelUser, Passwd, AddDomain, DkimAdd)
MAIL = (Inject, Smtpd, Vdeliver, Forward, Send, Remote, Pop3)
PEERS = (DovecotPop3, PostfixSendmail)
