"""test_remote - mta-remote against real peers on loopback.

Peers are scripted SMTP servers (helpers.MX) on 127.0.0.2 ...
127.0.0.9, all on one free high port written into control/remoteport, and
dnsmasq on 127.0.0.1 (a free high port, written into control/resolvers)
serving the MX and address records; dnsmasq serves the null MX (`0 .`) as a
raw record with --dns-rr. Every server and dnsmasq is stopped by its own
handle at the end of the test. Slow peers run with timeoutremote 2.
"""
import os
import socket
import ssl
import struct
import subprocess
import time

from helpers import MX, close_all, free_dns_port, free_port, peers

BODY = (b"From: a@example.org\nSubject: test\n\n.leading dot\n..two dots\n"
        b"\xc3\xa9t\xc3\xa9 8-bit\n.\nlast line")
# what the server must receive between DATA and the end of data
WIRE = (b"From: a@example.org\r\nSubject: test\r\n\r\n..leading dot\r\n"
        b"...two dots\r\n\xc3\xa9t\xc3\xa9 8-bit\r\n..\r\nlast line\r\n")


class Dns:
    """dnsmasq on 127.0.0.1:port answering only from its arguments."""

    def __init__(self, t, *records):
        self.port = free_dns_port("127.0.0.1")
        self.p = subprocess.Popen(
            ["/usr/sbin/dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
             f"--port={self.port}", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--pid-file=", "--local=/test/",
             "--cache-size=0"] + list(records),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(t.path("control", "resolvers"), "w") as f:
            f.write(f"127.0.0.1:{self.port}\n")
        self.wait()

    def wait(self):
        q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + \
            b"\x04ping\x04test\x00\x00\x01\x00\x01"
        for _ in range(50):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.1)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                s.recv(512)
                return
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise AssertionError("dnsmasq did not answer")

    def close(self):
        self.p.terminate()
        self.p.wait(5)


def setup(t, timeout=10, **controls):
    t.init()
    port = free_port("127.0.0.2")
    ctl = {"me": "relay.facteur.test", "remoteport": str(port),
           "timeoutremote": str(timeout), "timeoutconnect": "2"}
    ctl.update(controls)
    for k, v in ctl.items():
        with open(t.path("control", k), "w") as f:
            f.write(v + "\n")
    return port


def remote(t, domain, sender, *rcpts, body=BODY, timeout=60):
    """Run mta-remote: (list of (kind, text) per line, stderr, seconds)."""
    t0 = time.monotonic()
    p = t.run("mta-remote", domain, sender, *rcpts, input=body,
              timeout=timeout)
    dt = time.monotonic() - t0
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert "Sanitizer" not in p.err and "runtime error" not in p.err, p.err
    lines = p.out.split("\n")
    assert lines[-1] == "", p.out
    res = [(l[0], l[2:]) for l in lines[:-1]]
    assert len(res) == len(rcpts), p.out
    for k, text in res:
        assert k in "DFT" and len(text) <= 500, p.out
        assert all(32 <= ord(ch) < 127 for ch in text), p.out
    return res, p.err, dt


def test_remote_mx_preference_and_content(t):
    port = setup(t)
    # mx1 (preference 10) refuses connections: nobody listens there
    dns = Dns(t, "--mx-host=pref.test,mx2.pref.test,20",
              "--mx-host=pref.test,mx1.pref.test,10",
              "--host-record=mx1.pref.test,127.0.0.2",
              "--host-record=mx2.pref.test,127.0.0.3")
    (p3,) = peers(port, ("127.0.0.3", {"ext": ["SIZE 1000000", "8BITMIME"]}))
    try:
        res, err, _ = remote(t, "pref.test", "alice@example.org",
                             "bob@pref.test")
        assert res[0][0] == "D", res
        assert res[0][1].startswith("127.0.0.3 accepted message: 250"), res
        assert "127.0.0.2" in err, err      # the refused connect is logged
        s = p3.sessions[0]
        assert s["data"] == WIRE, s["data"]
        assert s["cmds"][0] == "EHLO relay.facteur.test", s["cmds"]
        assert f"MAIL FROM:<alice@example.org> SIZE={len(BODY)}" in s["cmds"]
        assert "RCPT TO:<bob@pref.test>" in s["cmds"]
        assert s["cmds"][-1] == "QUIT"
    finally:
        close_all(p3, dns)


