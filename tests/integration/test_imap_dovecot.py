"""test_imap_dovecot - IMAP through Dovecot (docs/imap.md, issue 14).

Dovecot's own imapd (Debian's dovecot-imapd) is started on a free
loopback port with contrib/dovecot/10-facteur.conf, its placeholders
filled in, inside a minimal dovecot.conf of the test's own: its own
base_dir, state_dir and log under the test's directory, no TLS, imap
only, stopped by the PID of its master. Its passdb and userdb are
build/.../vchkpw over a root made by facteur init and vadmin, with mail
delivered by vdeliver; the same mailbox is then read by pop3d and
written again by vdeliver. One Dovecot start serves the whole scenario,
so that the module stays fast.

vchkpw's bad input is driven without Dovecot: descriptor 3 is a file
the test writes (missing, without its NULs, over the protocol's 512
bytes), and the program runs as the mail user, as Dovecot's auth
service does.
"""
import fcntl
import grp
import imaplib
import math
import os
import pwd
import re
import signal
import socket
import statistics
import subprocess
import time

import test_login_agree as agree
from helpers import alone, free_port
from vadmin_util import mailuser, put

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
REPLY = "/usr/lib/dovecot/checkpassword-reply"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SNIPPET = os.path.join(REPO, "contrib", "dovecot", "10-facteur.conf")
D = "ex.test"
PW = "Secret-pw-1"
QUOTA = 4000
AS_ROOT = os.geteuid() == 0


def ids(t):
    """(name, uid, gid) Dovecot's auth service and the sessions run as:
    the root's mail user when the tests run as root, else ourselves"""
    pw = mailuser(t) if AS_ROOT else pwd.getpwuid(os.getuid())
    return pw.pw_name, pw.pw_uid, pw.pw_gid


def setup(t):
    """A root with D and its users: u (quota), off (POP/IMAP off)"""
    t.init()
    t.run("vadmin", "adddomain", D, input="pm-pw\n", check=0)
    t.run("vadmin", "adduser", f"u@{D}", PW, "--quota", f"{QUOTA}S,10C",
          check=0)
    t.run("vadmin", "adduser", f"off@{D}", PW, check=0)
    t.run("vadmin", "moduser", f"off@{D}", "--disable", "pop", check=0)
    # no quota warning message in the way of the counts (docs/vdeliver.md)
    put(t, t.path("control", "quotawarn"), "100\n", 0o644)


def deliver(t, msg, check):
    return t.run("vdeliver", "-f", "a@remote.test", f"u@{D}", input=msg,
                 check=check)


def message(n, size):
    """a message of exactly size bytes, its Subject 'm<n>'"""
    head = f"From: a@remote.test\nSubject: m{n}\n\n".encode()
    body = (f"line of message {n}\n".encode() * 200)[:size - len(head) - 1]
    return head + body + b"\n"


def maildir(t):
    return t.path("domains", D, "u", "Maildir")


def on_disk(t):
    """{Subject: (path, bytes)} of every message of u's Maildir"""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir(t), sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            subj = re.search(rb"^Subject: (\S+)$", data, re.M).group(1)
            out[subj.decode()] = (os.path.join(d, name), data)
    return out


def maildirsize(t):
    """(first line, summed bytes, summed messages, lines) of maildirsize"""
    with open(os.path.join(maildir(t), "maildirsize")) as f:
        lines = f.read().splitlines()
    nums = [tuple(int(x) for x in ln.split()) for ln in lines[1:]]
    return (lines[0], sum(b for b, _ in nums), sum(m for _, m in nums),
            lines[1:])


class FromIMAP4(imaplib.IMAP4):
    """imaplib's client, connecting from a chosen loopback address"""

    def __init__(self, src, *args, **kw):
        self.src = src
        super().__init__(*args, **kw)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.src, 0))


# --- Dovecot -----------------------------------------------------------------

