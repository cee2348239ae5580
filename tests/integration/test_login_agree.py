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
