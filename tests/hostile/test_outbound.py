"""test_outbound - mta-remote and mta-send against malicious servers
(issue 15).

Each server is a script on its own loopback address (all on one port:
mta-remote has one remoteport), reached through smtproutes:

  inject     answers STARTTLS with `220` and, in the same write, a
             plaintext `250` meant to be read as the answer to the first
             command after the handshake (CVE-2011-0411, client side)
  bigehlo    an EHLO reply of 1 MiB (16,384 lines of 64 bytes)
  bigrcpt    a single-line RCPT reply of 1 MiB
  dribble    an EHLO reply whose continuation lines come one every 2 s,
             never ending (check-slow: a whole reply every 10 s, each
             within timeoutremote, the session as long as it lasts)
  halftls    answers STARTTLS with 220, then 11 bytes of a ServerHello
  nodot      reads the whole message and never answers the dot

Proved: every delivery ends within a bound (timeoutremote + 5 s for what
hangs), with a temporary failure (T) naming the reason, or delivered (D)
where the protocol allows; never a crash or sanitizer report; the
injected plaintext is never taken as a reply (the server sees EHLO again
under TLS, and the forged 250 never answers it); and through mta-send, a
message whose dot went unanswered is sent again once and only once (the
duplicate RFC 5321 section 4.1.5 allows) when the retry is answered.
"""
import os
import socket
import ssl
import sys
import threading
import time

import helpers
from test_remote import remote, setup, tls_context

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_net import HALF_HELLO  # noqa: E402

TIMEOUT = 3
MIB = 1 << 20


class Evil:
    """a TCP server on ip:port that runs script(conn, evil) per session
    in a thread; .sessions: lists of the lines each session received"""

    def __init__(self, ip, port, script, tls=None):
        self.script, self.tls = script, tls
        self.sessions, self.messages = [], []
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.session, args=(c,),
                             daemon=True).start()

    def session(self, c):
        c.settimeout(60)
        lines = []
        self.sessions.append(lines)
        try:
            self.script(Conn(c, lines, self))
        except (OSError, ssl.SSLError, EOFError):
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.sock.close()


class Conn:
    """a session of an Evil server: line reads, raw writes"""

    def __init__(self, c, lines, evil):
        self.c, self.lines, self.evil, self.buf = c, lines, evil, b""

    def send(self, data):
        self.c.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\n" not in self.buf:
            b = self.c.recv(65536)
            if not b:
                raise EOFError
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.rstrip(b"\r").decode(errors="replace")
        self.lines.append(line)
        return line

    def until(self, verb):
        """answer 250 to everything until a command starting with verb"""
        while True:
            line = self.line()
            if line.upper().startswith(verb):
                return line
            if line.upper().startswith(("EHLO", "HELO")):
                self.send("250-evil\r\n250 STARTTLS\r\n" if not
                          getattr(self, "secure", False) else "250 evil\r\n")
            elif line.upper() == "DATA":
                self.send("354 go\r\n")
                self.data()
                self.send("250 2.0.0 ok\r\n")
            else:
                self.send("250 ok\r\n")

    def data(self):
        """the message up to the dot"""
        while b"\r\n.\r\n" not in b"\r\n" + self.buf:
            b = self.c.recv(65536)
            if not b:
                raise EOFError
            self.buf += b
        end = (b"\r\n" + self.buf).index(b"\r\n.\r\n")
        msg, self.buf = self.buf[:end], self.buf[end + 3:]
        self.evil.messages.append(msg)
        return msg

    def starttls(self):
        self.c = self.evil.tls.wrap_socket(self.c, server_side=True)
        self.secure = True
        self.buf = b""


def s_inject(k):
    k.send("220 evil ESMTP\r\n")
    k.until("STARTTLS")
    k.send("220 2.0.0 go\r\n250-injected\r\n250 PIPELINING\r\n")
    k.starttls()
    k.until("QUIT")
    k.send("221 bye\r\n")


