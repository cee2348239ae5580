"""test_smtpd - mta-smtpd through --inetd pipes, raw sockets, smtplib, swaks.

Byte-exact protocol tests run one session with --inetd on pipes (the whole
client side in one write, so everything is pipelined); listener tests
write free loopback ports into control/listen.* and start the server,
which drops to the mail user after binding, and stop it by its PID.
Queue files are parsed with the reader of test_queue.py.
"""
import base64
import hashlib
import hmac
import os
import re
import signal
import socket
import ssl
import smtplib
import subprocess
import time

from helpers import alone, free_port, queued, read_queue_file

D = "example.test"


def setup(t, *controls):
    """A root with example.test, bob@ (password 'secret') and controls."""
    t.init()
    with open(t.path("control", "me"), "w") as f:
        f.write("mx.example.test\n")
    t.run("vadmin", "adddomain", D, input="pw\n", check=0)
    t.run("vadmin", "adduser", "bob@" + D, "secret", check=0)
    for name, value in controls:
        with open(t.path("control", name), "w") as f:
            f.write(value)


def inetd(t, data, ip="192.0.2.7", args=(), timeout=60):
    """One --inetd session fed DATA at once: (reply lines, stderr)."""
    p = t.run("mta-smtpd", "--inetd", *args, input=data,
              env={"TCPREMOTEIP": ip}, timeout=timeout, check=0)
    assert "Sanitizer" not in p.err and "runtime error" not in p.err, p.err
    return p.stdout.decode(errors="replace").split("\r\n")[:-1], p.err


def codes(lines):
    """The reply codes of the last line of each reply."""
    return [l[:3] for l in lines if len(l) > 3 and l[3] == " "]


def test_smtpd_basic_session_and_queue_file(t):
    setup(t)
    msg = (b"EHLO client.example\r\nMAIL FROM:<alice@remote.example> "
           b"SIZE=100 BODY=8BITMIME\r\nRCPT TO:<bob@example.test>\r\n"
           b"RCPT TO:<Postmaster@Example.Test>\r\nDATA\r\n"
           b"Subject: hi\r\n\r\n..leading dot\r\nline\r\n.\r\nQUIT\r\n")
    lines, err = inetd(t, msg)
    assert lines[:8] == [
        "220 mx.example.test ESMTP", "250-mx.example.test",
        "250-PIPELINING", "250-8BITMIME", "250-SIZE 10485760",
        "250-ENHANCEDSTATUSCODES", "250-STARTTLS", "250 SMTPUTF8"], lines
    assert codes(lines)[2:] == ["250", "250", "250", "354", "250", "221"]
    files = queued(t)
    assert len(files) == 1
    qid = os.path.basename(files[0])
    assert f"250 2.0.0 ok {qid}" in lines
    recs, body = read_queue_file(files[0])
    r = dict(recs)
    assert r["F"] == b"alice@remote.example"
    assert [v for k, v in recs if k == "R"] == [b"bob@example.test",
                                               b"Postmaster@example.test"]
    assert r["C"] == b"192.0.2.7" and r["H"] == b"client.example"
    assert r["P"] == b"ESMTP" and "A" not in r
    # mail from others: our Authentication-Results first (test_dkim_verify)
    # (spf= and dkim=: test_spf_smtpd), then our Received:
    assert re.match(rb"Authentication-Results: mx\.example\.test;\n"
                    rb"(?:\t.*\n)+Received: from client\.example "
                    rb"\(192\.0\.2\.7\)\n", body), body
    assert f"by mx.example.test with ESMTP id {qid};".encode() in body
    assert body.endswith(b"\nSubject: hi\n\n.leading dot\nline\n"), body
    assert b"\r" not in body
    assert "mta-smtpd[" in err and "session 192.0.2.7 helo client.example"\
        f" auth - tls no: queued 1 {qid} refused 0; end quit" in err, err


def test_smtpd_pipelining_in_order(t):
    setup(t)
    msg = (b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\n"
           b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<x@elsewhere.org>\r\n"
           b"DATA\r\nx\r\n.\r\nMAIL FROM:<a@b.example>\r\n"
           b"RCPT TO:<bob@example.test>\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    lines, _ = inetd(t, msg)
    assert codes(lines) == ["220", "250", "250", "250", "550", "553", "354",
                            "250", "250", "250", "250", "250", "221"], lines
    assert "550 5.1.1 no such user here" in lines
    assert ("553 5.7.1 sorry, that domain isn't allowed to be relayed thru "
            "this MTA") in lines
    assert len(queued(t)) == 1


def test_smtpd_wrong_order_and_unknown(t):
    setup(t)
    msg = (b"MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\n"
           b"DATA\r\nHELO c\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
           b"MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n"
           b"DATA\r\nBOGUS\r\nVRFY bob\r\nHELP\r\nQUIT\r\n")
    lines, _ = inetd(t, msg)
    assert lines[1:] == [
        "503 5.5.1 send HELO or EHLO first", "503 5.5.1 MAIL first",
        "503 5.5.1 MAIL first", "250 mx.example.test",
        "503 5.5.1 MAIL first", "503 5.5.1 MAIL first", "250 2.1.0 ok",
        "503 5.5.1 nested MAIL command", "554 5.5.1 no valid recipients",
        "500 5.5.1 command unrecognized",
        "252 2.5.2 send some mail, I'll try my best", lines[12],
        "221 2.0.0 mx.example.test closing connection"], lines
    assert lines[12].startswith("214 ")
    assert queued(t) == []


# every bare-LF / bare-CR end-of-data variant (SMTP smuggling); also
# tried in every client context by tests/hostile/test_relay_ctx.py
SMUGGLE_ENDINGS = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n",
                   b"\r.\r\n"]


