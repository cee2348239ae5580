"""test_login_agree - mta-smtpd's AUTH and pop3d's login are one rule
(lib/login.c login_check, lib/sasl.c): the same table of logins, with a
password (AUTH PLAIN) and with CRAM-MD5, is given to both servers, and any
answer other than the table's fails. A login one server takes and the
other refuses is the drift the shared code exists to prevent."""
import base64
import hmac
import os
import subprocess

from vadmin_util import D, add_user, fast_root, vadmin

PW = "user-Secret-1"

# (login, password, expected: (pop3d, mta-smtpd)); "ok" logged in, "no"
# the refusal of a wrong login, "off" pop3d's "POP3 disabled" answer
TABLE = [
    (f"bob@{D}", PW, ("ok", "ok")),
    (f"Bob@{D.upper()}", PW, ("ok", "ok")),
    (f"bob%{D}", PW, ("ok", "ok")),
    ("bob@alias.test", PW, ("ok", "ok")),
    (f"bob@{D}", "wrong", ("no", "no")),
    (f"nobody@{D}", PW, ("no", "no")),
    ("bob@nowhere.test", PW, ("no", "no")),
    ("bob", PW, ("no", "no")),
    (f"nopop@{D}", PW, ("off", "ok")),
    (f"nopop@{D}", "wrong", ("no", "no")),
    (f"nosmtp@{D}", PW, ("ok", "no")),
]


def setup(t):
    fast_root(t)
    vadmin(t, "adddomain", D, input="pm-Secret-1\n")
    for u in ("bob", "nopop", "nosmtp"):
        add_user(t, f"{u}@{D}", PW)
    vadmin(t, "moduser", f"nopop@{D}", "--disable", "pop")
    vadmin(t, "moduser", f"nosmtp@{D}", "--disable", "smtp")
    vadmin(t, "aliasdomain", "add", "alias.test", D)


class Peer:
    """One --inetd session of PROG, driven line by line."""

    def __init__(self, t, prog, ip):
        env = dict(os.environ, TCPREMOTEIP=ip) if ip else {
            k: v for k, v in os.environ.items() if k != "TCPREMOTEIP"}
        self.p = subprocess.Popen([t.bin(prog), "--inetd", "--root", t.root],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.line()

    def line(self):
        while True:
            ln = self.p.stdout.readline().decode().rstrip("\r\n")
            if ln[3:4] != "-":      # the last line of an SMTP reply
                return ln

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.line()

    def close(self):
        self.p.stdin.close()
        err = self.p.stderr.read().decode(errors="replace")
        self.p.wait(30)
        self.p.stdout.close()
        self.p.stderr.close()
        assert "Sanitizer" not in err and "runtime error" not in err, err


def b64(b):
    return base64.b64encode(b).decode()


def answer(prompt, user, pw, cram):
    """The response to AUTH's first prompt: PLAIN's message, or CRAM-MD5's
    "user digest" to the challenge in PROMPT."""
    if not cram:
        return b64(f"\0{user}\0{pw}".encode())
    chal = base64.b64decode(prompt.split(" ", 1)[1])
    return b64(f"{user} {hmac.new(pw.encode(), chal, 'md5').hexdigest()}"
               .encode())


def pop3(t, user, pw, cram):
    s = Peer(t, "pop3d", None)
    got = s.cmd(answer(s.cmd(f"AUTH {'CRAM-MD5' if cram else 'PLAIN'}"),
                       user, pw, cram))
    s.close()
    if got.startswith("+OK logged in"):
        return "ok"
    if got == "-ERR [AUTH] POP3 access disabled for this account":
        return "off"
    assert got == "-ERR [AUTH] authentication failed", got
    return "no"


def smtp(t, user, pw, cram):
    s = Peer(t, "mta-smtpd", "127.0.0.1")
    s.cmd("EHLO c")
    got = s.cmd(answer(s.cmd(f"AUTH {'CRAM-MD5' if cram else 'PLAIN'}"),
                       user, pw, cram))
    s.close()
    if got == "235 2.7.0 authentication successful":
        return "ok"
    assert got == "535 5.7.8 authentication failed", got
    return "no"


def test_pop3d_and_smtpd_logins_agree(t):
    setup(t)
    wrong = []
    for cram in (False, True):
        for user, pw, want in TABLE:
            got = (pop3(t, user, pw, cram), smtp(t, user, pw, cram))
            if got != want:
                wrong.append((user, pw, "CRAM-MD5" if cram else "PLAIN",
                              f"want {want}", f"got {got}"))
    assert not wrong, wrong


# the longest password vadmin stores (lib/pw.h PW_MAX), a space inside
LONG_PW = "P" + "".join(chr(0x20 + i % 95) for i in range(126)) + "z"
# the longest login name: a 64-byte local part at a 253-byte domain
LONG_D = ".".join(["d" * 63] * 3 + ["e" * 61])
LONG_U = "u" * 64 + "@" + LONG_D


def long_setup(t):
    """bob@D and the longest name, both with the longest password"""
    fast_root(t)
    vadmin(t, "adddomain", D, input="pm-Secret-1\n")
    vadmin(t, "adddomain", LONG_D, input="pm-Secret-1\n")
    for u in (f"bob@{D}", LONG_U):
        p = add_user(t, u, LONG_PW)
        assert p.returncode == 0, p.err


def test_longest_password_vadmin_stores_logs_in_everywhere(t):
    """A password vadmin accepts is one every login path carries: POP3
    USER/PASS (a 255-byte line, which no name over 248 bytes fits: RFC
    2449's limit) for bob@D, and AUTH PLAIN with an authorization identity
    and AUTH LOGIN at the longest name, on pop3d and mta-smtpd. The PLAIN
    response goes on its own line: on the AUTH command line it would pass
    the 512 bytes of an SMTP command (RFC 4954 4: the client must not send
    it there). One byte more is refused when it is set, not later."""
    assert len(LONG_PW) == 128 and len(LONG_U) == 318
    long_setup(t)
    for cmd in (("adduser", f"carol@{D}"), ("passwd", f"bob@{D}")):
        p = vadmin(t, *cmd, input=LONG_PW + "x\n", check=1)
        assert p.returncode == 1, (cmd, p.returncode, p.err)
        assert "password longer than 128 bytes" in p.err, p.err
    s = Peer(t, "pop3d", None)
    assert s.cmd(f"USER bob@{D}").startswith("+OK"), "USER"
    assert s.cmd(f"PASS {LONG_PW}").startswith("+OK logged in"), "PASS"
    s.close()
    plain = b64(f"{LONG_U}\0{LONG_U}\0{LONG_PW}".encode())
    s = Peer(t, "pop3d", None)
    s.cmd("AUTH PLAIN")
    assert s.cmd(plain).startswith("+OK logged in"), "pop3d AUTH PLAIN"
    s.close()
    s = Peer(t, "mta-smtpd", "127.0.0.1")
    s.cmd("EHLO c")
    s.cmd("AUTH PLAIN")
    got = s.cmd(plain)
    s.close()
    assert got == "235 2.7.0 authentication successful", got
    s = Peer(t, "mta-smtpd", "127.0.0.1")
    s.cmd("EHLO c")
    s.cmd("AUTH LOGIN")
    s.cmd(b64(LONG_U.encode()))
    got = s.cmd(b64(LONG_PW.encode()))
    s.close()
    assert got == "235 2.7.0 authentication successful", got