def test_remote_queue_file_at_offset(t):
    """stdin as mta-send gives it: a regular file positioned after the
    envelope; SIZE counts from there."""
    port = setup(t)
    (p,) = peers(port, ("127.0.0.2", {"ext": ["SIZE"]}))
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write("off.test:[127.0.0.2]\n")
    path = os.path.join(t.tmp, "qfile")
    with open(path, "wb") as f:
        f.write(b"ENVELOPE-GARBAGE\n" + BODY)
    try:
        with open(path, "rb") as f:
            f.seek(len(b"ENVELOPE-GARBAGE\n"))
            r = subprocess.run([t.bin("mta-remote"), "--root", t.root,
                                "off.test", "", "x@off.test"], stdin=f,
                               capture_output=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith(b"D 127.0.0.2"), r
        s = p.sessions[0]
        assert f"MAIL FROM:<> SIZE={len(BODY)}" in s["cmds"], s["cmds"]
        assert s["data"] == WIRE
    finally:
        close_all(p)


def test_remote_never_sends_a_bare_cr(t):
    """A CR in a stored message (the queue keeps LF line ends, so it is a
    bare one: no entry lets it in now, an older queue file may hold it)
    never reaches the wire, where "\\r.\\r" ends DATA early at a lax next
    hop (SMTP smuggling, RFC 5321 2.3.8): it goes as a space, as the
    entries store it, so a dot after it starts no line."""
    port = setup(t)
    (p,) = peers(port, ("127.0.0.2", {}))
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write("cr.test:[127.0.0.2]\n")
    body = (b"Subject: s\n\nhi\r.\rMAIL FROM:<ceo@cr.test>\r\n"
            b"\r.\nend\r")
    try:
        res, err, _ = remote(t, "cr.test", "a@b.test", "x@cr.test",
                             body=body)
        assert res[0][0] == "D", (res, err)
        got = p.sessions[0]["data"]
        assert b"\r" not in got.replace(b"\r\n", b""), got
        assert got == (b"Subject: s\r\n\r\nhi . MAIL FROM:<ceo@cr.test> "
                       b"\r\n .\r\nend \r\n"), got
    finally:
        close_all(p)


def test_remote_equal_preference_shuffled(t):
    port = setup(t)
    dns = Dns(t, "--mx-host=eq.test,a.eq.test,10",
              "--mx-host=eq.test,b.eq.test,10",
              "--host-record=a.eq.test,127.0.0.4",
              "--host-record=b.eq.test,127.0.0.5")
    p4, p5 = peers(port, ("127.0.0.4", {}), ("127.0.0.5", {}))
    try:
        for _ in range(20):
            res, _, _ = remote(t, "eq.test", "a@example.org", "x@eq.test",
                               body=b"hi\n")
            assert res[0][0] == "D", res
        assert len(p4.sessions) + len(p5.sessions) == 20
        assert p4.sessions and p5.sessions, (len(p4.sessions),
                                             len(p5.sessions))
    finally:
        close_all(p4, p5, dns)


def test_remote_no_mx_uses_address_record(t):
    port = setup(t)
    dns = Dns(t, "--host-record=plain.test,127.0.0.6")
    (p,) = peers(port, ("127.0.0.6", {}))
    try:
        res, _, _ = remote(t, "plain.test", "a@example.org", "x@plain.test")
        assert res[0][0] == "D" and res[0][1].startswith("127.0.0.6 "), res
    finally:
        close_all(p, dns)


def test_remote_dns_failures(t):
    setup(t)
    dns = Dns(t, "--dns-rr=null.test,15,000000",
              "--host-record=null.test,127.0.0.2")
    (p,) = peers(int(open(t.path("control", "remoteport")).read()),
                 ("127.0.0.2", {}))
    try:
        res, _, _ = remote(t, "nx.test", "a@example.org", "x@nx.test",
                           "y@nx.test")
        assert [k for k, _ in res] == ["F", "F"], res
        assert "couldn't find any host named nx.test" in res[0][1], res
        res, _, dt = remote(t, "null.test", "a@example.org", "x@null.test")
        assert res[0][0] == "F" and "556 5.1.10" in res[0][1], res
        assert "null MX" in res[0][1]
        assert p.sessions == [] and dt < 5
        # a zone dnsmasq does not serve: REFUSED, a temporary failure
        res, _, _ = remote(t, "example.org", "a@example.org",
                           "x@example.org")
        assert res[0][0] == "T" and "DNS" in res[0][1], res
    finally:
        close_all(p, dns)
    # no DNS server at all: temporary
    with open(t.path("control", "resolvers"), "w") as f:
        f.write(f"127.0.0.1:{free_port('127.0.0.1', socket.SOCK_DGRAM)}\n")
    res, _, _ = remote(t, "any.test", "a@example.org", "x@any.test")
    assert res[0][0] == "T", res


def test_remote_mx_is_this_host(t):
    port = setup(t)
    dns = Dns(t, "--mx-host=loop.test,relay.facteur.test,10",
              "--host-record=relay.facteur.test,127.0.0.7",
              "--mx-host=backup.test,primary.backup.test,10",
              "--mx-host=backup.test,relay.facteur.test,20",
              "--host-record=primary.backup.test,127.0.0.8",
              "--mx-host=local.test,lo.local.test,10",
              "--host-record=lo.local.test,127.0.0.1")
    p7, p8 = peers(port, ("127.0.0.7", {}), ("127.0.0.8", {}))
    try:
        res, _, _ = remote(t, "loop.test", "a@example.org", "x@loop.test")
        assert res[0][0] == "F" and "loop: MX is this host" in res[0][1]
        assert "5.4.6" in res[0][1] and p7.sessions == []
        # an MX on one of our own addresses is a loop as well, once our
        # own mta-smtpd listens on the port mail would go to
        with open(t.path("control", "listen.smtp"), "w") as f:
            f.write(f"127.0.0.1:{port}\n")
        res, _, _ = remote(t, "local.test", "a@example.org", "x@local.test")
        assert res[0][0] == "F" and "loop" in res[0][1], res
        os.unlink(t.path("control", "listen.smtp"))
        # we are the backup MX: the better one gets the mail
        res, _, _ = remote(t, "backup.test", "a@example.org",
                           "x@backup.test")
        assert res[0][0] == "D" and res[0][1].startswith("127.0.0.8"), res
        # smtproutes may point at this host on purpose
        with open(t.path("control", "smtproutes"), "w") as f:
            f.write("loop.test:relay.facteur.test\n")
        res, _, _ = remote(t, "loop.test", "a@example.org", "x@loop.test")
        assert res[0][0] == "D" and res[0][1].startswith("127.0.0.7"), res
    finally:
        close_all(p7, p8, dns)


def test_remote_smtproutes(t):
    port = setup(t)
    p2, p3, p4 = peers(port, ("127.0.0.2", {}), ("127.0.0.3", {}),
                       ("127.0.0.4", {}))
    p5 = MX("127.0.0.5")      # a port of its own: the route names it
    port2 = p5.port
    # no resolver answers: smtproutes with addresses needs no DNS
    with open(t.path("control", "resolvers"), "w") as f:
        f.write(f"127.0.0.1:{free_port('127.0.0.1', socket.SOCK_DGRAM)}\n")
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write(f"# comment\n.sub.test:127.0.0.4\nExact.Test:[127.0.0.2]\n"
                f".deep.sub.test:[127.0.0.3]\n:[127.0.0.5]:{port2}\n")
    try:
        want = {"exact.test": p2, "x.deep.sub.test": p3, "a.sub.test": p4,
                "sub.test": p5, "other.example": p5, "EXACT.test": p2}
        for dom, peer in want.items():
            n = len(peer.sessions)
            res, _, _ = remote(t, dom, "a@example.org", "u@" + dom)
            assert res[0][0] == "D", (dom, res)
            assert res[0][1].startswith(peer.ip + " "), (dom, res)
            assert len(peer.sessions) == n + 1, dom
        with open(t.path("control", "smtproutes"), "w") as f:
            f.write("bad.test:[127.0.0.2]:99999\n")
        res, _, _ = remote(t, "exact.test", "a@example.org", "u@exact.test")
        assert res[0][0] == "T" and "smtproutes line 1" in res[0][1], res
    finally:
        close_all(p2, p3, p4, p5)


def test_remote_mixed_results_one_transaction(t):
    port = setup(t, smtproutes="mix.test:[127.0.0.2]")
    (p,) = peers(port, ("127.0.0.2", {"rcpt": {
        "bad": "550 5.1.1 no such user", "later": "451 4.3.0 try later"}}))
    try:
        res, _, _ = remote(t, "mix.test", "a@example.org", "ok1@mix.test",
                           "bad@mix.test", "later@mix.test", "ok2@mix.test")
        assert [k for k, _ in res] == ["D", "F", "T", "D"], res
        assert res[1][1] == ("127.0.0.2 does not like recipient: "
                             "550 5.1.1 no such user"), res
        assert "451 4.3.0 try later" in res[2][1]
        assert res[0][1] == ("127.0.0.2 accepted message: "
                             "250 2.0.0 Ok queued as X1"), res
        assert len(p.sessions) == 1
        assert sum(c.startswith("MAIL") for c in p.sessions[0]["cmds"]) == 1
        # nobody accepted: no DATA at all
        res, _, _ = remote(t, "mix.test", "a@example.org", "bad@mix.test",
                           "later@mix.test")
        assert [k for k, _ in res] == ["F", "T"], res
        assert "DATA" not in p.sessions[1]["cmds"], p.sessions[1]["cmds"]
    finally:
        close_all(p)


def test_remote_sender_refused_and_null_sender(t):
    port = setup(t, smtproutes="s.test:[127.0.0.2]")
    (p,) = peers(port, ("127.0.0.2", {"mail": {
        "spam@example.org": "553 5.7.1 go away",
        "slow@example.org": "452 4.3.1 full"}}))
    try:
        res, _, _ = remote(t, "s.test", "spam@example.org", "a@s.test",
                           "b@s.test")
        assert [k for k, _ in res] == ["F", "F"], res
        assert "does not like sender: 553 5.7.1 go away" in res[0][1], res
        res, _, _ = remote(t, "s.test", "slow@example.org", "a@s.test")
        assert res[0][0] == "T" and "452" in res[0][1], res
        res, _, _ = remote(t, "s.test", "", "a@s.test")
        assert res[0][0] == "D", res
        assert "MAIL FROM:<>" in p.sessions[-1]["cmds"], p.sessions[-1]
    finally:
        close_all(p)


def test_remote_pipelined_sender_refused(t):
    port = setup(t, smtproutes="p.test:[127.0.0.2]\nh.test:[127.0.0.3]")
    refuse = {"spam@example.org": "553 5.7.1 go away"}
    p2, p3 = peers(port, ("127.0.0.2", {"ext": ["PIPELINING"],
                                        "mail": refuse}),
                   ("127.0.0.3", {"ext": ["PIPELINING"], "mail": refuse,
                                  "mode": "mailhangup"}))
    try:
        for dom, peer in (("p.test", p2), ("h.test", p3)):
            res, _, _ = remote(t, dom, "spam@example.org", "a@" + dom,
                               "b@" + dom)
            assert [k for k, _ in res] == ["F", "F"], (dom, res)
            assert "does not like sender: 553 5.7.1 go away" in res[1][1]
        assert ["MAIL", "RCPT", "RCPT", "DATA"] in p2.sessions[0]["batches"]
    finally:
        close_all(p2, p3)


def test_remote_pipelining(t):
    port = setup(t, smtproutes=".p.test:[127.0.0.2]\n.n.test:[127.0.0.3]")
    p2, p3 = peers(port, ("127.0.0.2", {"ext": ["PIPELINING", "SIZE"],
                                        "rcpt": {"bad": "550 5.1.1 no"}}),
                   ("127.0.0.3", {"ext": ["SIZE"]}))
    try:
        res, _, _ = remote(t, "a.p.test", "a@example.org", "x@a.p.test",
                           "bad@a.p.test", "y@a.p.test")
        assert [k for k, _ in res] == ["D", "F", "D"], res
        b = p2.sessions[0]["batches"]
        assert ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"] in b, b
        assert p2.sessions[0]["data"] == WIRE
        # without PIPELINING each command waits for its reply
        res, _, _ = remote(t, "a.n.test", "a@example.org", "x@a.n.test",
                           "y@a.n.test")
        assert [k for k, _ in res] == ["D", "D"], res
        b = p3.sessions[0]["batches"]
        assert all(len(x) == 1 for x in b), b
    finally:
        close_all(p2, p3)


def tls_context(t):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(t.path("control", "tls", "cert.pem"),
                        t.path("control", "tls", "key.pem"))
    return ctx


def test_remote_starttls(t):
    port = setup(t, smtproutes="tls.test:[127.0.0.2]\nbad.test:[127.0.0.3]")
    ctx = tls_context(t)
    p2, p3 = peers(port, ("127.0.0.2", {"tls": ctx, "ext": ["PIPELINING"]}),
                   ("127.0.0.3", {"tls": ctx, "mode": "badtls"}))
    try:
        res, _, _ = remote(t, "tls.test", "a@example.org", "x@tls.test")
        assert res[0][0] == "D", res
        s = p2.sessions[0]
        assert s["tls"] and s["cmds"].count("EHLO relay.facteur.test") == 2
        assert s["cmds"][1] == "STARTTLS", s["cmds"]
        assert s["data"] == WIRE
        # a failed handshake: once more, in plaintext, which delivers
        res, err, _ = remote(t, "bad.test", "a@example.org", "x@bad.test")
        assert res[0][0] == "D", res
        assert "without TLS" in err, err
        assert len(p3.sessions) == 2, p3.sessions
        assert "STARTTLS" not in p3.sessions[1]["cmds"]
        assert not p3.sessions[1]["tls"] and p3.sessions[1]["data"] == WIRE
    finally:
        close_all(p2, p3)


def test_remote_hostile_and_broken_servers(t):
    port = setup(t, timeout=2, smtproutes=(
        "silent.test:[127.0.0.2]\ntrickle.test:[127.0.0.3]\n"
        "big.test:[127.0.0.4]\nclose.test:[127.0.0.5]\n"
        "drop.test:[127.0.0.6]\nnone.test:[127.0.0.9]"))
    ps = peers(port, ("127.0.0.2", {"mode": "silent"}),
               ("127.0.0.3", {"mode": "trickle"}),
               ("127.0.0.4", {"mode": "bigline"}),
               ("127.0.0.5", {"mode": "closedata"}),
               ("127.0.0.6", {"mode": "drop"}))
    try:
        for dom, limit, word in (("silent.test", 6, "timed out"),
                                 ("trickle.test", 6, "timed out"),
                                 ("big.test", 6, "too long"),
                                 ("close.test", 6, "died"),
                                 ("drop.test", 6, "greeting"),
                                 ("none.test", 6, "refused")):
            res, _, dt = remote(t, dom, "a@example.org", "x@" + dom,
                                "y@" + dom)
            assert [k for k, _ in res] == ["T", "T"], (dom, res)
            assert word in res[0][1], (dom, res)
            assert dt < limit, (dom, dt)
        assert ps[3].sessions[0]["data"] == WIRE
    finally:
        close_all(*ps)


def test_remote_421_greeting_moves_on(t):
    port = setup(t)
    dns = Dns(t, "--mx-host=g.test,a.g.test,10",
              "--mx-host=g.test,b.g.test,20",
              "--host-record=a.g.test,127.0.0.2",
              "--host-record=b.g.test,127.0.0.3")
    p2, p3 = peers(port, ("127.0.0.2", {"mode": "greet421"}),
                   ("127.0.0.3", {}))
    try:
        res, err, _ = remote(t, "g.test", "a@example.org", "x@g.test")
        assert res[0][0] == "D" and res[0][1].startswith("127.0.0.3"), res
        assert "421 4.3.2 busy" in err, err
        assert len(p2.sessions) == 1
    finally:
        close_all(p2, p3, dns)


def test_remote_usage(t):
    t.init()
    p = t.run("mta-remote", "only.test", check=2)
    assert "usage" in p.err
    p = t.run("mta-remote", "--help", check=0)
    assert "usage: mta-remote" in p.out + p.err


def test_remote_data_and_final_replies(t):
    port = setup(t, smtproutes=("d5.test:[127.0.0.2]\nd4.test:[127.0.0.3]\n"
                                "f5.test:[127.0.0.4]\nf4.test:[127.0.0.5]"))
    ps = peers(port,
               ("127.0.0.2", {"data": "554 5.3.0 no data today"}),
               ("127.0.0.3", {"data": "451 4.3.0 not now",
                              "ext": ["PIPELINING"]}),
               ("127.0.0.4", {"final": "554 5.7.1 spam"}),
               ("127.0.0.5", {"final": "452 4.3.1 disk full",
                              "ext": ["PIPELINING"]}))
    try:
        for dom, kinds, text in (
                ("d5.test", "FF", "failed on DATA command: 554 5.3.0"),
                ("d4.test", "TT", "failed on DATA command: 451 4.3.0"),
                ("f5.test", "FF", "failed after I sent the message: 554"),
                ("f4.test", "TT", "failed after I sent the message: 452")):
            res, _, _ = remote(t, dom, "a@example.org", "x@" + dom,
                               "bad@" + dom)
            assert "".join(k for k, _ in res) == kinds, (dom, res)
            assert text in res[0][1], (dom, res)
        # a recipient refused at RCPT keeps its own reason
        ps[2].rcpt = {"bad": "550 5.1.1 unknown"}
        res, _, _ = remote(t, "f5.test", "a@example.org", "x@f5.test",
                           "bad@f5.test")
        assert "550 5.1.1 unknown" in res[1][1], res
        assert "554 5.7.1 spam" in res[0][1], res
    finally:
        close_all(*ps)


def test_remote_helo_fallback(t):
    port = setup(t, smtproutes="h.test:[127.0.0.2]")
    (p,) = peers(port, ("127.0.0.2", {"mode": "noehlo",
                                      "ext": ["SIZE", "PIPELINING"]}))
    try:
        res, _, _ = remote(t, "h.test", "a@example.org", "x@h.test")
        assert res[0][0] == "D", res
        cmds = p.sessions[0]["cmds"]
        assert cmds[:2] == ["EHLO relay.facteur.test",
                            "HELO relay.facteur.test"], cmds
        # HELO announces nothing: no SIZE, one command at a time
        assert "MAIL FROM:<a@example.org>" in cmds, cmds
        assert all(len(b) == 1 for b in p.sessions[0]["batches"])
    finally:
        close_all(p)


def test_remote_8bit_address_needs_smtputf8(t):
    """RFC 6531 3.4: a message with a UTF-8 address is never sent to a
    server that does not offer SMTPUTF8: an 8-bit sender fails the
    message with 5.6.7 (Postfix bounces it too) and no MAIL is sent, an
    8-bit recipient fails alone; a server that offers it gets MAIL with
    the SMTPUTF8 parameter"""
    port = setup(t, smtproutes="h.test:[127.0.0.2]\nu.test:[127.0.0.3]")
    p, q = peers(port, ("127.0.0.2", {"ext": ["8BITMIME"]}),
                 ("127.0.0.3", {"ext": ["8BITMIME", "SMTPUTF8"]}))
    try:
        res, _, _ = remote(t, "h.test", "j\u00fcrgen@example.org",
                           "x@h.test")
        assert res[0][0] == "F" and "5.6.7" in res[0][1], res
        assert not any(c.startswith("MAIL") for c in p.sessions[0]["cmds"])
        # an 8-bit recipient fails alone; the others are sent
        res, _, _ = remote(t, "h.test", "a@example.org",
                           "j\u00fcrgen@h.test", "bob@h.test")
        assert res[0][0] == "F" and "5.6.7" in res[0][1], res
        assert res[1][0] == "D", res
        cmds = p.sessions[1]["cmds"]
        assert "RCPT TO:<bob@h.test>" in cmds, cmds
        assert not any("rgen" in c for c in cmds), cmds
        res, _, _ = remote(t, "u.test", "j\u00fcrgen@example.org",
                           "x@u.test")
        assert res[0][0] == "D", res
        mail = [c for c in q.sessions[0]["cmds"] if c.startswith("MAIL")]
        assert mail and mail[0].endswith(" SMTPUTF8"), mail
    finally:
        close_all(p, q)


def test_remote_write_deadline_and_long_reply(t):
    """A server that stops reading in DATA: the write deadline ends it.
    A reply of 151 lines is a protocol error."""
    port = setup(t, timeout=2, smtproutes="nr.test:[127.0.0.2]\n"
                 "many.test:[127.0.0.3]")
    ps = peers(port, ("127.0.0.2", {"mode": "noread"}),
               ("127.0.0.3", {"mode": "manylines"}))
    try:
        big = (b"x" * 999 + b"\n") * 20000     # 20 MB: fills any buffer
        res, _, dt = remote(t, "nr.test", "a@example.org", "x@nr.test",
                            body=big)
        assert res[0][0] == "T" and "timed out" in res[0][1], res
        assert "while sending the message" in res[0][1], res
        assert dt < 8, dt
        res, _, dt = remote(t, "many.test", "a@example.org", "x@many.test")
        assert res[0][0] == "T" and "malformed reply" in res[0][1], res
        assert dt < 4, dt
    finally:
        close_all(*ps)


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def test_remote_ipv6_resolver_and_host(t):
    """An IPv6 resolver with its port in control/resolvers, an AAAA-only
    smarthost, an [IPv6] route. Without ::1 on this machine: nothing to
    test."""
    if not have_ipv6():
        print("SKIP: no ::1 here, IPv6 not tested")
        return
    port = setup(t)
    dport = free_dns_port("::1")
    dns = subprocess.Popen(
        ["/usr/sbin/dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
         f"--port={dport}", "--listen-address=::1", "--bind-interfaces",
         "--pid-file=", "--local=/test/", "--cache-size=0",
         "--host-record=six.v6.test,::1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(t.path("control", "resolvers"), "w") as f:
        f.write(f"[::1]:{dport}\n")
    with open(t.path("control", "smtproutes"), "w") as f:
        f.write("name.test:six.v6.test\nlit.test:[::1]\n")
    p = MX("::1", port)
    try:
        time.sleep(0.3)
        for dom in ("name.test", "lit.test"):
            res, _, _ = remote(t, dom, "a@example.org", "x@" + dom)
            assert res[0] == ("D", "::1 accepted message: 250 2.0.0 Ok "
                              "queued as X1"), (dom, res)
        assert len(p.sessions) == 2
    finally:
        p.close()
        dns.terminate()
        dns.wait(5)


def test_remote_address_literal_domain(t):
    port = setup(t)
    (p,) = peers(port, ("127.0.0.2", {}))
    try:
        res, _, _ = remote(t, "[127.0.0.2]", "a@example.org",
                           "x@[127.0.0.2]")
        assert res[0][0] == "D" and res[0][1].startswith("127.0.0.2 "), res
        assert "RCPT TO:<x@[127.0.0.2]>" in p.sessions[0]["cmds"]
        # with our own mta-smtpd on that port, a loopback literal is us
        with open(t.path("control", "listen.smtp"), "w") as f:
            f.write(f"127.0.0.1:{port}\n")
        res, _, _ = remote(t, "[127.0.0.1]", "a@example.org",
                           "x@[127.0.0.1]")
        assert res[0][0] == "F" and "loop" in res[0][1], res
        res, _, _ = remote(t, "[300.1.1.1]", "a@example.org",
                           "x@[300.1.1.1]")
        assert res[0] == ("F", "bad address literal [300.1.1.1]"), res
    finally:
        close_all(p)
