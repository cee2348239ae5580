"""test_srs - the Sender Rewriting Scheme end to end (docs/authentication.md,
"SRS"): a message from outside reaches mta-smtpd, bob@ forwards it to a
remote address, and it leaves (mta-send, vdeliver, mta-inject, mta-remote,
to a fake MX) with an SRS0 sender of control/me; the remote's bounce to
that address comes back over SMTP, is taken at RCPT and goes on to the
original sender's own fake MX. Forged, tampered and expired SRS addresses
are refused with 550. The hash is recomputed here with Python's hmac from
control/srssecret, so the format is checked apart from lib/srs."""
import base64
import hashlib
import hmac
import os
import re
import time

from helpers import MX, Sender, queued, read_queue_file, wait_for
from test_send import maildir
from test_smtpd import codes, inetd

ME = "mx.example.test"
D = "example.test"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def setup(t, far_rcpt=None):
    """example.test with bob (forwarding to far@far.test) and carol;
    far.test and orig.test routed to two fake MXes on one port"""
    t.init()
    with open(t.path("control", "me"), "w") as f:
        f.write(ME + "\n")
    t.run("vadmin", "adddomain", D, input="pw\n", check=0)
    for u in ("bob", "carol"):
        t.run("vadmin", "adduser", f"{u}@{D}", "pw", check=0)
    t.run("vadmin", "forward", f"bob@{D}", "far@far.test", check=0)
    far = MX("127.0.0.2", rcpt=far_rcpt)
    orig = MX("127.0.0.3", far.port)
    for name, value in (("smtproutes",
                         "far.test:127.0.0.2\norig.test:127.0.0.3\n"),
                        ("remoteport", f"{far.port}\n"),
                        ("retrybase", "1\n")):
        with open(t.path("control", name), "w") as f:
            f.write(value)
    return far, orig


def srs(t, local, domain, day, key=None):
    """the SRS0 address lib/srs makes of LOCAL@DOMAIN on DAY"""
    if key is None:
        with open(t.path("control", "srssecret")) as f:
            key = f.readline().strip()
    tt = B32[day % 1024 >> 5] + B32[day % 1024 & 31]
    mac = hmac.new(key.encode(), f"{tt}={domain}={local}".lower().encode(),
                   hashlib.sha256).digest()
    h = base64.b64encode(mac).decode()[:6]
    return f"SRS0={h}={tt}={domain}={local}@{ME}"


def today():
    return int(time.time()) // 86400


def session(t, sender, rcpts, ip="192.0.2.9", body=b"Subject: x\r\n\r\nhi\r\n"):
    """one SMTP transaction over --inetd: the replies to each RCPT and
    the reply to the end of DATA (if any recipient was accepted)"""
    data = b"HELO far.test\r\nMAIL FROM:<" + sender.encode() + b">\r\n"
    for r in rcpts:
        data += b"RCPT TO:<" + r.encode() + b">\r\n"
    data += b"DATA\r\n" + body + b".\r\nQUIT\r\n"
    lines, _ = inetd(t, data, ip=ip)
    return lines[3:3 + len(rcpts)], lines[3 + len(rcpts):]


def got(mx, n):
    wait_for(f"{n} message(s) at {mx.ip}", lambda: len(mx.got) >= n, 30)
    return mx.got