def test_smtpd_data_smuggling_refused(t):
    setup(t)
    # each ending followed by a smuggled transaction, then the real end:
    # one 554, nothing queued
    for fake in SMUGGLE_ENDINGS:
        msg = (b"HELO c\r\nMAIL FROM:<a@b.example>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi"
               + fake + b"MAIL FROM:<evil@b.example>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"
               b".\r\nQUIT\r\n")
        lines, _ = inetd(t, msg)
        assert codes(lines) == ["220", "250", "250", "250", "354", "554",
                                "221"], (fake, lines)
        assert ("554 5.6.0 message refused: bare CR, bare LF or NUL byte "
                "in the data") in lines
        assert queued(t) == [], fake


def test_smtpd_nul_and_long_lines(t):
    setup(t)
    head = b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\n"
    lines, _ = inetd(t, head + b"DATA\r\na\0b\r\n.\r\nQUIT\r\n")
    assert codes(lines)[-2:] == ["554", "221"], lines
    lines, _ = inetd(t, head + b"DATA\r\n" + b"x" * 998 + b"\r\n.\r\n"
                     b"MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>"
                     b"\r\nDATA\r\n" + b"y" * 999 + b"\r\n.\r\nQUIT\r\n")
    assert codes(lines) == ["220", "250", "250", "250", "354", "250", "250",
                            "250", "354", "554", "221"], lines
    assert ("554 5.6.0 message refused: line too long (over 1000 bytes)"
            in lines)
    assert len(queued(t)) == 1
    # a command line of 512 bytes with CR LF is fine; 513 is not
    ok = b"NOOP " + b"x" * 505 + b"\r\n"
    assert len(ok) == 512
    lines, _ = inetd(t, ok + b"NOOP " + b"x" * 506 + b"\r\n" +
                     b"NOOP " + b"y" * 100000 + b"\r\nNOOP\0x\r\nQUIT\r\n")
    assert lines[1:] == ["250 2.0.0 ok", "500 5.5.2 line too long",
                         "500 5.5.2 line too long",
                         "500 5.5.2 bad character in command",
                         "221 2.0.0 mx.example.test closing connection"]


def test_smtpd_size_limits(t):
    setup(t, ("databytes", "200\n"))
    head = b"EHLO c\r\n"
    lines, _ = inetd(t, head + b"MAIL FROM:<a@b.example> SIZE=201\r\n"
                     b"MAIL FROM:<a@b.example> SIZE=200\r\n"
                     b"RCPT TO:<bob@example.test>\r\nDATA\r\n" +
                     b"z" * 100 + b"\r\n" + b"z" * 100 + b"\r\n.\r\nQUIT\r\n")
    assert "250-SIZE 200" in lines
    assert ("552 5.3.4 message size exceeds fixed maximum message size"
            in lines)
    assert codes(lines)[-4:] == ["250", "354", "552", "221"], lines
    assert queued(t) == []


def test_smtpd_badmailfrom_badrcptto(t):
    setup(t, ("badmailfrom", "spam@bad.example\n@worse.example\n"),
          ("badrcptto", "postmaster@example.test\n"))
    lines, _ = inetd(t, b"HELO c\r\nMAIL FROM:<Spam@bad.example>\r\n"
                     b"MAIL FROM:<x@worse.example>\r\nMAIL FROM:<ok@b.ex>\r\n"
                     b"RCPT TO:<postmaster@example.test>\r\n"
                     b"RCPT TO:<bob@example.test>\r\nQUIT\r\n")
    assert codes(lines) == ["220", "250", "553", "553", "250", "553", "250",
                            "221"], lines
    assert lines[2] == ("553 5.7.1 sorry, your envelope sender is in my "
                        "badmailfrom list")
    assert lines[5].startswith("553 5.7.1 ")