class Dovecot:
    """Dovecot's master in the foreground (-F) with imap on a free
    loopback port, in its own process group; stopped by its PID. EXTRA:
    settings added at the end (bench/imap_logins.py: the auth cache)"""

    def __init__(self, t, extra=""):
        self.t, self.extra = t, extra
        self.dir = os.path.join(t.tmp, f"dovecot-{time.monotonic_ns()}")
        os.mkdir(self.dir, 0o755)
        self.log = os.path.join(self.dir, "dovecot.log")
        name, uid, _ = ids(t)
        with open(SNIPPET) as f:
            snippet = f.read()
        for k, v in (("@BINDIR@", os.path.abspath(t.bindir)),
                     ("@ROOT@", t.root), ("@MAILUSER@", name),
                     ("@MAILUID@", str(uid))):
            snippet = snippet.replace(k, v)
        assert not re.search(r"@[A-Z]+@", snippet), snippet
        with open(os.path.join(self.dir, "10-facteur.conf"), "w") as f:
            f.write(snippet)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        for attempt in range(3):
            self.port = free_port()
            self.write_conf()
            if self.start():
                return
            assert attempt < 2, self.text()

    def write_conf(self):
        # not root: every Dovecot process, and its sockets, are ours
        internal = "dovecot" if AS_ROOT else ids(self.t)[0]
        group = "dovecot" if AS_ROOT else grp.getgrgid(os.getgid()).gr_name
        login = "dovenull" if AS_ROOT else internal
        with open(self.conf, "w") as f:
            f.write(f"""# the test's own Dovecot (tests/integration/test_imap_dovecot.py)
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = facteur-test-{os.getpid()}-{self.port}
protocols = imap
listen = 127.0.0.1
log_path = {self.log}
ssl = no
disable_plaintext_auth = no
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
auth_verbose = yes
# no 2 s wait after each refused login (the test refuses several, each
# from its own 127/8 address, so that Dovecot's growing penalty for an
# address does not apply either)
auth_failure_delay = 0
# AddressSanitizer reserves terabytes of address space: no vsz limit
default_vsz_limit = 0
!include {self.dir}/10-facteur.conf
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
{self.extra}
""")

    def start(self):
        """True once it answers on its port; False when the port was
        taken by another test meanwhile"""
        self.out = open(os.path.join(self.dir, "master.out"), "ab")
        self.p = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                  stdin=subprocess.DEVNULL, stdout=self.out,
                                  stderr=self.out, start_new_session=True)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.p.poll() is not None:
                self.out.close()
                if "Address already in use" in self.text():
                    return False
                raise AssertionError("dovecot exited:\n" + self.text())
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=1) as s:
                    if s.recv(200).startswith(b"* OK"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("dovecot did not answer:\n" + self.text())

    def text(self):
        out = ""
        for p in (self.log, os.path.join(self.dir, "master.out")):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out

    def imap(self, src="127.0.0.1"):
        """an IMAP client from SRC, an address of 127/8"""
        return FromIMAP4(src, "127.0.0.1", self.port, timeout=30)

    def doveadm(self, *args):
        return subprocess.run([DOVEADM, "-c", self.conf, *args],
                              capture_output=True, text=True, timeout=60)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        self.out.close()
        log = self.text()
        # vchkpw's stderr is in Dovecot's log: no sanitizer report there
        assert "Sanitizer" not in log and "runtime error" not in log, log
        return log


def refused(dc, user, pw, src):
    """a login Dovecot must refuse as a failed authentication"""
    c = dc.imap(src)
    try:
        c.login(user, pw)
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e), (user, e)
    else:
        raise AssertionError(f"{user} logged in with {pw!r}")
    finally:
        c.shutdown()


def quota_root(c):
    """{resource: (usage, limit)} of GETQUOTAROOT INBOX"""
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK", data
    text = b" ".join(x for x in data[1] if x).decode()
    return {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"(STORAGE|MESSAGE) (\d+) (\d+)", text)}


