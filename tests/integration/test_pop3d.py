"""test_pop3d - the POP3 server with real clients.

Each test makes its own root (facteur init --dev), a domain and users with
vadmin, and puts messages straight into the Maildirs (owned by the mail
user when the tests run as root, as vdeliver would leave them). Servers
listen on 127.0.0.1 (and ::1 where the host has it) on free high ports
found by binding port 0, run in their own process group, and are stopped
by PID (SIGTERM, then SIGKILL of the group) before the test ends. Clients:
Python's poplib (with stls()), curl (pop3://, pop3s://, --ssl-reqd),
fetchmail, and --inetd sessions through pipes for the protocol's corners.
"""
import base64
import contextlib
import hmac
import os
import poplib
import pwd
import re
import signal
import socket
import ssl
import subprocess
import time

from helpers import free_port, quota_lock

AS_ROOT = os.geteuid() == 0
D = "ex.test"
PW = "Secret-pw-1"
MSG1 = b"From: a@x.test\nSubject: one\n\nline 1\n.dot line\nline 3\n"
MSG2 = b"From: b@x.test\r\nSubject: two\r\n\r\nbody\r\n"


def crlf(m):
    """The RFC 1939 size: the message with CRLF line ends."""
    return len(m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def mailuser():
    return pwd.getpwnam("facteur") if AS_ROOT else None


def give(path):
    """Hand a file we made to the mail user, as a delivery would."""
    if AS_ROOT:
        pw = mailuser()
        os.chown(path, pw.pw_uid, pw.pw_gid)


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def write_control(t, name, text):
    p = t.path("control", name)
    with open(p, "w") as f:
        f.write(text)
    give(p)


def setup(t, users=("u",), v6=False):
    """A root with free ports in listen.pop3/pop3s and users of D."""
    t.init()
    t.port = free_port()
    t.sport = free_port()
    lines = f"127.0.0.1:{t.port}\n"
    if v6:
        t.port6 = free_port("::1")
        lines += f"[::1]:{t.port6}\n"
    write_control(t, "listen.pop3", lines)
    write_control(t, "listen.pop3s", f"127.0.0.1:{t.sport}\n")
    t.run("vadmin", "adddomain", D, input="pm-pw\n", check=0)
    for u in users:
        t.run("vadmin", "adduser", f"{u}@{D}", PW, check=0)


def maildir(t, user="u"):
    return t.path("domains", D, user, "Maildir")


def put_msg(t, name, data, user="u", sub="new"):
    p = os.path.join(maildir(t, user), sub, name)
    with open(p, "wb") as f:
        f.write(data)
    give(p)
    return p


def files(t, sub, user="u"):
    return sorted(os.listdir(os.path.join(maildir(t, user), sub)))


def env():
    e = dict(os.environ)
    e.pop("FACTEUR_ROOT", None)
    e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1")
    return e


@contextlib.contextmanager
def server(t, wait_ports=None):
    """pop3d on the root's listeners; yields the process; stderr (its log
    lines) is left in t.log after it stopped."""
    want = len(wait_ports or [t.port, t.sport])
    for attempt in range(3):
        logpath = os.path.join(t.tmp, f"pop3d-{time.monotonic_ns()}.log")
        logf = open(logpath, "wb")
        p = subprocess.Popen([t.bin("pop3d"), "--root", t.root],
                             stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=logf, env=env(), start_new_session=True)
        # up when it says so: a probing connection would be a session
        # that counts against the limits for a moment
        deadline = time.monotonic() + 20
        while p.poll() is None:
            with open(logpath, errors="replace") as f:
                if f.read().count("listening on ") >= want:
                    break
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise AssertionError("pop3d not up")
            time.sleep(0.05)
        log = open(logpath, errors="replace").read()
        if p.poll() is None:
            break
        logf.close()
        # a port found free was taken by a parallel test before pop3d
        # bound it: the same listeners on other free ports
        assert "Address already in use" in log and attempt < 2, log
        moved = {}
        for k in ("port", "sport", "port6"):
            if hasattr(t, k):
                moved[getattr(t, k)] = free_port(
                    "::1" if k == "port6" else "127.0.0.1")
                setattr(t, k, moved[getattr(t, k)])
        for name in ("listen.pop3", "listen.pop3s"):
            with open(t.path("control", name)) as f:
                text = f.read()
            for old_port, new_port in moved.items():
                text = text.replace(f":{old_port}\n", f":{new_port}\n")
            write_control(t, name, text)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                pass
        # sessions are in pop3d's process group: nothing may outlive us
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        logf.close()
        with open(logpath, errors="replace") as f:
            t.log = f.read()
    # sanitizer reports of any session process land in the same file
    assert "Sanitizer" not in t.log and "runtime error" not in t.log, t.log


def wait_log(t, pattern, timeout=10):
    """Sessions log when they end, just after the client saw the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(t.tmp):
            if name.startswith("pop3d-") and name.endswith(".log"):
                with open(os.path.join(t.tmp, name), errors="replace") as f:
                    if re.search(pattern, f.read()):
                        return
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}")


def inetd(t, data, extra=(), env_add=None, timeout=60):
    """One --inetd session over pipes; returns (stdout, stderr) text."""
    e = env()
    e.pop("TCPREMOTEIP", None)
    if env_add:
        e.update(env_add)
    p = subprocess.run([t.bin("pop3d"), "--root", t.root, "--inetd",
                        *extra], input=data, capture_output=True, env=e,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return (p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))


class Session:
    """An --inetd session driven line by line."""

    def __init__(self, t, env_add=None):
        e = env()
        e.pop("TCPREMOTEIP", None)
        if env_add:
            e.update(env_add)
        self.p = subprocess.Popen([t.bin("pop3d"), "--root", t.root,
                                   "--inetd"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=e)
        self.greeting = self.line()

    def line(self):
        return self.p.stdout.readline().decode(errors="replace").rstrip(
            "\r\n")

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.line()

    def multi(self, text):
        first = self.cmd(text)
        lines = []
        if first.startswith("+OK"):
            while True:
                ln = self.line()
                if ln == ".":
                    break
                lines.append(ln)
        return first, lines

    def close(self):
        with contextlib.suppress(BrokenPipeError):
            self.p.stdin.close()
        out = self.p.stdout.read().decode(errors="replace")
        err = self.p.stderr.read().decode(errors="replace")
        self.p.wait(30)
        self.p.stdout.close()
        self.p.stderr.close()
        assert self.p.returncode == 0 and "Sanitizer" not in err, err
        return out, err


def login_lines(user=f"u@{D}", pw=PW):
    return f"USER {user}\r\nPASS {pw}\r\n"


def replies(out):
    return out.split("\r\n")


# --- the program -----------------------------------------------------------

def test_pop3d_usage(t):
    t.init()
    p = t.run("pop3d", "--help", check=0)
    assert p.out.startswith("usage: pop3d"), p.out
    p = t.run("pop3d", "--bogus", check=2)
    assert p.err.startswith("pop3d: unknown option --bogus"), p.err
    assert "usage: pop3d" in p.err
    p = t.run("pop3d", "--tls", check=2)
    assert "--tls goes with --inetd" in p.err
    p = t.run("pop3d", "extra", check=2)
    assert "unexpected argument extra" in p.err


def test_pop3d_port_in_use(t):
    setup(t)
    with socket.socket() as s:
        s.bind(("127.0.0.1", t.port))
        s.listen()
        p = t.run("pop3d", check=111)
    assert p.err.startswith("pop3d: cannot listen on 127.0.0.1:"), p.err
    assert "listen.pop3" in p.err


def test_pop3d_refuses_root_mailuser(t):
    if not AS_ROOT:
        print("SKIP: needs root")
        return
    setup(t)
    write_control(t, "mailuser", "root\n")
    p = t.run("pop3d", "--inetd", check=111)
    assert "uid 0" in p.err, p.err


# --- real clients ----------------------------------------------------------

def test_pop3d_poplib_stls(t):
    setup(t)
    put_msg(t, "1700000001.M1P1.host,S=%d" % len(MSG1), MSG1)
    put_msg(t, "1700000002.M1P1.host", MSG2)
    with server(t):
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        caps = c.capa()
        assert "STLS" in caps and "UIDL" in caps and "TOP" in caps, caps
        assert "RESP-CODES" in caps and "PIPELINING" in caps, caps
        c.stls(ssl._create_unverified_context())
        caps = c.capa()
        assert "STLS" not in caps and "SASL" in caps, caps
        c.user(f"u@{D}")
        c.pass_(PW)
        assert c.stat() == (2, crlf(MSG1) + len(MSG2)), c.stat()
        _, listing, _ = c.list()
        assert listing == [b"1 %d" % (crlf(MSG1)),
                           b"2 %d" % len(MSG2)], listing
        _, lines, octets = c.retr(1)
        assert lines == MSG1.rstrip(b"\n").split(b"\n"), lines
        _, lines, _ = c.top(2, 0)
        assert lines == [b"From: b@x.test", b"Subject: two", b""], lines
        _, uidls, _ = c.uidl()
        assert uidls == [b"1 1700000001.M1P1.host,S=%d" % len(MSG1),
                         b"2 1700000002.M1P1.host"], uidls
        c.dele(1)
        assert c.stat()[0] == 1
        # nothing moved nor deleted before QUIT
        assert len(files(t, "new")) == 2 and files(t, "cur") == []
        c.quit()
        # then the deleted one is gone and the kept one is in cur/
        assert files(t, "new") == []
        assert files(t, "cur") == ["1700000002.M1P1.host:2,"]
        wait_log(t, r"session end: ip=127\.0\.0\.1 user=u@ex\.test "
                 r"tls=yes result=login ok retr=1 dele=1")
    assert PW not in t.log


def test_pop3d_curl(t):
    setup(t)
    put_msg(t, "1700000001.M1P1.host", MSG1)
    put_msg(t, "1700000002.M1P1.host", MSG2)
    user = f"u@{D}:{PW}"
    with server(t):
        # implicit TLS
        p = subprocess.run(["curl", "-sS", "-k", "--max-time", "20",
                            "-u", user, f"pop3s://127.0.0.1:{t.sport}/1"],
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout == MSG1.replace(b"\n", b"\r\n"), p.stdout
        # STLS, required
        p = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "--max-time",
                            "20", "-u", user,
                            f"pop3://127.0.0.1:{t.port}/2"],
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout == MSG2, p.stdout
        # plain from loopback: allowed; a listing
        p = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", user,
                            f"pop3://127.0.0.1:{t.port}/"],
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"1 %d\r\n2 %d\r\n" % (crlf(MSG1),
                                                  len(MSG2)), p.stdout
        # a wrong password: curl fails with a login error (67)
        p = subprocess.run(["curl", "-sS", "-k", "--max-time", "20",
                            "-u", f"u@{D}:wrong",
                            f"pop3s://127.0.0.1:{t.sport}/1"],
                           capture_output=True, timeout=60)
        assert p.returncode == 67, (p.returncode, p.stderr)


def test_pop3d_fetchmail(t):
    setup(t)
    for k in range(3):
        put_msg(t, f"170000000{k}.M{k}P1.host", MSG1.replace(
            b"one", b"msg %d" % k))
    out = os.path.join(t.tmp, "fetched.bsmtp")
    rc = os.path.join(t.tmp, "fetchmailrc")
    with open(rc, "w") as f:
        f.write(f'poll 127.0.0.1 protocol pop3 port {t.port}\n'
                f'  user "u@{D}" password "{PW}" is "local"\n'
                f'  fetchall nokeep sslproto "" \n')
    os.chmod(rc, 0o600)
    e = env()
    e["HOME"] = t.tmp
    e["FETCHMAILHOME"] = t.tmp
    with server(t):
        p = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "-N",
                            "--bsmtp", out, "--pidfile",
                            os.path.join(t.tmp, "fm.pid")],
                           capture_output=True, env=e, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    with open(out, "rb") as f:
        got = f.read()
    for k in range(3):
        assert b"Subject: msg %d" % k in got, got
    assert b"..dot line" in got  # SMTP dot-stuffing in the batch file
    assert files(t, "new") == [] and files(t, "cur") == []


# --- the protocol's corners, through --inetd --------------------------------

def test_pop3d_bad_input(t):
    setup(t)
    put_msg(t, "1700000001.M1P1.host", MSG1)
    put_msg(t, "1700000002.M1P1.host", MSG2)
    s = Session(t)
    assert s.greeting.startswith("+OK ") and "POP3 ready" in s.greeting
    # transaction commands before login; unknown commands
    for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1",
                "UIDL"):
        assert s.cmd(cmd) == "-ERR command not valid in this state", cmd
    for cmd in ("APOP u x", "HELO", "CAPABILITY", "XYZZY 1", ""):
        assert s.cmd(cmd) == "-ERR unknown command", cmd
    assert s.cmd("PASS x") == "-ERR USER first"
    assert s.cmd("USER") == "-ERR USER needs a name"
    # an over-long line: -ERR, and the session goes on (RFC 2449: 255)
    assert s.cmd("NOOP " + "x" * 300) == "-ERR line too long"
    assert s.cmd("USER " + "a" * 10000) == "-ERR line too long"
    assert s.cmd("CAPA " + "x" * 244) == "-ERR this command takes no " \
        "arguments"
    assert s.cmd("CAPA\tx") == "-ERR control characters in the command line"
    assert s.cmd("QUIT") == "+OK bye"
    out, err = s.close()
    assert out == "" and "result=no login" in err, (out, err)
    # 20 bad commands would end the session: a new one for the rest
    s = Session(t)
    assert s.cmd(f"USER u@{D}") == "+OK"
    assert s.cmd(f"PASS {PW}") == "+OK logged in, 2 messages"
    # login commands after login
    for cmd in (f"USER u@{D}", "PASS x", "AUTH PLAIN", "STLS"):
        assert s.cmd(cmd) == "-ERR command not valid in this state", cmd
    # arguments out of range or not numbers
    for cmd in ("RETR 0", "RETR 3", "DELE 99999999999", "LIST 3", "UIDL 0"):
        assert s.cmd(cmd).startswith("-ERR no such message"), cmd
    for cmd in ("RETR x", "RETR -1", "RETR 1x", "DELE +1",
                "RETR 99999999999999999999999", "LIST 0x1"):
        assert s.cmd(cmd) == "-ERR invalid message number", cmd
    assert s.cmd("RETR") == "-ERR RETR takes one message number"
    assert s.cmd("RETR 1 2") == "-ERR RETR takes one message number"
    assert s.cmd("TOP 1") == "-ERR TOP takes a message number and a line " \
        "count"
    assert s.cmd("TOP 1 x") == "-ERR invalid line count"
    assert s.cmd("STAT 1") == "-ERR this command takes no arguments"
    assert s.cmd("LIST 1 2") == "-ERR too many arguments"
    # DELE twice, RETR of a deleted message, RSET
    assert s.cmd("DELE 1") == "+OK message 1 deleted"
    assert s.cmd("DELE 1") == "-ERR message 1 already deleted"
    assert s.cmd("RETR 1") == "-ERR message 1 already deleted"
    assert s.cmd("TOP 1 0") == "-ERR message 1 already deleted"
    assert s.cmd("LIST 1") == "-ERR message 1 already deleted"
    first, lines = s.multi("LIST")
    assert lines == ["2 %d" % len(MSG2)], lines
    assert s.cmd("STAT") == "+OK 1 %d" % len(MSG2)
    assert s.cmd("RSET") == "+OK maildrop has 2 messages"
    assert s.cmd("STAT") == "+OK 2 %d" % (crlf(MSG1) + len(MSG2))
    assert s.cmd("NOOP") == "+OK"
    # a TOP count too big for a number is the whole body
    first, lines = s.multi("TOP 1 99999999999999999999999")
    assert first == "+OK top of message follows"
    assert lines[-1] == "line 3", lines
    assert s.cmd("quit") == "+OK bye, 0 messages deleted"
    out, err = s.close()
    assert out == ""
    assert len(files(t, "cur")) == 2
    assert "result=login ok" in err and "reason=quit" in err, err


def test_pop3d_too_many_bad_commands(t):
    setup(t)
    out, err = inetd(t, b"XXXX\r\n" * 25)
    r = replies(out)
    assert r.count("-ERR unknown command") == 20, r
    assert r[21] == "-ERR too many bad commands; bye", r
    assert "reason=too many bad commands" in err


def test_pop3d_empty_mailbox(t):
    setup(t)
    out, _ = inetd(t, (login_lines() + "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n"
                       "QUIT\r\n").encode())
    assert replies(out)[1:] == [
        "+OK", "+OK logged in, 0 messages", "+OK 0 0",
        "+OK scan listing follows", ".", "+OK unique-id listing follows", ".",
        "-ERR no such message, only 0 in maildrop",
        "+OK bye, 0 messages deleted", ""], out


def test_pop3d_user_percent_and_case(t):
    setup(t)
    out, _ = inetd(t, login_lines(user=f"U%{D.upper()}").encode() +
                   b"QUIT\r\n")
    assert "+OK logged in" in out, out


def test_pop3d_auth_plain(t):
    setup(t)
    good = base64.b64encode(f"\0u@{D}\0{PW}".encode()).decode()
    # with an initial response
    out, _ = inetd(t, f"AUTH PLAIN {good}\r\nQUIT\r\n".encode())
    assert replies(out)[1] == "+OK logged in, 0 messages", out
    # the continuation form
    out, _ = inetd(t, f"AUTH PLAIN\r\n{good}\r\nQUIT\r\n".encode())
    assert replies(out)[1:3] == ["+ ", "+OK logged in, 0 messages"], out
    # the mechanism list, malformed base64, cancel, bad messages
    bad64 = base64.b64encode(b"no-nul-here").decode()
    proxy = base64.b64encode(f"x@{D}\0u@{D}\0{PW}".encode()).decode()
    out, err = inetd(t, (
        "AUTH\r\nAUTH DIGEST-MD5\r\nAUTH PLAIN ####\r\nAUTH PLAIN\r\nnot=base64"
        f"\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN {bad64}\r\nAUTH PLAIN {proxy}"
        f"\r\nAUTH PLAIN a b c\r\nAUTH PLAIN\r\n{'A' * 3000}\r\n"
        f"AUTH PLAIN =\r\nQUIT\r\n").encode())
    assert replies(out)[1:] == [
        "+OK", "PLAIN", "CRAM-MD5", ".",
        "-ERR unsupported authentication mechanism",
        "-ERR invalid base64 in the AUTH response",
        "+ ", "-ERR invalid base64 in the AUTH response",
        "+ ", "-ERR authentication cancelled",
        "-ERR malformed AUTH PLAIN response",
        "-ERR [AUTH] logging in as another user is not supported",
        "-ERR too many arguments",
        "+ ", "-ERR line too long",
        "-ERR malformed AUTH PLAIN response",
        "+OK bye", ""], out
    # none of those was a failed password
    assert "auth failed" not in err


def cram_answer(challenge_line, user, pw):
    """The answer to a "+ CHALLENGE" line, as RFC 2195 computes it."""
    assert challenge_line.startswith("+ "), challenge_line
    chal = base64.b64decode(challenge_line[2:], validate=True)
    assert re.fullmatch(rb"<[0-9a-f]{24}\.\d+\.\d+@[^>]+>", chal), chal
    digest = hmac.new(pw.encode(), chal, "md5").hexdigest()
    return base64.b64encode(f"{user} {digest}".encode()).decode()


def test_pop3d_auth_cram_md5(t):
    """AUTH CRAM-MD5 (RFC 5034, RFC 2195) with Python's hmac: a good
    digest logs in; a wrong digest and an unknown user get the same
    refusal, counted and logged as failed logins; POP3 off is told as for
    the other logins; malformed answers are not failed logins."""
    setup(t, users=("u", "v"))
    put_msg(t, "1700000001.M1P1.host", MSG1)
    t.run("vadmin", "moduser", f"v@{D}", "--disable", "pop", check=0)
    s = Session(t)
    first, caps = s.multi("CAPA")
    assert "SASL PLAIN CRAM-MD5" in caps, caps
    assert s.cmd(cram_answer(s.cmd("AUTH CRAM-MD5"), f"u@{D}", PW)) == \
        "+OK logged in, 1 message"
    assert s.cmd("STAT").startswith("+OK 1 ")
    assert s.cmd("QUIT").startswith("+OK bye")
    out, err = s.close()
    assert "result=login ok" in err and "user=u@ex.test" in err, err

    s = Session(t)
    failed = "-ERR [AUTH] authentication failed"
    # a digest of another password, an unknown user: one answer
    assert s.cmd(cram_answer(s.cmd("auth cram-md5"), f"u@{D}",
                             "wrong")) == failed
    assert s.cmd(cram_answer(s.cmd("AUTH CRAM-MD5"), f"nobody@{D}",
                             PW)) == failed
    # a challenge is never reused: the first one's answer fails later
    chal = s.cmd("AUTH CRAM-MD5")
    answer = cram_answer(chal, f"u@{D}", PW)
    assert s.cmd("*") == "-ERR authentication cancelled"
    assert s.cmd("AUTH CRAM-MD5") != chal
    assert s.cmd(answer) == failed
    out, err = s.close()
    assert err.count("auth failed: user=") == 3, err
    assert "user=u@ex.test ip=local failures: ip 1 user 1" in err, err
    assert "user=nobody@ex.test ip=local" in err, err
    assert "too many failed logins" in err, err

    s = Session(t)
    assert s.cmd(cram_answer(s.cmd("AUTH CRAM-MD5"), f"v@{D}", PW)) == \
        "-ERR [AUTH] POP3 access disabled for this account"
    # no initial response in CRAM-MD5; answers that are not "USER DIGEST"
    assert s.cmd("AUTH CRAM-MD5 " + base64.b64encode(b"u x").decode()) == \
        "-ERR CRAM-MD5 takes no initial response"
    s.cmd("AUTH CRAM-MD5")
    assert s.cmd(base64.b64encode(b"no-space").decode()) == \
        "-ERR malformed AUTH CRAM-MD5 response"
    s.cmd("AUTH CRAM-MD5")
    assert s.cmd("not base64") == "-ERR invalid base64 in the AUTH response"
    assert s.cmd("QUIT") == "+OK bye"
    out, err = s.close()
    assert "POP3 disabled for the account" in err, err
    assert "auth failed" not in err, err


def test_pop3d_fetchmail_cram_md5(t):
    """A real client: fetchmail --auth cram-md5 fetches over AUTH
    CRAM-MD5, and gives up on a wrong password."""
    setup(t)
    put_msg(t, "1700000001.M1P1.host", MSG1)
    out = os.path.join(t.tmp, "fetched.bsmtp")
    e = env()
    e["HOME"] = t.tmp
    e["FETCHMAILHOME"] = t.tmp

    def fetch(pw):
        rc = os.path.join(t.tmp, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(f'poll 127.0.0.1 protocol pop3 port {t.port} '
                    f'auth cram-md5\n'
                    f'  user "u@{D}" password "{pw}" is "local"\n'
                    f'  fetchall nokeep sslproto "" \n')
        os.chmod(rc, 0o600)
        return subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "-N",
                               "-v", "--bsmtp", out, "--pidfile",
                               os.path.join(t.tmp, "fm.pid")],
                              capture_output=True, env=e, timeout=60)

    with server(t):
        bad = fetch("wrong")
        good = fetch(PW)
    assert bad.returncode == 3, (bad.returncode, bad.stdout, bad.stderr)
    assert good.returncode == 0, (good.returncode, good.stdout, good.stderr)
    said = good.stdout + good.stderr
    assert b"AUTH CRAM-MD5" in said, said
    with open(out, "rb") as f:
        assert b"Subject: one" in f.read()
    assert files(t, "new") == [] and files(t, "cur") == []
    assert "result=login ok" in t.log and "auth failed: user=u@ex.test" \
        in t.log, t.log


def test_pop3d_plaintext_rule(t):
    """From a non-loopback address (TCPREMOTEIP, as tcpserver sets it) on
    a plain connection: no USER/PASS, no AUTH PLAIN, STLS offered."""
    setup(t)
    remote = {"TCPREMOTEIP": "192.0.2.7"}
    s = Session(t, remote)
    first, caps = s.multi("CAPA")
    assert "STLS" in caps and "USER" not in caps, caps
    assert "SASL PLAIN" not in caps, caps
    refused = ("-ERR [AUTH] plaintext login is refused on this connection; "
               "use STLS or pop3s")
    assert s.cmd(f"USER u@{D}") == refused
    assert s.cmd(f"PASS {PW}") == refused
    assert s.cmd("AUTH PLAIN") == refused
    assert s.cmd("AUTH") == "+OK"
    assert s.line() == "."
    assert s.cmd("QUIT") == "+OK bye"
    s.close()
    # under TLS it is fine (--inetd --tls: pop3s on the pipes)
    # and control/pop3plaintext 1 opens it
    write_control(t, "pop3plaintext", "1\n")
    out, _ = inetd(t, (login_lines() + "QUIT\r\n").encode(), env_add=remote)
    assert "+OK logged in" in out, out
    assert os.path.exists(t.path("open-smtp", "192.0.2.7"))


def test_pop3d_disabled_user(t):
    setup(t, users=("u", "v"))
    t.run("vadmin", "moduser", f"u@{D}", "--disable", "pop", check=0)
    out, err = inetd(t, (login_lines() + login_lines(pw="wrong") +
                         login_lines(user=f"v@{D}") + "QUIT\r\n").encode())
    r = replies(out)
    assert r[2] == "-ERR [AUTH] POP3 access disabled for this account", r
    assert r[4] == "-ERR [AUTH] authentication failed", r
    assert r[6] == "+OK logged in, 0 messages", r
    assert "POP3 disabled for the account" in err
    assert not os.path.exists(t.path("open-smtp", "u"))


def test_pop3d_removed_and_unreadable(t):
    setup(t)
    p1 = put_msg(t, "1700000001.M1P1.host", MSG1, sub="cur")
    p2 = put_msg(t, "1700000002.M1P1.host,S=%d" % len(MSG2), MSG2,
                 sub="cur")
    put_msg(t, "1700000003.M1P1.host", MSG2, sub="cur")
    os.chmod(p2, 0)
    s = Session(t)
    assert s.cmd(f"USER u@{D}") == "+OK"
    assert s.cmd(f"PASS {PW}") == "+OK logged in, 3 messages"
    os.unlink(p1)
    assert s.cmd("RETR 1") == "-ERR message 1 was removed by another program"
    # LIST still answers, with the size the name gives
    first, lines = s.multi("LIST")
    assert lines[1] == "2 %d" % len(MSG2), lines
    assert s.cmd("RETR 2") == "-ERR cannot read message 2"
    first, lines = s.multi("RETR 3")
    assert first == "+OK %d octets" % len(MSG2)
    assert s.cmd("DELE 1") == "+OK message 1 deleted"
    assert s.cmd("DELE 3") == "+OK message 3 deleted"
    assert s.cmd("QUIT") == "+OK bye, 1 message deleted"
    _, err = s.close()
    assert files(t, "cur") == ["1700000002.M1P1.host,S=%d:2," % len(MSG2)] \
        or files(t, "cur") == ["1700000002.M1P1.host,S=%d" % len(MSG2)]
    assert "cannot read message 2" in err


def test_pop3d_uidl_stable(t):
    setup(t)
    put_msg(t, "1700000001.M1P1.host,S=10", MSG1)
    put_msg(t, "1700000002.M2P1.host", MSG2, sub="cur")

    def uidls():
        out, _ = inetd(t, (login_lines() + "UIDL\r\nQUIT\r\n").encode())
        r = replies(out)
        i = r.index("+OK unique-id listing follows")
        return r[i + 1:r.index(".", i)]

    first = uidls()
    assert first == ["1 1700000001.M1P1.host,S=10", "2 1700000002.M2P1.host"]
    assert files(t, "new") == []
    # another reader marks one seen: the UIDL does not change
    os.rename(os.path.join(maildir(t), "cur", "1700000001.M1P1.host,S=10:2,"),
              os.path.join(maildir(t), "cur",
                           "1700000001.M1P1.host,S=10:2,S"))
    put_msg(t, "1700000003.M3P1.host", MSG2)
    assert uidls() == first + ["3 1700000003.M3P1.host"]
    # an unusable name still gets a valid, stable UIDL
    put_msg(t, "1700000004.M4P1." + "h" * 80, MSG2)
    a = uidls()
    assert uidls() == a
    u = a[3].split(" ", 1)[1]
    assert u.startswith("~") and len(u) == 33, u


def test_pop3d_deletions_only_at_quit(t):
    setup(t)
    t.run("vadmin", "setquota", f"u@{D}", "10M", check=0)
    mds = os.path.join(maildir(t), "maildirsize")
    with open(mds) as f:
        before = f.read()
    put_msg(t, "1700000001.M1P1.host,S=%d" % len(MSG1), MSG1)
    put_msg(t, "1700000002.M1P1.host", MSG2)
    put_msg(t, "1700000003.M1P1.host", MSG2)
    # the client goes away without QUIT: nothing is deleted
    out, err = inetd(t, (login_lines() + "DELE 1\r\nDELE 2\r\n").encode())
    assert "+OK message 2 deleted" in out
    # and new/ is as it was: only QUIT moves the kept messages to cur/
    assert len(files(t, "new")) == 3 and files(t, "cur") == []
    assert "reason=disconnected" in err and "dele=0" in err, err
    # RSET then QUIT: nothing deleted
    inetd(t, (login_lines() + "DELE 1\r\nRSET\r\nQUIT\r\n").encode())
    assert len(files(t, "cur")) == 3 and files(t, "new") == []
    with open(mds) as f:
        assert f.read() == before
    # QUIT: gone, and maildirsize counts it (S= size, else the file's)
    out, err = inetd(t, (login_lines() + "DELE 1\r\nDELE 2\r\nQUIT\r\n")
                     .encode())
    assert "+OK bye, 2 messages deleted" in out, out
    assert files(t, "cur") == ["1700000003.M1P1.host:2,"]
    with open(mds) as f:
        after = f.read()
    assert after == before + "-%d -2\n" % (len(MSG1) + len(MSG2)), after
    assert "dele=2" in err


def test_pop3d_quit_waits_for_a_quota_recalculation(t):
    """the unlinks and the maildirsize line of QUIT happen under the shared
    quota lock (flock of the Maildir's quota.lock), so a recalculation, which holds it
    exclusively from its scan to its rename, never counts them twice"""
    import fcntl
    import threading
    setup(t)
    t.run("vadmin", "setquota", f"u@{D}", "10M", check=0)
    mds = os.path.join(maildir(t), "maildirsize")
    put_msg(t, "1700000001.M1P1.host,S=%d" % len(MSG1), MSG1)
    put_msg(t, "1700000002.M1P1.host", MSG2)
    with open(mds) as f:
        before = f.read()
    dfd = quota_lock(maildir(t))
    got = {}
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)     # a recalculation under way
        th = threading.Thread(target=lambda: got.update(r=inetd(
            t, (login_lines() + "DELE 1\r\nQUIT\r\n").encode())))
        th.start()
        time.sleep(1.0)
        assert th.is_alive(), got
        assert len(files(t, "new")) == 2     # nothing unlinked yet
    finally:
        fcntl.flock(dfd, fcntl.LOCK_UN)
        os.close(dfd)
    th.join(30)
    out, _ = got["r"]
    assert "+OK bye, 1 message" in out, out
    assert len(files(t, "cur")) == 1 and files(t, "new") == []
    with open(mds) as f:
        assert f.read() == before + "-%d -1\n" % len(MSG1)


def test_pop3d_vanish_mid_retr(t):
    setup(t)
    big = b"Subject: big\n\n" + (b"x" * 77 + b"\n") * 100000  # 7.8 MB
    put_msg(t, "1700000001.M1P1.host", big)
    put_msg(t, "1700000002.M1P1.host", MSG2)
    with server(t):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(("127.0.0.1", t.port))
        s.sendall(login_lines().encode() + b"DELE 2\r\nRETR 1\r\n")
        got = b""
        while len(got) < 20000:
            got += s.recv(4096)
        s.close()
        wait_log(t, r"reason=disconnected during a transfer")
    assert len(files(t, "new")) == 2
    assert "dele=0" in t.log


def test_pop3d_in_use(t):
    setup(t)
    put_msg(t, "1700000001.M1P1.host", MSG1)
    with server(t) as srv:
        a = poplib.POP3("127.0.0.1", t.port, timeout=20)
        a.user(f"u@{D}")
        a.pass_(PW)
        b = poplib.POP3("127.0.0.1", t.port, timeout=20)
        b.user(f"u@{D}")
        try:
            b.pass_(PW)
            raise AssertionError("second session got the mailbox")
        except poplib.error_proto as e:
            assert str(e).startswith("b'-ERR [IN-USE]"), e
        a.quit()
        b.user(f"u@{D}")
        b.pass_(PW)
        assert b.stat()[0] == 1
        # a session killed outright leaves no lock behind
        os.kill(serving_pid(srv.pid, t.port, b.sock), signal.SIGKILL)
        b.close()
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        c.user(f"u@{D}")
        c.pass_(PW)
        c.quit()


def serving_pid(parent, port, client):
    """The session process of pop3d PARENT (processes are kept ready and
    reused, lib/server) that holds the server end of CLIENT's connection
    to PORT, found by the socket's inode in /proc/net/tcp."""
    cport, inode = client.getsockname()[1], None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == port and
                    int(fields[2].split(":")[1], 16) == cport):
                inode = fields[9]
    assert inode, "no server end of the connection"
    for pid in session_pids(parent):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == \
                        f"socket:[{inode}]":
                    return pid
    raise AssertionError("no session process serves the client")


def session_pids(parent):
    """The session processes of one pop3d: its children, from /proc."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent:
            pids.append(int(name))
    return pids


def test_pop3d_open_smtp_grant(t):
    v6 = have_ipv6()
    setup(t, v6=v6)
    grant = t.path("open-smtp", "127.0.0.1")
    with server(t):
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        c.user(f"u@{D}")
        with contextlib.suppress(poplib.error_proto):
            c.pass_("wrong")
        c.close()
        assert not os.path.exists(grant)
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        c.user(f"u@{D}")
        c.pass_(PW)
        c.quit()
        st = os.stat(grant)
        assert st.st_size == 0 and (st.st_mode & 0o777) == 0o600
        assert abs(time.time() - st.st_mtime) < 60
        if AS_ROOT:
            assert st.st_uid == mailuser().pw_uid
        os.utime(grant, (1000000000, 1000000000))
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        c.user(f"u@{D}")
        c.pass_(PW)
        c.quit()
        assert abs(time.time() - os.stat(grant).st_mtime) < 60
        if v6:
            c = poplib.POP3("::1", t.port6, timeout=20)
            c.user(f"u@{D}")
            c.pass_(PW)
            c.quit()
            assert os.path.exists(t.path("open-smtp", "::1"))


def test_pop3d_reused_process_sees_new_tables(t):
    """A session process keeps the CDB tables of its logins mapped
    (lib/cdbx batch) for the next ones: a password vadmin changes, a
    user it removes, must count at the very next login all the same,
    in a process that served a login before the change."""
    setup(t, users=("u", "v"))

    def login(user, pw):
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        pid = serving_pid(srv.pid, t.port, c.sock)
        c.user(f"{user}@{D}")
        try:
            c.pass_(pw)
        except poplib.error_proto as e:
            c.close()
            return pid, str(e)
        c.quit()
        return pid, "ok"

    with server(t) as srv:
        before = {login("u", PW)[0] for _ in range(6)}
        login("v", PW)
        t.run("vadmin", "passwd", f"u@{D}", "New-pw-2", check=0)
        t.run("vadmin", "deluser", f"v@{D}", check=0)
        pid, got = login("u", PW)
        assert "authentication failed" in got, got
        pid2, got = login("v", PW)
        assert "authentication failed" in got, got
        seen = {pid, pid2}
        for _ in range(6):
            pid, got = login("u", "New-pw-2")
            assert got == "ok", got
            seen.add(pid)
        assert seen & before, "no session process served twice"


def test_pop3d_failed_logins_slowed_then_refused(t):
    setup(t)
    write_control(t, "pop3maxfail", "4\n")
    with server(t):
        c = poplib.POP3("127.0.0.1", t.port, timeout=30)
        times = []
        for user in (f"u@{D}", f"nobody@{D}", "x@not-hosted.test"):
            c.user(user)
            t0 = time.monotonic()
            try:
                c.pass_("wrong-" + user)
                raise AssertionError("wrong password accepted")
            except poplib.error_proto as e:
                assert str(e) == "b'-ERR [AUTH] authentication failed'", e
            times.append(time.monotonic() - t0)
        # 250 ms, 500 ms, 1 s: growing with the address's failures, and
        # the same for an unknown user as for a wrong password
        assert times[0] >= 0.2 and times[1] >= 0.45 and times[2] >= 0.95, \
            times
        # three failures end the session
        assert c.file.readline() == b""
        c.close()
        c = poplib.POP3("127.0.0.1", t.port, timeout=30)
        c.user(f"u@{D}")
        with contextlib.suppress(poplib.error_proto):
            c.pass_("wrong")
        c.close()
        # four failures (pop3maxfail): the address is refused at connect
        s = socket.create_connection(("127.0.0.1", t.port), 20)
        assert s.recv(200) == (b"-ERR [SYS/TEMP] too many failed logins "
                               b"from your address; try again later\r\n")
        s.close()
        wait_log(t, "refused 127.0.0.1: too many failed logins")
    assert re.search(r"auth failed: user=u@ex\.test ip=127\.0\.0\.1 "
                     r"failures: ip 1 user 1", t.log), t.log
    assert "user=nobody@ex.test ip=127.0.0.1" in t.log
    assert "wrong" not in t.log


def test_pop3d_session_limits(t):
    setup(t)
    write_control(t, "maxperip", "2\n")
    with server(t):
        a = poplib.POP3("127.0.0.1", t.port, timeout=20)
        b = poplib.POP3("127.0.0.1", t.port, timeout=20)
        s = socket.create_connection(("127.0.0.1", t.port), 20)
        assert s.recv(200) == b"-ERR [SYS/TEMP] too many connections\r\n"
        s.close()
        a.quit()
        deadline = time.monotonic() + 10
        while True:  # the parent learns of a's end from SIGCHLD
            c = socket.create_connection(("127.0.0.1", t.port), 20)
            line = c.recv(200)
            c.close()
            if line.startswith(b"+OK"):
                break
            assert time.monotonic() < deadline, line
            time.sleep(0.1)
        b.quit()
    write_control(t, "maxperip", "20\n")
    write_control(t, "maxsessions", "1\n")
    with server(t):
        a = poplib.POP3("127.0.0.1", t.port, timeout=20)
        s = socket.create_connection(("127.0.0.1", t.port), 20)
        assert s.recv(200) == b"-ERR [SYS/TEMP] too many connections\r\n"
        s.close()
        a.quit()


def test_pop3d_maxperip_ipv6(t):
    """maxperip over IPv6 (lib/limit counts an IPv6 client by its /64; the
    grouping itself is unit-tested in test_limit, since only ::1 can be
    bound here): two sessions from ::1, the third refused, while an IPv4
    client is another client."""
    setup(t, v6=True)
    write_control(t, "maxperip", "2\n")
    with server(t, wait_ports=[t.port, t.sport, t.port6]):
        a = poplib.POP3("::1", t.port6, timeout=20)
        b = poplib.POP3("::1", t.port6, timeout=20)
        s = socket.create_connection(("::1", t.port6), 20)
        assert s.recv(200) == b"-ERR [SYS/TEMP] too many connections\r\n"
        s.close()
        c = poplib.POP3("127.0.0.1", t.port, timeout=20)
        c.quit()
        a.quit()
        b.quit()
        wait_log(t, "refused ::1: too many sessions from this address")


def test_pop3d_timeout(t):
    setup(t)
    write_control(t, "timeoutpop3", "1\n")
    with server(t):
        s = socket.create_connection(("127.0.0.1", t.port), 20)
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"NO")  # half a line: the whole line has the timeout
        t0 = time.monotonic()
        assert f.readline() == b"-ERR disconnected for inactivity\r\n"
        assert f.readline() == b""
        assert time.monotonic() - t0 < 5
        s.close()
        wait_log(t, "reason=timeout")


def test_pop3d_stls_discards_pipelined(t):
    setup(t)
    with server(t):
        s = socket.create_connection(("127.0.0.1", t.port), 20)
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        # the CAPA sent in the clear with STLS must never be answered
        s.sendall(b"STLS\r\nCAPA\r\n")
        assert f.readline() == b"+OK begin TLS negotiation\r\n"
        ctx = ssl._create_unverified_context()
        ts = ctx.wrap_socket(s)
        ts.sendall(b"QUIT\r\n")
        got = b""
        while True:
            d = ts.recv(4096)
            if not d:
                break
            got += d
        assert got == b"+OK bye\r\n", got
        ts.close()


def test_pop3d_inetd_tls(t):
    setup(t)
    put_msg(t, "1700000001.M1P1.host", MSG1)
    a, b = socket.socketpair()
    p = subprocess.Popen([t.bin("pop3d"), "--root", t.root, "--inetd",
                          "--tls"], stdin=b.fileno(), stdout=b.fileno(),
                         stderr=subprocess.PIPE, env=env())
    b.close()
    ts = ssl._create_unverified_context().wrap_socket(a)
    f = ts.makefile("rb")
    assert f.readline().startswith(b"+OK")
    ts.sendall(login_lines().encode() + b"STAT\r\nQUIT\r\n")
    got = [f.readline() for _ in range(4)]
    assert got[1] == b"+OK logged in, 1 message\r\n", got
    assert got[3] == b"+OK bye, 0 messages deleted\r\n", got
    ts.close()
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0
    assert b"tls=yes" in err, err


def test_pop3d_under_facteur_run(t):
    """facteur run starts pop3d from its own directory and logs its lines."""
    setup(t)
    # the other services it may find stay off the shared --dev ports
    for name in ("listen.smtp", "listen.submission", "listen.smtps"):
        write_control(t, name, "")
    st = os.stat(t.bindir)
    if AS_ROOT and (st.st_uid != 0 or st.st_mode & 0o022):
        return  # run refuses binaries others may change; not our case
    logf = open(os.path.join(t.tmp, "run.out"), "wb")
    p = subprocess.Popen([t.bin("facteur"), "run", "--root", t.root],
                         stdout=logf, stderr=logf, env=env(),
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                c = poplib.POP3("127.0.0.1", t.port, timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "pop3d not started"
                time.sleep(0.1)
        c.user(f"u@{D}")
        c.pass_(PW)
        c.quit()
        deadline = time.monotonic() + 10
        while True:
            with open(t.path("log", "current")) as f:
                log = f.read()
            if "session end: ip=127.0.0.1 user=u@ex.test" in log:
                break
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
        assert re.search(r"Z pop3d\[\d+\]: listening on 127\.0\.0\.1:", log)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        logf.close()


def slow_pop3d_big_mailbox_memory(t):
    """50,000 messages: a session stays under 16 MiB resident, at its
    peak. SHA512-CRYPT hashes: a yescrypt check alone borrows 16 MiB for
    a moment (its memory-hard scratch area, freed at once), whatever the
    mailbox."""
    t.init()
    write_control(t, "passwordscheme", "sha512crypt\n")
    t.run("vadmin", "adddomain", D, input="pm-pw\n", check=0)
    t.run("vadmin", "adduser", f"u@{D}", PW, check=0)
    md = maildir(t)
    for k in range(50000):
        put_msg(t, f"1700000000.M{k}P1.mx.example.test,S=100", b"x" * 99 +
                b"\n")
    del md
    s = Session(t)
    assert s.cmd(f"USER u@{D}") == "+OK"
    assert s.cmd(f"PASS {PW}") == "+OK logged in, 50000 messages"
    first, lines = s.multi("LIST")
    assert len(lines) == 50000
    first, lines = s.multi("UIDL")
    assert len(lines) == 50000
    with open(f"/proc/{s.p.pid}/status") as f:
        st = dict(ln.split(":", 1) for ln in f)
    hwm, rss = int(st["VmHWM"].split()[0]), int(st["VmRSS"].split()[0])
    assert s.cmd("QUIT").startswith("+OK")
    s.close()
    print(f"note: 50,000-message session: RSS {rss} kB, peak {hwm} kB")
    # AddressSanitizer's shadow memory and quarantine say nothing about
    # ours: the figure counts for a plain build only
    # (a build linked with libasan.so holds only its __asan_ symbols)
    with open(t.bin("pop3d"), "rb") as f:
        sanitized = b"__asan_" in f.read()
    assert sanitized or hwm < 16 * 1024, (rss, hwm)