def rcpt_replies(t, rcpts, ip):
    data = b"HELO c\r\nMAIL FROM:<a@b.example>\r\n"
    for r in rcpts:
        data += b"RCPT TO:<" + r.encode() + b">\r\n"
    lines, _ = inetd(t, data + b"QUIT\r\n", ip=ip)
    return lines[3:-1]


def test_smtpd_relay_control(t):
    setup(t)
    # 127.x relays by the default rules; 192.0.2.7 does not
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "127.0.0.1")) == [
        "250"]
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "192.0.2.7")) == [
        "553"]
    # a fresh POP-before-SMTP grant relays, an old one does not
    grant = t.path("open-smtp", "192.0.2.7")
    open(grant, "w").close()
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "192.0.2.7")) == [
        "250"]
    # popbeforesmtp with no number: no grant is honoured (a fault never
    # opens the relay), where other programs take the default
    with open(t.path("control", "popbeforesmtp"), "w") as f:
        f.write("off\n")
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "192.0.2.7")) == [
        "553"]
    os.unlink(t.path("control", "popbeforesmtp"))
    old = time.time() - 10801
    os.utime(grant, (old, old))
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "192.0.2.7")) == [
        "553"]
    # unknown hosted users are refused even for a relay client
    assert codes(rcpt_replies(t, ["nobody@example.test"], "127.0.0.1")) == [
        "550"]


def test_smtpd_relay_tricks(t):
    setup(t)
    tricks = ["x%elsewhere.org@example.test", "elsewhere.org!x@example.test",
              '"x@elsewhere.org"@example.test',
              "@example.test:x@elsewhere.org",
              "@example.test,@x.org:x@elsewhere.org",
              "x@elsewhere.org@example.test", "x@[192.0.2.1]",
              "x@[IPv6:2001:db8::1]", "x%elsewhere.org@[192.0.2.1]",
              "x@elsewhere.org.", "x@example.test.elsewhere.org",
              "bob@example.test@elsewhere.org", "x@elsewhere.org%example.test",
              "x@", "@example.test", "x y@example.test", "x\\@y@example.test",
              "x..y@example.test", ".x@example.test", "x@example..test"]
    got = rcpt_replies(t, tricks, "192.0.2.7")
    assert len(got) == len(tricks)
    for trick, reply in zip(tricks, got):
        assert reply[0] == "5", (trick, reply)


def test_smtpd_extensions_and_catchall(t):
    setup(t)
    got = rcpt_replies(t, ["bob-list@example.test", "bob+tag@example.test",
                           "BOB@EXAMPLE.TEST", "bobby@example.test"],
                       "192.0.2.7")
    assert codes(got) == ["250", "250", "250", "550"], got
    t.run("vadmin", "catchall", D, "bob@" + D, check=0)
    got = rcpt_replies(t, ["anyone@example.test"], "192.0.2.7")
    assert codes(got) == ["250"], got