def test_srs_forward_and_bounce_back(t):
    far, orig = setup(t)
    s = Sender(t)
    try:
        # 1. alice@orig.test writes to bob@, forwarded to far@far.test;
        # the null sender too, which stays null
        r, _ = session(t, "alice@orig.test", [f"bob@{D}"])
        assert codes(r) == ["250"], r
        r, _ = session(t, "", [f"bob@{D}"])
        assert codes(r) == ["250"], r
        msgs = got(far, 2)
        senders = sorted(m[0] for m in msgs)
        assert senders[0] == "<>", senders
        srs_addr = senders[1].strip("<>")
        assert srs_addr == srs(t, "alice", "orig.test", today()), senders
        assert all(m[1] == ["far@far.test"] for m in msgs), msgs
        # 2. far.test bounces to the SRS address; a forged hash, a
        # tampered domain and an expired stamp are refused at RCPT; a
        # good SRS address of a local sender goes to her mailbox
        h = srs_addr[5:11]
        # the hash is compared without case (relays fold it), so the
        # forged letter must differ from h[5] in any case: "b" -> "B"
        # would still be the right hash (a flaky test, 1 run in ~30)
        forged = srs_addr.replace(h, h[:5] + (
            "B" if h[5].lower() != "b" else "C"))
        tampered = srs_addr.replace("=orig.test=", "=evil.test=")
        expired = srs(t, "alice", "orig.test", today() - 30)
        local = srs(t, "carol", D, today() - 2)
        r, end = session(t, "", [forged, tampered, expired,
                                 srs_addr.upper(), local],
                         body=b"Subject: failure notice\r\n\r\nbounced\r\n")
        assert r[0] == ("550 5.1.1 forged SRS address: this host did not "
                        "make it"), r
        assert r[1] == r[0], r
        assert r[2].startswith("550 5.1.1 expired SRS address"), r
        # a relay that upper-cased the whole address: still ours
        assert codes(r[3:]) == ["250", "250"], r
        assert codes(end)[:2] == ["354", "250"], end
        # 3. the bounce reaches the original sender's MX, and carol
        back = got(orig, 1)
        assert back[0][0] == "<>", back
        assert [a.lower() for a in back[0][1]] == ["alice@orig.test"], back
        assert b"bounced" in back[0][2], back
        wait_for("carol's copy", lambda: len(maildir(t, "carol")) == 1, 30)
        with open(maildir(t, "carol")[0], "rb") as f:
            assert b"Delivered-To: carol@example.test\n" in f.read()
    finally:
        s.stop()
        far.close()
        orig.close()


def test_srs_forward_refused_bounces_to_original_sender(t):
    """the forward's remote refuses it: mta-send's own report goes to the
    original sender, not to the SRS address (which would lead back here)"""
    far, orig = setup(t, far_rcpt={"far": "550 5.1.1 no such user"})
    s = Sender(t)
    try:
        r, _ = session(t, "alice@orig.test", [f"bob@{D}"])
        assert codes(r) == ["250"], r
        back = got(orig, 1)
        assert back[0][0] == "<>", back
        assert [a.lower() for a in back[0][1]] == ["alice@orig.test"], back
        assert b"far@far.test" in back[0][2], back
        assert far.refused == ["far@far.test"], far.refused
    finally:
        log = s.stop()
        far.close()
        orig.close()
    assert "unwrap" not in log, log


def test_srs_refusals_queue_nothing(t):
    """an SRS address is judged before the relay rules: refused even from
    a relay client; a message whose only recipients were refused is not
    queued; a second secret line verifies, a removed one no longer does"""
    for mx in setup(t):
        mx.close()
    old = srs(t, "alice", "orig.test", today())
    r, _ = session(t, "", [old.replace("=orig", "=Orig").replace(
        old[5:11], "AAAAAA")], ip="127.0.0.1")
    assert codes(r) == ["550"], r
    assert queued(t) == []
    # rotation: a new first line signs, the old one still verifies
    with open(t.path("control", "srssecret")) as f:
        key = f.read()
    with open(t.path("control", "srssecret"), "w") as f:
        f.write("new-secret\n" + key)
    r, _ = session(t, "", [old, srs(t, "x", "orig.test", today(),
                                    key="new-secret")])
    assert codes(r) == ["250", "250"], r
    with open(t.path("control", "srssecret"), "w") as f:
        f.write("new-secret\n")
    r, _ = session(t, "", [old])
    assert r[0].startswith("550 5.1.1 forged"), r


def test_srs_without_secret_forwards_keep_sender(t):
    """a root without control/srssecret (made before SRS): forwards keep
    working with the original sender, the log says why, SRS addresses
    are refused and doctor warns"""
    for mx in setup(t):
        mx.close()
    os.unlink(t.path("control", "srssecret"))
    p = t.run("vdeliver", "-f", "alice@orig.test", f"bob@{D}",
              input=b"Subject: x\n\ny\n", check=0)
    (f,) = queued(t)
    recs, _ = read_queue_file(f)
    assert dict(recs)["F"] == b"alice@orig.test", recs
    assert p.returncode == 0, p.err
    with open(t.path("log", "current")) as f:
        log = f.read()
    assert re.search(r"vdeliver\[\d+\]: forward of msg for bob@example\.test "
                     r"keeps the sender alice@orig\.test: no "
                     r"control/srssecret", log), log
    r, _ = session(t, "", [srs(t, "a", "orig.test", today(), key="k")])
    assert r[0].startswith("550 5.1.1 forged"), r
    p = t.run("facteur", "doctor", check=None)
    assert re.search(r"control/srssecret is missing", p.out), p.out
