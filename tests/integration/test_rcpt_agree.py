"""test_rcpt_agree - mta-smtpd's answer at RCPT and vdeliver's resolution
are one rule (lib/rcpt.c, rcpt_accepts and rcpt_find): the same table of
addresses is given to both, and any disagreement fails. An address
mta-smtpd accepts and vdeliver refuses would be accepted and then bounced
(backscatter); one it refuses and vdeliver would take is mail lost.
And a session process that keeps its tables open between RCPTs reads
what vadmin regenerated meanwhile."""
import os
import subprocess

from test_smtpd import codes, inetd
from vadmin_util import D, add_user, fast_root, vadmin

# (address, expected: True accepted, False refused); the expectation is
# checked too, so that both agreeing on a wrong answer still fails
TABLE = [
    (f"bob@{D}", True), (f"Bob@{D.upper()}", True),
    (f"bob-ext@{D}", True), (f"bob+ext@{D}", True),
    (f"bob+x-y@{D}", True), (f"bob-x+y@{D}", True),
    (f"bob-x-y-z@{D}", True), (f"bob+@{D}", True),
    (f"john-doe@{D}", True), (f"john-doe-lists@{D}", True),
    (f"john-x@{D}", True), (f"john+x-doe@{D}", True),
    (f"sales+eu@{D}", True), (f"sales+eu-x@{D}", True),
    (f"sales@{D}", False), (f"sales-x@{D}", False),
    (f"nobody@{D}", False), (f"nobody-bob@{D}", False),
    (f"info@{D}", True), (f"info-x@{D}", True), (f"info+x@{D}", True),
    (f"off@{D}", False), (f"off-x@{D}", False), (f"off+x@{D}", False),
    (f"nopop@{D}", True), (f"nosmtp@{D}", True),
    ("bob@alias.test", True), ("bob+x@alias.test", True),
    ("info@alias.test", True), ("nobody@alias.test", False),
    ("x@bounce.test", False), ("x@delete.test", True),
    ("x-y@delete.test", True), ("x@fwd.test", True),
    ("nobody+x@fwd.test", True),
]


def setup(t):
    fast_root(t)
    vadmin(t, "adddomain", D, input="pm-Secret-1\n")
    for u in ("bob", "john", "john-doe", "off", "nopop", "nosmtp",
              "sales+eu"):
        add_user(t, f"{u}@{D}")
    vadmin(t, "alias", "add", f"info@{D}", "bob")
    vadmin(t, "moduser", f"off@{D}", "--disable", "delivery")
    vadmin(t, "moduser", f"nopop@{D}", "--disable", "pop")
    vadmin(t, "moduser", f"nosmtp@{D}", "--disable", "smtp")
    vadmin(t, "aliasdomain", "add", "alias.test", D)
    for dom, catch in (("bounce.test", "bounce"), ("delete.test", "delete"),
                       ("fwd.test", f"bob@{D}")):
        vadmin(t, "adddomain", dom, input="pm-Secret-1\n")
        vadmin(t, "catchall", dom, catch)


def smtpd_verdicts(t):
    data = "EHLO c\r\nMAIL FROM:<s@remote.example>\r\n"
    data += "".join(f"RCPT TO:<{a}>\r\n" for a, _ in TABLE)
    lines, err = inetd(t, (data + "QUIT\r\n").encode())
    got = codes(lines)[3:3 + len(TABLE)]    # after 220, EHLO, MAIL
    assert len(got) == len(TABLE), (lines, err)
    return [c == "250" for c in got], lines


def test_smtpd_rcpt_and_vdeliver_agree(t):
    setup(t)
    smtpd, lines = smtpd_verdicts(t)
    wrong = []
    for (addr, want), at_rcpt in zip(TABLE, smtpd):
        p = t.run("vdeliver", "-f", "s@remote.example", "--", addr,
                  input=b"Subject: agree\n\nx\n")
        assert p.returncode in (0, 100), (addr, p.returncode, p.err)
        delivered = p.returncode == 0
        if not (at_rcpt == delivered == want):
            wrong.append((addr, f"want {want}", f"RCPT {at_rcpt}",
                          f"vdeliver {delivered}", p.err.strip()))
    assert not wrong, wrong
    # a mailbox with delivery off is refused for what it is
    off = [l for l in lines if "5.2.1" in l]
    assert len(off) == 3, lines


class Session:
    """one interactive --inetd session: a command, then its reply"""

    def __init__(self, t):
        e = dict(os.environ)
        e.pop("FACTEUR_ROOT", None)
        e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1")
        e["TCPREMOTEIP"] = "192.0.2.7"
        self.p = subprocess.Popen([t.bin("mta-smtpd"), "--root", t.root,
                                   "--inetd"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=e)
        self.reply()

    def reply(self):
        """the last line of one reply (multi-line ones read through)"""
        while True:
            line = self.p.stdout.readline().decode()
            assert line, "the session ended"
            if line[3:4] != "-":
                return line.rstrip("\r\n")

    def cmd(self, line):
        self.p.stdin.write(line.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.reply()

    def close(self):
        self.cmd("QUIT")
        self.p.stdin.close()
        err = self.p.stderr.read().decode()
        assert self.p.wait(timeout=30) == 0, err
        assert "Sanitizer" not in err and "runtime error" not in err, err


def test_smtpd_rcpt_sees_tables_regenerated_in_a_session(t):
    # the session process keeps the tables open from one RCPT to the next
    # (lib/cdbx.h); a table vadmin regenerates meanwhile is the one read
    fast_root(t)
    vadmin(t, "adddomain", D, input="pm-Secret-1\n")
    add_user(t, f"bob@{D}")
    s = Session(t)
    try:
        assert s.cmd("EHLO c").startswith("250 ")
        assert s.cmd("MAIL FROM:<s@remote.example>").startswith("250 ")
        assert s.cmd(f"RCPT TO:<bob@{D}>").startswith("250 ")
        assert s.cmd(f"RCPT TO:<carol@{D}>").startswith("550 5.1.1")
        add_user(t, f"carol@{D}")                   # the domain's table
        assert s.cmd(f"RCPT TO:<carol@{D}>").startswith("250 ")
        assert s.cmd("RCPT TO:<x@new.test>").startswith("553 5.7.1")
        vadmin(t, "adddomain", "new.test", input="pm-Secret-1\n")
        vadmin(t, "catchall", "new.test", "delete")  # assign.cdb too
        assert s.cmd("RCPT TO:<x@new.test>").startswith("250 ")
        vadmin(t, "deluser", f"bob@{D}")
        assert s.cmd(f"RCPT TO:<bob@{D}>").startswith("550 5.1.1")
    finally:
        s.close()