def pop3(t, *cmds):
    """one pop3d --inetd session of u: the replies"""
    lines = [f"USER u@{D}", f"PASS {PW}", *cmds, "QUIT"]
    p = t.run("pop3d", "--inetd",
              input="".join(x + "\r\n" for x in lines).encode(),
              env={"TCPREMOTEIP": ""}, check=0)
    assert "Sanitizer" not in p.err, p.err
    return p.stdout


def crlf(b):
    return b.replace(b"\n", b"\r\n")


def test_imap_dovecot_shares_mailbox_quota_and_grants(t):
    """Logs in to Dovecot with the Facteur password (wrong password,
    unknown user and a user with POP/IMAP off refused, no grant for
    them), FETCHes vdeliver's messages byte for byte, sees the quota of
    maildirsize in GETQUOTAROOT, deletes one with STORE \\Deleted and
    EXPUNGE; then pop3d serves the remaining ones, and vdeliver counts
    the freed space: a message that would not have fitted before the
    expunge is delivered, the next one over the quota is refused (111).
    doveadm's userdb lookups (vchkpw with AUTHORIZED=1) give the
    account's mail location and quota, and no such user for others."""
    setup(t)
    sizes = {1: 900, 2: 1000, 3: 950}
    for n, size in sizes.items():
        deliver(t, message(n, size), check=0)
    disk = on_disk(t)
    assert sorted(disk) == ["m1", "m2", "m3"], disk
    extra = len(disk["m1"][1]) - sizes[1]   # Return-Path, Delivered-To
    grant = t.path("open-smtp", "127.0.0.1")
    dc = Dovecot(t)
    try:
        refused(dc, f"u@{D}", "wrong-pw", "127.0.0.2")
        refused(dc, f"nobody@{D}", PW, "127.0.0.3")
        refused(dc, f"off@{D}", PW, "127.0.0.4")
        assert os.listdir(t.path("open-smtp")) == [], \
            "a refused login granted relay"

        c = dc.imap()
        typ, _ = c.login(f"U%{D.upper()}", PW)     # vpopmail's spelling
        assert typ == "OK"
        assert os.path.exists(grant), "no POP-before-SMTP grant"
        assert time.time() - os.stat(grant).st_mtime < 60
        typ, data = c.select("INBOX")
        assert typ == "OK" and data == [b"3"], data
        got = {}
        for i in (1, 2, 3):
            typ, data = c.fetch(str(i), "(BODY.PEEK[])")
            assert typ == "OK", data
            body = data[0][1]
            subj = re.search(rb"^Subject: (\S+)\r$", body, re.M).group(1)
            got[subj.decode()] = body
        for k, (_, raw) in disk.items():
            assert got[k] == crlf(raw), (k, got[k][:80], raw[:80])
        # the quota Dovecot reports is maildirsize's, in KiB rounded up
        first, used, count, _ = maildirsize(t)
        assert first == f"{QUOTA}S,10C", first
        assert (used, count) == (sum(len(v) for _, v in disk.values()), 3)
        q = quota_root(c)
        assert q["STORAGE"] == (math.ceil(used / 1024),
                                math.ceil(QUOTA / 1024)), q
        assert q["MESSAGE"] == (3, 10), q
        # delete m2
        seq = [i for i in (1, 2, 3)
               if c.fetch(str(i), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
               [1][0][1].strip().endswith(b"m2")][0]
        typ, _ = c.store(str(seq), "+FLAGS", "\\Deleted")
        assert typ == "OK"
        typ, data = c.expunge()
        assert typ == "OK" and data == [str(seq).encode()], data
        c.logout()

        # the same mailbox, the same counts, for Facteur's programs
        s2 = len(disk["m2"][1])
        first, used, count, lines = maildirsize(t)
        assert f"-{s2} -1" in lines, lines
        left = len(disk["m1"][1]) + len(disk["m3"][1])
        assert (used, count) == (left, 2), (used, count, lines)
        out = pop3(t, "STAT", "RETR 1", "RETR 2")
        assert b"+OK 2 " in out, out
        for k in ("m1", "m3"):
            assert crlf(disk[k][1]) in out.replace(b"\r\n..", b"\r\n."), k
        assert b"Subject: m2" not in out

        # vdeliver sees the space Dovecot freed: m4 fits only after the
        # expunge, then m5 goes over the limit
        s4 = QUOTA - left - 10
        assert left + s2 + s4 > QUOTA
        deliver(t, message(4, s4 - extra), check=0)
        p = deliver(t, message(5, 100), check=111)
        assert "is full" in p.err, p.err
        first, used, count, _ = maildirsize(t)
        assert (used, count) == (QUOTA - 10, 3), (used, count)

        # and Dovecot sees vdeliver's line
        c = dc.imap()
        c.login(f"u@{D}", PW)
        q = quota_root(c)
        assert q["STORAGE"] == (math.ceil((QUOTA - 10) / 1024),
                                math.ceil(QUOTA / 1024)), q
        assert q["MESSAGE"] == (3, 10), q
        typ, data = c.select("INBOX")
        assert data == [b"3"], data
        c.logout()

        # userdb lookups without a password (AUTHORIZED=1)
        p = dc.doveadm("user", f"u@{D}")
        assert p.returncode == 0, p.stderr
        assert f"maildir:{maildir(t)}" in p.stdout, p.stdout
        assert f"*:bytes={QUOTA}:messages=10" in p.stdout, p.stdout
        p = dc.doveadm("user", f"nobody@{D}")
        assert p.returncode == 67, (p.returncode, p.stdout, p.stderr)
    finally:
        log = dc.stop()
    assert f"vchkpw: off@{D}: imap is disabled for the account" in log, log
    assert re.search(r"Login: user=<u@" + re.escape(D) + ">", log), log
    # Dovecot's files in the Maildir (its read-only uidvalidity marker
    # among them) are no problem for Facteur's checks
    assert any(n.startswith("dovecot-uidvalidity.")
               for n in os.listdir(maildir(t)))
    p = t.run("vadmin", "check")
    assert p.returncode == 0, p.out + p.err
    p = t.run("facteur", "doctor")
    assert "ok maildirs" in p.out.splitlines(), p.out


# --- vchkpw by itself ----------------------------------------------------------

def vchkpw(t, data, *args, env=None, program=("/usr/bin/env",),
           as_root=False):
    """vchkpw with DATA on descriptor 3 (None: no descriptor 3), as the
    mail user unless AS_ROOT; ARGS replace --root ROOT PROGRAM"""
    fd = None
    if data is not None:
        path = os.path.join(t.tmp, f"fd3-{time.monotonic_ns()}")
        with open(path, "wb") as f:
            f.write(data)
        fd = os.open(path, os.O_RDONLY)
    argv = [t.bin("vchkpw"), *(args or ("--root", t.root, *program))]
    e = {"PATH": "/usr/bin:/bin", "SERVICE": "imap",
         "TCPREMOTEIP": "192.0.2.9", "ASAN_OPTIONS": "detect_leaks=1"}
    e.update(env or {})
    _, uid, gid = ids(t)
    kw = {} if as_root or not AS_ROOT else {
        "user": uid, "group": gid, "extra_groups": []}
    try:
        p = subprocess.run(
            argv, env=e, capture_output=True, timeout=60, close_fds=False,
            preexec_fn=on_fd3(fd) if fd is not None else None,
            **kw)
    finally:
        if fd is not None:
            os.close(fd)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    assert "Sanitizer" not in p.err and "runtime error" not in p.err, p.err
    return p


def on_fd3(fd):
    """for preexec_fn: FD as descriptor 3, kept across exec (FD may be 3
    itself, close-on-exec: dup2 would then change nothing)"""
    def run():
        os.dup2(fd, 3)
        os.set_inheritable(3, True)
    return run


def fields(p):
    return dict(ln.split("=", 1) for ln in p.out.splitlines() if "=" in ln)


def relay_reply(t, ip):
    """mta-smtpd's reply to a remote RCPT from IP (an --inetd session)"""
    p = t.run("mta-smtpd", "--inetd", env={"TCPREMOTEIP": ip}, check=0,
              input="EHLO c\r\nMAIL FROM:<a@remote.test>\r\n"
                    "RCPT TO:<b@elsewhere.example>\r\nQUIT\r\n")
    return [ln for ln in p.out.splitlines() if ln[:1] in "2345"][-2]


def test_vchkpw_contract(t):
    """Exit codes of the checkpassword contract and what a success puts
    in the environment of the program it runs."""
    setup(t)
    _, uid, gid = ids(t)
    ok = vchkpw(t, f"u@{D}\0{PW}\0\0".encode())
    assert ok.returncode == 0, ok.err
    f = fields(ok)
    assert f["USER"] == f"u@{D}"
    assert f["HOME"] == t.path("domains", D, "u")
    assert f["userdb_mail"] == f"maildir:{maildir(t)}"
    assert f["userdb_quota_rule"] == f"*:bytes={QUOTA}:messages=10"
    assert (f["userdb_uid"], f["userdb_gid"]) == (str(uid), str(gid))
    assert f["EXTRA"].split() == ["userdb_uid", "userdb_gid", "userdb_mail",
                                  "userdb_quota_rule"]
    assert "AUTHORIZED" not in f
    assert os.path.exists(t.path("open-smtp", "192.0.2.9"))
    # and mta-smtpd relays for that address, not for another
    assert relay_reply(t, "192.0.2.9").startswith("250 "), "no relay"
    assert relay_reply(t, "192.0.2.99").startswith("553 ")
    # an alias domain's name reaches the same Maildir; IPv6 grants
    t.run("vadmin", "aliasdomain", "add", "alias.test", D, check=0)
    p = vchkpw(t, f"U@Alias.Test\0{PW}\0\0".encode(),
               env={"TCPREMOTEIP": "2001:DB8::0:9"})
    assert p.returncode == 0, p.err
    assert fields(p)["userdb_mail"] == f["userdb_mail"], p.out
    assert fields(p)["USER"] == "u@alias.test", p.out
    assert os.path.exists(t.path("open-smtp", "2001:db8::9"))
    # an address in another spelling is written in its one spelling
    vchkpw(t, f"u@{D}\0{PW}\0\0".encode(),
           env={"TCPREMOTEIP": "::ffff:192.0.2.10"})
    assert os.path.exists(t.path("open-smtp", "192.0.2.10"))
    # text that is not an address names no file
    p = vchkpw(t, f"u@{D}\0{PW}\0\0".encode(), env={"TCPREMOTEIP": "../x"})
    assert p.returncode == 0 and not os.path.exists(t.path("x"))
    # the SMTP services obey the smtp flag, IMAP the pop one
    p = vchkpw(t, f"off@{D}\0{PW}\0\0".encode(), env={"SERVICE": "smtp"})
    assert p.returncode == 0, p.err
    p = vchkpw(t, f"off@{D}\0{PW}\0\0".encode(),
               env={"TCPREMOTEIP": "192.0.2.11"})
    assert p.returncode == 1 and "disabled" in p.err, p.err
    assert not os.path.exists(t.path("open-smtp", "192.0.2.11"))
    # lookups: no password, AUTHORIZED=2 for checkpassword-reply, no grant
    p = vchkpw(t, f"off@{D}\0\0\0".encode(),
               env={"AUTHORIZED": "1", "TCPREMOTEIP": "192.0.2.12"})
    assert p.returncode == 0 and fields(p)["AUTHORIZED"] == "2", p.err
    assert not os.path.exists(t.path("open-smtp", "192.0.2.12"))
    p = vchkpw(t, f"nobody@{D}\0\0\0".encode(), env={"AUTHORIZED": "1"})
    assert p.returncode == 3, p.err
    p = vchkpw(t, f"u@{D}\0\0\0".encode(),
               env={"AUTHORIZED": "1", "CREDENTIALS_LOOKUP": "1",
                    "SCHEME": "CRAM-MD5"})
    assert p.returncode == 111 and "auth_mechanisms" in p.err, p.err
    # through Dovecot's own checkpassword-reply, as Dovecot runs it: the
    # request on descriptor 3, the answer on descriptor 4
    r, w = os.pipe()
    path = os.path.join(t.tmp, "fd3-reply")
    with open(path, "wb") as f:
        f.write(f"u@{D}\0{PW}\0\0".encode())
    # both above 9 first, so that neither dup2 below can clobber the other
    low = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    fd = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 10)
    w10 = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(low)

    def fds():
        os.dup2(w10, 4)
        os.dup2(fd, 3)
    kw = {"user": uid, "group": gid, "extra_groups": []} if AS_ROOT else {}
    p = subprocess.run([t.bin("vchkpw"), "--root", t.root, REPLY],
                       capture_output=True, close_fds=False, preexec_fn=fds,
                       env={"ORIG_UID": str(uid), "PATH": "/usr/bin:/bin"},
                       **kw)
    os.close(w)
    os.close(w10)
    os.close(fd)
    reply = os.read(r, 4096).decode()
    os.close(r)
    assert p.returncode == 0, p.stderr
    assert f"user=u@{D}\t" in reply and \
        f"userdb_mail=maildir:{maildir(t)}\t" in reply, reply