def test_smtpd_timeout(t):
    setup(t, ("timeoutsmtpd", "1\n"))
    p = subprocess.Popen([t.bin("mta-smtpd"), "--inetd", "--root", t.root],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    start = time.time()
    p.stdin.write(b"HELO c\r\nNOOP")   # a line that never ends
    p.stdin.flush()
    p.wait(timeout=20)     # stdin is still open: only the timeout ends it
    out, err = p.stdout.read(), p.stderr.read()
    for f in (p.stdin, p.stdout, p.stderr):
        f.close()
    assert time.time() - start < 10
    assert out.endswith(b"421 4.4.2 mx.example.test timeout, closing "
                        b"connection\r\n"), out
    assert b"end timeout" in err


def test_smtpd_disconnect_mid_data_queues_nothing(t):
    setup(t)
    lines, err = inetd(t, b"HELO c\r\nMAIL FROM:<a@b.example>\r\n"
                       b"RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: x\r\n"
                       b"\r\nhalf a message\r\n")
    assert codes(lines) == ["220", "250", "250", "250", "354"], lines
    assert queued(t) == [] and os.listdir(t.path("queue", "tmp")) == []
    assert "connection lost in DATA" in err


def test_smtpd_submission_needs_auth(t):
    setup(t)
    lines, _ = inetd(t, b"EHLO c\r\nAUTH PLAIN AGJvYkBleGFtcGxlLnRlc3QAc2Vj"
                     b"cmV0\r\nMAIL FROM:<bob@example.test>\r\nQUIT\r\n",
                     args=["--submission"])
    assert not any("AUTH" in l for l in lines[:8]), lines
    assert codes(lines)[-3:] == ["538", "530", "221"], lines
    assert "530 5.7.0 authentication required" in lines


def auth_plain(user, pw, authz=""):
    return base64.b64encode(f"{authz}\0{user}\0{pw}".encode()).decode()


def test_smtpd_auth_on_port_25_relay_client(t):
    # from 127.0.0.1 (a relay client) AUTH is offered in plaintext on 25
    setup(t)
    lines, err = inetd(t, (
        "EHLO c\r\nAUTH PLAIN " + auth_plain("bob@example.test", "secret",
                                             "other@example.test") +
        "\r\nAUTH PLAIN !!!!\r\nAUTH PLAIN " +
        auth_plain("bob@example.test", "secret") + "\r\n"
        "MAIL FROM:<bob@example.test>\r\nRCPT TO:<x@elsewhere.org>\r\n"
        "DATA\r\nhi\r\n.\r\nQUIT\r\n").encode(), ip="127.0.0.1")
    assert "250-AUTH PLAIN LOGIN CRAM-MD5" in lines
    assert codes(lines) == ["220", "250", "535", "501", "235", "250", "250",
                            "354", "250", "221"], lines
    recs, body = read_queue_file(queued(t)[0])
    assert dict(recs)["A"] == b"bob@example.test"
    assert b" with ESMTPA id " in body
    assert "auth bob@example.test" in err
    # not offered to a client that may not relay, in plaintext
    lines, _ = inetd(t, b"EHLO c\r\nAUTH LOGIN\r\nQUIT\r\n")
    assert not any(l.startswith("250-AUTH") for l in lines)
    assert "503 5.5.1 AUTH not available" in lines


def test_smtpd_auth_login_cram_and_failures(t):
    setup(t)
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    p = subprocess.Popen([t.bin("mta-smtpd"), "--inetd", "--root", t.root],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         env=dict(os.environ, TCPREMOTEIP="127.0.0.1"))
    f = p.stdout

    def send(s):
        p.stdin.write(s.encode() + b"\r\n")
        p.stdin.flush()

    def reply():
        out = []
        while True:
            line = f.readline().decode()
            out.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return out

    assert reply() == ["220 mx.example.test ESMTP"]
    send("EHLO c")
    reply()
    send("AUTH LOGIN")
    assert reply() == ["334 VXNlcm5hbWU6"]
    send(b64("bob@example.test"))
    assert reply() == ["334 UGFzc3dvcmQ6"]
    start = time.time()
    send(b64("wrong"))
    assert reply() == ["535 5.7.8 authentication failed"]
    assert time.time() - start >= 0.9      # slowed
    send("AUTH CRAM-MD5")
    r = reply()[0]
    assert r.startswith("334 ")
    chal = base64.b64decode(r[4:])
    assert chal.startswith(b"<") and chal.endswith(b"@mx.example.test>")
    digest = hmac.new(b"secret", chal, hashlib.md5).hexdigest()
    send(b64("bob@example.test " + digest))
    assert reply() == ["235 2.7.0 authentication successful"]
    send("QUIT")
    reply()
    p.stdin.close()
    p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()


# --- listeners ----------------------------------------------------------

class Server:
    def __init__(self, t, smtp="", submission="", smtps="", addr="127.0.0.1"):
        self.t = t
        self.ports = {}
        for name, want in (("smtp", smtp), ("submission", submission),
                           ("smtps", smtps)):
            if want == "keep":
                continue
            with open(t.path("control", "listen." + name), "w") as f:
                if want:
                    self.ports[name] = free_port()
                    a = f"[{addr}]" if ":" in addr else addr
                    f.write(f"{a}:{self.ports[name]}\n")
        self.log = open(os.path.join(t.tmp, "smtpd.log"), "wb")
        self.p = subprocess.Popen([t.bin("mta-smtpd"), "--root", t.root],
                                  stdout=subprocess.DEVNULL,
                                  stderr=self.log)
        for port in self.ports.values():
            for _ in range(200):
                try:
                    socket.create_connection((addr, port), 1).close()
                    break
                except OSError:
                    time.sleep(0.05)

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)
        self.log.close()
        log = open(os.path.join(self.t.tmp, "smtpd.log")).read()
        assert "Sanitizer" not in log and "runtime error" not in log, log
        return log


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def test_smtpd_listeners_starttls_submission_smtps(t):
    setup(t)
    srv = Server(t, smtp=1, submission=1, smtps=1)
    try:
        # submission: no AUTH in plaintext, MAIL refused; after STARTTLS
        # AUTH is offered and mail goes through as ESMTPSA
        with smtplib.SMTP("127.0.0.1", srv.ports["submission"]) as c:
            c.ehlo("sub.example")
            assert not c.has_extn("auth") and c.has_extn("starttls")
            code, _ = c.mail("bob@example.test")
            assert code == 530
            c.starttls(context=tls_ctx())
            c.ehlo("sub.example")
            assert not c.has_extn("starttls")
            assert c.esmtp_features["auth"].split() == [
                "PLAIN", "LOGIN", "CRAM-MD5"]
            c.login("bob@example.test", "secret")
            c.sendmail("bob@example.test", ["x@elsewhere.org"],
                       b"Subject: sub\r\n\r\nvia 587\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", srv.ports["smtps"],
                              context=tls_ctx()) as c:
            c.ehlo("tls.example")
            assert not c.has_extn("starttls")
            c.login("bob@example.test", "secret")
            c.sendmail("bob@example.test", ["y@elsewhere.org"],
                       b"Subject: smtps\r\n\r\nvia 465\r\n")
        with smtplib.SMTP("127.0.0.1", srv.ports["smtp"]) as c:
            c.starttls(context=tls_ctx())
            c.sendmail("a@b.example", ["bob@example.test"],
                       b"Subject: mx\r\n\r\nvia 25\r\n")
        p = subprocess.run(["swaks", "--server",
                            f"127.0.0.1:{srv.ports['submission']}", "--tls",
                            "--auth", "PLAIN", "--auth-user",
                            "bob@example.test", "--auth-password", "secret",
                            "--from", "bob@example.test", "--to",
                            "z@elsewhere.org", "--helo", "swaks.example"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "250 2.0.0 ok " in p.stdout
    finally:
        log = srv.stop()
    protos = sorted(dict(read_queue_file(f)[0])["P"] for f in queued(t))
    assert protos == [b"ESMTPS", b"ESMTPSA", b"ESMTPSA", b"ESMTPSA"], protos
    assert "session 127.0.0.1 helo sub.example auth bob@example.test tls " \
        "yes: queued 1 " in log, log


def test_smtpd_starttls_discards_pipelined_input(t):
    setup(t)
    srv = Server(t, smtp=1)
    try:
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(b"EHLO c\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"STARTTLS\r\nMAIL FROM:<evil@b.example>\r\n")
        assert f.readline() == b"220 2.0.0 ready to start TLS\r\n"
        tls = tls_ctx().wrap_socket(s, server_hostname="mx")
        tf = tls.makefile("rb")
        # the pipelined MAIL was dropped: a new session wants EHLO first
        tls.sendall(b"MAIL FROM:<a@b.example>\r\n")
        assert tf.readline() == b"503 5.5.1 send HELO or EHLO first\r\n"
        tls.sendall(b"EHLO c\r\n")
        lines = []
        while True:
            line = tf.readline()
            lines.append(line)
            if line[3:4] != b"-":
                break
        assert b"250-STARTTLS\r\n" not in lines
        tls.sendall(b"MAIL FROM:<a@b.example>\r\nQUIT\r\n")
        assert tf.readline() == b"250 2.1.0 ok\r\n"
        tls.close()
    finally:
        srv.stop()


def fill_perip(addr, port, held):
    """maxperip 2: two sessions from addr (kept in held), the third
    refused."""
    for _ in range(2):
        s = socket.create_connection((addr, port), 10)
        assert s.makefile("rb").readline().startswith(b"220 ")
        held.append(s)
    s = socket.create_connection((addr, port), 10)
    assert s.makefile("rb").readline() == (
        b"421 4.7.0 too many sessions from your address, try again "
        b"later\r\n")
    s.close()


def test_smtpd_session_limits(t):
    setup(t, ("maxperip", "2\n"))
    srv = Server(t, smtp=1)
    held = []
    time.sleep(1.5)   # let the start-up probe's session end and be reaped
    try:
        fill_perip("127.0.0.1", srv.ports["smtp"], held)
        held.pop().close()
        time.sleep(1.5)     # the parent reaps within a second
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
        held.append(s)
        got = s.makefile("rb").readline()
        assert got.startswith(b"220 "), (got, open(srv.log.name).read())
    finally:
        for s in held:
            s.close()
        srv.stop()


def test_smtpd_maxperip_ipv6(t):
    """maxperip over IPv6 (lib/limit counts an IPv6 client by its /64; the
    grouping itself is unit-tested in test_limit, since only ::1 can be
    bound here)."""
    setup(t, ("maxperip", "2\n"))
    srv = Server(t, smtp=1, addr="::1")
    held = []
    time.sleep(1.5)   # let the start-up probe's session end and be reaped
    try:
        fill_perip("::1", srv.ports["smtp"], held)
    finally:
        for s in held:
            s.close()
        log = srv.stop()
    assert "session ::1 refused: 421 4.7.0 too many sessions from your " \
        "address" in log, log


def pool_pids(srv):
    """The session processes of the listening mta-smtpd."""
    with open(f"/proc/{srv.p.pid}/task/{srv.p.pid}/children") as f:
        return sorted(int(x) for x in f.read().split())


def quick_session(port):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("pool.example")
        c.sendmail("a@b.example", ["bob@" + D], b"Subject: p\r\n\r\nx\r\n")


def test_smtpd_pool_reuses_processes(t):
    """Sessions one after another are served by the processes already
    waiting (no fork per connection), each pid logs many sessions."""
    setup(t)
    srv = Server(t, smtp=1)
    try:
        time.sleep(0.5)
        before = pool_pids(srv)
        assert 1 <= len(before) <= 8, before
        for _ in range(30):
            quick_session(srv.ports["smtp"])
        time.sleep(0.3)
        after = pool_pids(srv)
        assert len(queued(t)) == 30
    finally:
        log = srv.stop()
    pids = re.findall(r"mta-smtpd\[(\d+)\]: session .* queued 1 ", log)
    assert len(pids) == 30, log
    # 30 sessions, a handful of processes: each served several
    assert len(set(pids)) <= 8, sorted(set(pids))
    assert set(int(x) for x in pids) <= set(before) | set(after)


def test_smtpd_pool_maxsessions_and_killed_process(t):
    """maxsessions bounds the processes; with all busy the parent answers
    421; a process killed in a session frees its place."""
    setup(t, ("maxsessions", "2\n"), ("maxperip", "1\n"))
    srv = Server(t, smtp=1)
    held = []
    try:
        time.sleep(0.5)
        assert len(pool_pids(srv)) <= 2
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
        assert s.makefile("rb").readline().startswith(b"220 ")
        held.append(s)
        # maxperip 1: a second one from this address is refused
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
        assert s.makefile("rb").readline().startswith(
            b"421 4.7.0 too many sessions from your address")
        s.close()
        with open(t.path("control", "maxperip"), "w") as f:
            f.write("10\n")
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
        assert s.makefile("rb").readline().startswith(b"220 ")
        held.append(s)
        # both processes busy: the third waits for none, the parent says 421
        time.sleep(1.2)
        s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
        assert s.makefile("rb").readline() == (
            b"421 4.7.0 too many sessions, try again later\r\n")
        s.close()
        # kill both session processes: their places come free
        for pid in pool_pids(srv):
            os.kill(pid, signal.SIGKILL)
        for s in held:
            s.close()
        held = []
        with open(t.path("control", "maxperip"), "w") as f:
            f.write("1\n")
        deadline = time.time() + 10
        while time.time() < deadline:
            s = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), 10)
            got = s.makefile("rb").readline()
            s.close()
            if got.startswith(b"220 "):
                break
            time.sleep(0.2)
        assert got.startswith(b"220 "), got
        quick_session(srv.ports["smtp"])
        assert len(queued(t)) == 1
    finally:
        for s in held:
            s.close()
        srv.stop()


def test_smtpd_pool_leaves_with_parent(t):
    """The waiting processes leave when the parent is stopped; a session
    in progress is finished first."""
    setup(t)
    srv = Server(t, smtp=1)
    time.sleep(0.5)
    kids = pool_pids(srv)
    c = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
    c.ehlo("pool.example")
    srv.stop()
    c.sendmail("a@b.example", ["bob@" + D], b"Subject: p\r\n\r\nx\r\n")
    c.quit()
    assert len(queued(t)) == 1
    deadline = time.time() + 10
    alive = kids
    while alive and time.time() < deadline:
        alive = [k for k in kids if os.path.exists(f"/proc/{k}")
                 and open(f"/proc/{k}/stat").read().split()[2] != "Z"]
        time.sleep(0.1)
    assert not alive, alive


def test_smtpd_usage(t):
    t.init()
    assert t.run("mta-smtpd", "--help", check=0).out.startswith("usage:")
    p = t.run("mta-smtpd", "--bogus", check=2)
    assert p.err.startswith("mta-smtpd: ")
    with open(t.path("control", "listen.smtp"), "w") as f:
        f.write("nonsense\n")
    p = t.run("mta-smtpd", check=111)
    assert "bad listen address 'nonsense'" in p.err


def test_smtpd_too_many_recipients(t):
    setup(t)
    data = b"HELO c\r\nMAIL FROM:<a@b.example>\r\n"
    data += b"RCPT TO:<bob@example.test>\r\n" * 1001
    lines, _ = inetd(t, data + b"DATA\r\nx\r\n.\r\nQUIT\r\n")
    assert codes(lines).count("250") == 1 + 1 + 1000 + 1, codes(lines)[-5:]
    assert "452 4.5.3 too many recipients" in lines
    recs, _ = read_queue_file(queued(t)[0])
    assert [k for k, _ in recs].count("R") == 1000


def test_smtpd_ipv6_listener_and_swaks_auth_failure(t):
    setup(t)
    srv = Server(t, smtp=1, addr="::1")
    try:
        with smtplib.SMTP("::1", srv.ports["smtp"]) as c:
            # ::1 relays by the default rules, so AUTH is offered in
            # plaintext on port 25, and a relay client may send anywhere
            c.ehlo("six.example")
            assert c.has_extn("auth")
            c.sendmail("a@b.example", ["x@elsewhere.org"], b"six\r\n")
        p = subprocess.run(["swaks", "--server", f"::1:{srv.ports['smtp']}",
                            "--tls", "--auth", "LOGIN", "--auth-user",
                            "bob@example.test", "--auth-password", "nope",
                            "--from", "bob@example.test", "--to",
                            "bob@example.test"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert "535 5.7.8 authentication failed" in p.stdout
    finally:
        log = srv.stop()
    assert len(queued(t)) == 1
    assert dict(read_queue_file(queued(t)[0])[0])["C"] == b"::1"
    assert "session ::1 helo six.example auth - tls no: queued 1 " in log
    assert "535 5.7.8 authentication failed for bob@example.test" in log


def two_address_server(t):
    """mta-smtpd on port 25's listener only, at 127.0.0.1 and ::1 on one
    free port: two client addresses for lib/limit's per-address counts"""
    port = free_port()
    with open(t.path("control", "listen.smtp"), "w") as f:
        f.write(f"127.0.0.1:{port}\n[::1]:{port}\n")
    for name in ("listen.submission", "listen.smtps"):
        open(t.path("control", name), "w").close()
    srv = Server(t, smtp="keep")
    for addr in ("127.0.0.1", "::1"):
        for _ in range(200):
            try:
                socket.create_connection((addr, port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
    return srv, port


@alone
def test_smtpd_auth_failures_slow_one_address(t):
    import threading
    setup(t)
    srv, port = two_address_server(t)

    def attempt(addr, pw, out=None):
        with smtplib.SMTP(addr, port, timeout=60) as c:
            c.ehlo("c")
            start = time.time()
            code, _ = c.docmd("AUTH", "PLAIN " +
                              auth_plain("bob@example.test", pw))
            took = time.time() - start
        if out is not None:
            out.append(code)
        return code, took

    try:
        got = []
        threads = [threading.Thread(target=attempt,
                                    args=("127.0.0.1", "bad", got))
                   for _ in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert got == [535] * 10, got
        # another address is not slowed; this one now is, even to succeed
        code, took = attempt("::1", "secret")
        assert code == 235 and took < 0.9, (code, took)
        code, took = attempt("127.0.0.1", "secret")
        assert code == 235 and took >= 1.0, (code, took)
        code, took = attempt("127.0.0.1", "bad")
        assert code == 535 and took >= 2.0, (code, took)
    finally:
        log = srv.stop()
    assert log.count("535 5.7.8 authentication failed for bob@") == 11


def test_smtpd_utf8_domains_as_a_labels(t):
    """SMTPUTF8 is offered, so a U-label domain is taken (RFC 6531) and
    kept as its A-label (lib/idna): a hosted IDN domain is found however
    it is spelled, and the queue holds a name DNS can ask; a domain that
    is not well-formed UTF-8 is a syntax error; mta-inject does the same
    (queue_qualify)"""
    setup(t)
    ace = "xn--bcher-kva.example"
    t.run("vadmin", "adddomain", ace, input="pw\n", check=0)
    t.run("vadmin", "adduser", "bob@" + ace, "secret", check=0)
    utf = "bücher.example".encode()
    lines, _ = inetd(t, b"EHLO c\r\nMAIL FROM:<a@m\xc3\xbcller.example> "
                     b"SMTPUTF8\r\nRCPT TO:<bob@" + utf + b">\r\n"
                     b"RCPT TO:<x@b\xfcd.example>\r\nDATA\r\n"
                     b"Subject: u\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    assert codes(lines)[2:] == ["250", "250", "501", "354", "250", "221"], \
        lines
    env = dict(read_queue_file(queued(t)[0])[0])
    assert env["F"] == b"a@xn--mller-kva.example", env
    assert env["R"] == ("bob@" + ace).encode(), env
    p = t.run("mta-inject", "-f", "a@m\u00fcller.example",
              "bob@b\u00fccher.example", input="Subject: i\n\nx\n")
    assert p.returncode == 0, p.err
    assert len(queued(t)) == 2


def test_smtpd_8bit_addresses_need_smtputf8(t):
    """RFC 6531 3.4: an address with a byte over 0x7f is refused with
    553 5.6.7 unless MAIL declared SMTPUTF8 (as Postfix does), and its
    local part must be well-formed UTF-8 (501); a sender without a
    domain is completed with control/me, as mta-inject and sendmail do
    (queue_qualify), never queued without one"""
    setup(t)
    uloc = "j\u00fcrgen".encode()
    lines, _ = inetd(t, b"EHLO c\r\nMAIL FROM:<" + uloc + b"@x.example>\r\n"
                     b"MAIL FROM:<a@m\xc3\xbcller.example>\r\n"
                     b"MAIL FROM:<a@x.example>\r\n"
                     b"RCPT TO:<" + uloc + b"@example.test>\r\n"
                     b"RSET\r\nMAIL FROM:<\xff\xfe@x.example> SMTPUTF8\r\n"
                     b"MAIL FROM:<" + uloc + b"@x.example> SMTPUTF8\r\n"
                     b"RCPT TO:<" + uloc + b"@example.test>\r\nQUIT\r\n")
    assert codes(lines)[2:] == ["553", "553", "250", "553", "250", "501",
                                "250", "550", "221"], lines
    assert "553 5.6.7 an address with UTF-8 needs SMTPUTF8 on MAIL" in lines
    assert not queued(t)
    lines, _ = inetd(t, b"EHLO c\r\nMAIL FROM:<root>\r\n"
                     b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
                     b"Subject: u\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    assert codes(lines)[2:] == ["250", "250", "354", "250", "221"], lines
    env = dict(read_queue_file(queued(t)[0])[0])
    assert env["F"] == b"root@mx.example.test", env


@alone
def test_smtpd_auth_cut_off_at_smtpmaxfail(t):
    """An address with control/smtpmaxfail failed logins (2 here) gets
    454 4.7.0 at AUTH, the right password included, nothing checked, as
    pop3d refuses one at pop3maxfail; another address logs in, and the
    cut-off one's mail for a hosted user is still taken"""
    setup(t)
    with open(t.path("control", "smtpmaxfail"), "w") as f:
        f.write("2\n")
    srv, port = two_address_server(t)

    def auth(addr, pw):
        with smtplib.SMTP(addr, port, timeout=60) as c:
            c.ehlo("c")
            code, _ = c.docmd("AUTH", "PLAIN " +
                              auth_plain("bob@example.test", pw))
            if code == 454:
                c.mail("a@remote.example")
                assert c.rcpt("bob@example.test")[0] == 250
                assert c.data(b"Subject: x\r\n\r\nstill taken\r\n"
                              )[0] == 250
        return code

    try:
        got = [auth("127.0.0.1", "bad") for _ in range(2)]
        got += [auth("127.0.0.1", "secret"), auth("::1", "secret")]
    finally:
        log = srv.stop()
    assert got == [535, 535, 454, 235], got
    assert log.count("535 5.7.8 authentication failed for bob@") == 2
    assert "454 4.7.0 too many failed logins" in log, log


def test_smtpd_rules_deny_and_relayclient(t):
    setup(t)
    with open(t.path("control", "relayrules"), "w") as f:
        f.write('192.0.2.66:deny\n10.9.:allow,RELAYCLIENT=""\n:allow\n')
    t.run("mta-rules", check=0)
    lines, err = inetd(t, b"HELO c\r\nQUIT\r\n", ip="192.0.2.66")
    assert lines == ["554 5.7.1 your address is not allowed to connect"]
    assert "end denied by relayrules" in err
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "10.9.8.7")) == ["250"]
    # 127.0.0.1 no longer relays under these rules
    assert codes(rcpt_replies(t, ["x@elsewhere.org"], "127.0.0.1")) == [
        "553"]


def test_smtpd_inetd_on_a_pipe_is_local(t):
    setup(t)
    p = t.run("mta-smtpd", "--inetd", check=0,
              input=b"HELO c\r\nMAIL FROM:<a@b.example>\r\n"
                    b"RCPT TO:<x@elsewhere.org>\r\nQUIT\r\n")
    assert p.out.split("\r\n")[3] == "250 2.1.5 ok", p.out
    assert "session 127.0.0.1 helo c" in p.err


def test_smtpd_full_disk_queues_nothing(t):
    import pwd
    setup(t)
    q = t.path("queue")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700",
                       "tmpfs", q], capture_output=True).returncode != 0:
        print("SKIP test_smtpd_full_disk_queues_nothing: cannot mount a "
              "tmpfs (needs root)", flush=True)
        return
    try:
        user = open(t.path("control", "mailuser")).read().strip()
        pw = pwd.getpwnam(user)
        os.chown(q, pw.pw_uid, pw.pw_gid)
        for d in ("tmp", "new"):
            os.mkdir(os.path.join(q, d), 0o700)
            os.chown(os.path.join(q, d), pw.pw_uid, pw.pw_gid)
        head = (b"HELO c\r\nMAIL FROM:<a@b.example>\r\n"
                b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        big = (b"x" * 900 + b"\r\n") * 200       # 180 KB > 64 KB
        lines, _ = inetd(t, head + big + b".\r\n" + head[8:] +
                         b"small\r\n.\r\nQUIT\r\n")
        assert "451 4.3.0 cannot write the queue file" in lines, lines
        assert codes(lines)[-3:] == ["354", "250", "221"], lines
        assert os.listdir(os.path.join(q, "tmp")) == []
        files = queued(t)
        assert len(files) == 1
        assert read_queue_file(files[0])[1].endswith(b"\nsmall\n")
    finally:
        subprocess.run(["umount", q], check=True)