def s_bigehlo(k):
    k.send("220 evil ESMTP\r\n")
    k.line()
    k.send(("250-" + "e" * 60 + "\r\n") * (MIB // 64) + "250 X\r\n")
    k.until("QUIT")


def s_bigrcpt(k):
    k.send("220 evil ESMTP\r\n")
    k.until("RCPT")
    k.send(b"250 " + b"r" * MIB + b"\r\n")
    k.until("QUIT")


def s_dribble(k, gap=2):
    k.send("220 evil ESMTP\r\n")
    k.line()
    while not k.evil.stop.wait(gap):
        k.send("250-still here\r\n")


def s_halftls(k):
    k.send("220 evil ESMTP\r\n")
    k.until("STARTTLS")
    k.send(b"220 2.0.0 go\r\n" + HALF_HELLO)
    k.evil.stop.wait(60)


def s_nodot(k):
    """the first session: the whole message, then silence; later ones:
    a normal server"""
    first = len(k.evil.sessions) == 1
    k.send("220 evil ESMTP\r\n")
    k.until("DATA")
    k.send("354 go\r\n")
    k.data()
    if first:
        k.evil.stop.wait(60)
        return
    k.send("250 2.0.0 queued\r\n")
    k.until("QUIT")
    k.send("221 bye\r\n")


def test_outbound_malicious_servers_bounded(t):
    port = setup(t, timeout=TIMEOUT, smtproutes="\n".join(
        f"{d}.test:[127.0.0.{i}]" for i, d in enumerate(
            ("inject", "bigehlo", "bigrcpt", "dribble", "halftls"), 2)))
    ctx = tls_context(t)
    evils = [Evil(f"127.0.0.{i}", port, s, tls=ctx) for i, s in enumerate(
        (s_inject, s_bigehlo, s_bigrcpt, s_dribble, s_halftls), 2)]
    times = {}
    try:
        for dom, kinds, word in (("inject", "D", ""),
                                 ("bigehlo", "T", "malformed reply"),
                                 ("bigrcpt", "T", "too long"),
                                 ("dribble", "T", "timed out"),
                                 ("halftls", "T", "")):
            res, err, dt = remote(t, f"{dom}.test", "a@example.org",
                                  f"x@{dom}.test")
            times[dom] = round(dt, 1)
            assert "".join(k for k, _ in res) == kinds or (
                dom == "halftls" and res[0][0] in "DT"), (dom, res, err)
            assert word in res[0][1], (dom, res)
            assert dt < TIMEOUT * 2 + 5, (dom, dt)
        inj = evils[0].sessions[0]
        # after the handshake the client said EHLO again: the injected
        # 250 lines were never taken as its answer
        i = inj.index("STARTTLS")
        assert inj[i + 1].startswith("EHLO "), inj
        assert evils[0].messages and len(evils[0].messages) == 1
    finally:
        for e in evils:
            e.close()
    print(f"outbound: seconds per server {times}")


def s_slow(k, gap=10):
    """every reply gap s after the line it answers (the greeting gap s
    after the connection); bench/hostile_peers.py runs it on Postfix"""
    k.evil.stop.wait(gap)
    k.send("220 slow\r\n")
    while True:
        line = k.line()
        k.evil.stop.wait(gap)
        if line.upper() == "DATA":
            k.send("354 go\r\n")
            k.data()
            k.evil.stop.wait(gap)
            k.send("250 ok\r\n")
        elif line.upper() == "QUIT":
            k.send("221 bye\r\n")
            return
        else:
            k.send("250 ok\r\n")


def slow_outbound_reply_every_10s(t):
    """a server whose every reply takes 10 s, within timeoutremote 15:
    the delivery ends (delivered) in about ten replies' time"""
    port = setup(t, timeout=15, smtproutes="slow.test:[127.0.0.2]")
    e = Evil("127.0.0.2", port, s_slow)
    try:
        res, _, dt = remote(t, "slow.test", "a@example.org", "x@slow.test",
                            timeout=200)
    finally:
        e.close()
    assert res[0][0] == "D", res
    assert dt < 90, dt
    assert len(e.messages) == 1


def test_outbound_unanswered_dot_sent_once_more_only(t):
    """through mta-send: the dot unanswered, deferred (timed out), sent
    again on the retry, which is answered: two copies in all, no third"""
    port = setup(t, timeout=TIMEOUT, retrybase="1",
                 smtproutes="nodot.test:[127.0.0.2]")
    e = Evil("127.0.0.2", port, s_nodot)
    s = helpers.Sender(t)
    try:
        p = t.run("mta-inject", "-f", "a@example.org", "x@nodot.test",
                  input=b"Subject: once\n\nhi\n", check=0)
        s.wait_log(r"delivery \d+: deferral: .*timed_out", timeout=30)
        s.wait_log(r"delivery \d+: success", timeout=60)
        s.wait_drained(timeout=30)
        time.sleep(TIMEOUT)
    finally:
        log = s.stop()      # on a failure too: no scheduler left behind
        e.close()
    assert p.returncode == 0
    assert len(e.messages) == 2, len(e.messages)
    assert log.count("success") == 1, log