def test_vchkpw_agrees_with_pop3d_and_smtpd(t):
    """test_login_agree's table of logins (folding, user%domain, alias
    domains, unknown users, the pop and smtp flags), given to vchkpw as
    Dovecot's imap service and as an smtp service: each answer must be
    the table's answer for pop3d and for mta-smtpd, one rule for all
    three (lib/login)."""
    agree.setup(t)
    wrong = []
    for user, pw, (want_pop, want_smtp) in agree.TABLE:
        for service, want in (("imap", want_pop), ("smtp", want_smtp)):
            p = vchkpw(t, f"{user}\0{pw}\0\0".encode(),
                       env={"SERVICE": service})
            got = {0: "ok", 1: "off" if "disabled" in p.err else "no"}.get(
                p.returncode, f"exit {p.returncode}: {p.err}")
            if service == "smtp" and got == "off":
                got = "no"      # mta-smtpd says no more than that
            if got != want:
                wrong.append((user, pw, service, want, got))
    assert not wrong, wrong


def test_vchkpw_takes_the_longest_password(t):
    """The longest login name with the longest password vadmin stores and
    a 20-digit timestamp fit checkpassword's 512 bytes (lib/login.h's
    bound, asserted at build time): the login succeeds."""
    agree.long_setup(t)
    data = f"{agree.LONG_U}\0{agree.LONG_PW}\0{'9' * 20}\0".encode()
    assert len(data) <= 512
    p = vchkpw(t, data)
    assert p.returncode == 0, p.err
    assert fields(p)["USER"] == agree.LONG_U


def test_vchkpw_bad_input(t):
    """Descriptor 3 missing, no NUL, over 512 bytes, long names and
    passwords, bad command lines, root: clear exit codes, one line, no
    crash."""
    setup(t)
    cases = [
        (None, 2, "descriptor 3 is not open"),
        (b"", 2, "does not hold"),
        (f"u@{D}".encode(), 2, "does not hold"),
        (f"u@{D}\0{PW}".encode(), 2, "does not hold"),
        (b"x" * 600, 2, "more than 512 bytes"),
        (f"u@{D}\0".encode() + b"p" * 600 + b"\0", 2, "more than 512"),
        (b"u" * 300 + f"@{D}\0{PW}\0\0".encode(), 1, None),
        (f"u@{D}\0".encode() + b"p" * 490 + b"\0\0", 1, None),
        (b"\0\0\0", 1, None),
        (f"nobody@{D}\0{PW}\0\0".encode(), 1, None),
        (f"u@nowhere.test\0{PW}\0\0".encode(), 1, None),
        (f"../../u@{D}\0{PW}\0\0".encode(), 1, None),
        (b"\xff\x01@\x7f\0pw\0\0", 1, None),
        (f"u@{D}\0{PW}x\0\0".encode(), 1, None),
    ]
    for data, code, why in cases:
        p = vchkpw(t, data)
        assert p.returncode == code, (data[:40] if data else data,
                                      p.returncode, p.err)
        if why:
            assert p.err.startswith("vchkpw: ") and why in p.err and \
                len(p.err.splitlines()) == 1, p.err
        else:
            assert p.err == "" and p.out == "", (p.err, p.out)
    good = f"u@{D}\0{PW}\0\0".encode()
    for args, code, why in [
            (("--root", t.root), 2, "no PROGRAM"),
            (("--bogus", "/usr/bin/env"), 2, "unknown option --bogus"),
            (("--root", "rel/root", "/usr/bin/env"), 2, "absolute"),
            (("--root", t.root, "/nonexistent/prog"), 111, "cannot run"),
            (("--root", t.tmp + "/none", "/usr/bin/env"), 111, "vadmin")]:
        p = vchkpw(t, good, *args)
        assert p.returncode == code and why in p.err, (args, p.returncode,
                                                       p.err)
    p = vchkpw(t, None, "--help")
    assert p.returncode == 0 and p.out.startswith("usage: vchkpw"), p.out
    if AS_ROOT:
        p = vchkpw(t, good, as_root=True)
        assert p.returncode == 111 and "as root" in p.err, p.err


def _cpu(t, user):
    """the CPU time of one refused vchkpw run"""
    path = os.path.join(t.tmp, "fd3-timing")
    with open(path, "wb") as f:
        f.write(f"{user}\0wrong-pw\0\0".encode())
    _, uid, gid = ids(t)
    fd = os.open(path, os.O_RDONLY)
    kw = {"user": uid, "group": gid, "extra_groups": []} if AS_ROOT else {}
    p = subprocess.Popen([t.bin("vchkpw"), "--root", t.root, "/bin/true"],
                         env={"SERVICE": "imap"}, close_fds=False,
                         preexec_fn=on_fd3(fd),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         **kw)
    _, status, use = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    os.close(fd)
    assert p.returncode == 1, p.returncode
    return use.ru_utime + use.ru_stime


@alone
def test_vchkpw_unknown_user_as_slow_as_wrong_password(t):
    """An unknown user costs vchkpw the CPU of a wrong password (the
    decoy of lib/login, checked like a real hash of the scheme): 12
    pairs, the median of their differences under 6 ms (a missing dummy
    check would show as the whole hash, about 20 ms); make check-slow
    takes 40."""
    vchkpw_timing(t, 12)


@alone
def slow_vchkpw_unknown_user_timing_40_pairs(t):
    vchkpw_timing(t, 40)


def vchkpw_timing(t, pairs):
    t.init()        # yescrypt, the default: a check costs what it does
    t.run("vadmin", "adddomain", D, input="pm-pw\n", check=0)
    t.run("vadmin", "adduser", f"u@{D}", PW, check=0)
    cpu = {"u": [], "nobody": []}
    for _ in range(pairs):
        for who in ("u", "nobody"):
            cpu[who].append(_cpu(t, f"{who}@{D}"))
    gap = statistics.median(b - a for a, b in zip(cpu["u"], cpu["nobody"]))
    print(f"figure: vchkpw CPU a refused login: wrong password "
          f"{statistics.median(cpu['u']) * 1000:.1f} ms, unknown user "
          f"{statistics.median(cpu['nobody']) * 1000:.1f} ms, median "
          f"paired gap {gap * 1000:+.2f} ms")
    assert abs(gap) < 0.006, (gap, cpu)
