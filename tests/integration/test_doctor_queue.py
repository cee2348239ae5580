"""test_doctor_queue - `facteur doctor`'s queue and relay checks.

queue: messages are planted in queue/msg/HH/ with status files (ID.s)
whose T lines defer remote recipients, for three domains served by
dnsmasq on a free loopback port (control/resolvers): one whose MX (a
helpers.MX on 127.0.0.2) greets with 421, one whose MX (127.0.0.3) has
nothing listening on control/remoteport, one that does not exist
(dnsmasq answers NXDOMAIN for the unknown names of its zone). doctor
must name all three with what it saw, within its time bound.

relay: open rules in control/relayrules (text) and in relayrules.cdb
(compiled, then the text put back) are a FAIL; stale POP-before-SMTP
grants a warn that --fix removes, never through a symbolic link.
"""
import json
import os
import re
import time

from helpers import MX, close_all, free_port, qf_new
from test_remote import Dns
from vadmin_util import give

DAY = 86400


def plant(ctx, rcpts, deferred, arrival=None, ino=0x1234):
    """a message in queue/msg/HH/ID and its status file: the recipients
    at the indexes in deferred have one T line"""
    now = int(time.time() * 1e6)
    arrival = arrival or now
    mid = f"{arrival:x}.{ino:x}"
    d = ctx.path("queue", "msg", f"{ino & 0xff:02x}")
    if not os.path.isdir(d):
        os.mkdir(d, 0o700)
        give(ctx, d)
    path = os.path.join(d, mid)
    with open(path, "wb") as f:
        f.write(qf_new("a@example.org", rcpts, b"Subject: x\n\nbody\n"))
    with open(path + ".s", "w") as f:
        for i in deferred:
            f.write(f"T {i} {now} {now + 600 * 10**6} 421 try later\n")
    give(ctx, path)
    give(ctx, path + ".s")
    return path


def control(ctx, name, text):
    path = ctx.path("control", name)
    with open(path, "w") as f:
        f.write(text)
    give(ctx, path)


def line_of(p, name):
    for l in p.out.splitlines():
        if re.match(rf"(ok|warn|FAIL) {re.escape(name)}(:|$)", l):
            return l
    raise AssertionError(f"no {name} line in\n{p.out}")


def test_doctor_queue_empty(ctx):
    ctx.init()
    p = ctx.run("facteur", "doctor", check=0)
    assert line_of(p, "queue") == "ok queue", p.out
    assert line_of(p, "relay") == "ok relay", p.out


def test_doctor_queue_deferred(ctx):
    ctx.init()
    port = free_port("127.0.0.2")
    control(ctx, "remoteport", f"{port}\n")
    mx = MX(ip="127.0.0.2", port=port, mode="greet421")
    dns = Dns(ctx, "--mx-host=a.test,mx.a.test,10",
              "--host-record=mx.a.test,127.0.0.2",
              "--mx-host=b.test,mx.b.test,10",
              "--host-record=mx.b.test,127.0.0.3")
    try:
        plant(ctx, ["x@a.test", "y@a.test", "z@b.test"], [0, 1, 2],
              ino=0x101)
        plant(ctx, ["w@nx.test", "v@b.test"], [0], ino=0x202)
        # a delivered recipient's domain is not named
        plant(ctx, ["u@done.test"], [], ino=0x303)
        t0 = time.monotonic()
        p = ctx.run("facteur", "doctor", "--json", check=0)
        dt = time.monotonic() - t0
    finally:
        close_all(mx, dns)
    assert dt < 10, dt
    q = {o["check"]: o for o in json.loads(p.out)}["queue"]
    assert q["status"] == "warn", q
    msg = q["message"]
    assert re.search(r"2 deferred recipients at a\.test: MX mx\.a\.test "
                     r"127\.0\.0\.2: 421", msg), msg
    assert re.search(r"1 deferred recipient at b\.test: MX mx\.b\.test "
                     r"127\.0\.0\.3: Connection refused", msg), msg
    assert re.search(r"at nx\.test: does not exist \(NXDOMAIN\)", msg), msg
    assert "done.test" not in msg and "v@" not in msg, msg
    assert q["fix"], q
    # the MX was really asked: one connection at least
    assert mx.conns, "no connection to the 421 MX"


def test_doctor_queue_old(ctx):
    ctx.init()
    old = int((time.time() - 2 * DAY) * 1e6)
    path = ctx.path("queue", "new", f"{old:x}.99")
    with open(path, "wb") as f:
        f.write(qf_new("a@example.org", ["b@example.org"], b"x\n"))
    give(ctx, path)
    p = ctx.run("facteur", "doctor", check=0)
    assert re.match(r"warn queue: 1 message queued, the oldest 2d old",
                    line_of(p, "queue")), p.out
    os.unlink(path)
    p = ctx.run("facteur", "doctor", check=0)
    assert line_of(p, "queue") == "ok queue", p.out


def test_doctor_relay_open_text(ctx):
    ctx.init()
    control(ctx, "relayrules",
            '127.:allow,RELAYCLIENT=""\n0.0.0.0/0:allow,RELAYCLIENT=""\n')
    p = ctx.run("facteur", "doctor", check=1)
    l = line_of(p, "relay")
    assert l.startswith("FAIL relay: control/relayrules rule "
                        '"0.0.0.0/0:allow,RELAYCLIENT=""" lets every client '
                        "relay"), p.out
    assert "mta-rules" in l, l
    for rule in ('::/0:allow,RELAYCLIENT=""', ':allow,RELAYCLIENT=""'):
        control(ctx, "relayrules", rule + "\n")
        p = ctx.run("facteur", "doctor", check=1)
        assert line_of(p, "relay").startswith(
            f'FAIL relay: control/relayrules rule "{rule}"'), p.out
    # a catch-all without RELAYCLIENT is no open relay
    control(ctx, "relayrules", '127.:allow,RELAYCLIENT=""\n:allow\n')
    ctx.run("mta-rules", check=0)
    p = ctx.run("facteur", "doctor", check=0)
    assert line_of(p, "relay") == "ok relay", p.out


def test_doctor_relay_open_cdb(ctx):
    ctx.init()
    rules = open(ctx.path("control", "relayrules")).read()
    control(ctx, "relayrules", ':allow,RELAYCLIENT=""\n')
    ctx.run("mta-rules", check=0)
    assert "FAIL relay: control/relayrules rule" in \
        ctx.run("facteur", "doctor", check=1).out
    # the text put back, the CDB left open: what smtpd reads is open
    control(ctx, "relayrules", rules)
    p = ctx.run("facteur", "doctor", check=1)
    assert line_of(p, "relay").startswith(
        "FAIL relay: control/relayrules.cdb lets any client relay "
        "(203.0.113.7 may)"), p.out


def test_doctor_stale_grants(ctx):
    ctx.init()
    d = ctx.path("open-smtp")
    old = time.time() - 4 * 3600
    for ip in ("192.0.2.1", "192.0.2.2"):
        with open(os.path.join(d, ip), "w"):
            pass
        give(ctx, os.path.join(d, ip))
        os.utime(os.path.join(d, ip), (old, old))
    fresh = os.path.join(d, "192.0.2.3")
    open(fresh, "w").close()
    give(ctx, fresh)
    # a link to a file outside, both old: never followed nor removed
    target = os.path.join(ctx.tmp, "outside")
    open(target, "w").close()
    os.utime(target, (old, old))
    link = os.path.join(d, "192.0.2.4")
    os.symlink(target, link)
    os.utime(link, (old, old), follow_symlinks=False)
    give(ctx, link)
    p = ctx.run("facteur", "doctor", check=0)
    assert re.match(r"warn relay: 2 stale POP-before-SMTP grants in "
                    r"open-smtp/ \(older than 10800 s\)",
                    line_of(p, "relay")), p.out
    p = ctx.run("facteur", "doctor", "--fix", check=0)
    assert "fixed relay: removed 2 stale POP-before-SMTP grants" in p.out, \
        p.out
    assert line_of(p, "relay") == "ok relay", p.out
    assert sorted(os.listdir(d)) == ["192.0.2.3", "192.0.2.4"], \
        os.listdir(d)
    assert os.path.islink(link) and os.path.isfile(target)
    p = ctx.run("facteur", "doctor", check=0)
    assert line_of(p, "relay") == "ok relay", p.out
    # a shorter lifetime makes the fresh grant stale
    control(ctx, "popbeforesmtp", "0\n")
    os.utime(fresh, (time.time() - 5, time.time() - 5))
    p = ctx.run("facteur", "doctor", check=0)
    assert line_of(p, "relay").startswith(
        "warn relay: 1 stale POP-before-SMTP grant in"), p.out


def test_doctor_queue_smtproutes(ctx):
    """a routed domain is tried where mta-remote sends it: a route to a
    server that greets with 220 is no problem, a route to a closed port
    is named with its line; an address literal is connected to on
    control/remoteport"""
    ctx.init()
    good = MX(ip="127.0.0.4", mode="accept")
    closed = free_port("127.0.0.5")
    control(ctx, "smtproutes", f"r.test:[127.0.0.4]:{good.port}\n"
            f"s.test:[127.0.0.5]:{closed}\n")
    # no DNS at all: a route needs none
    control(ctx, "resolvers", f"127.0.0.1:{free_port()}\n")
    try:
        plant(ctx, ["x@r.test"], [0], ino=0x404)
        p = ctx.run("facteur", "doctor", check=0)
        assert line_of(p, "queue") == "ok queue", p.out
        assert good.conns, "the routed server was not tried"
        plant(ctx, ["x@s.test"], [0], ino=0x505)
        control(ctx, "remoteport", f"{closed}\n")
        plant(ctx, ["y@[127.0.0.5]"], [0], ino=0x606)
        p = ctx.run("facteur", "doctor", check=0)
    finally:
        close_all(good)
    l = line_of(p, "queue")
    assert re.search(r"1 deferred recipient at s\.test: smtproutes line 2, "
                     r"\[127\.0\.0\.5\]: Connection refused", l), l
    assert re.search(r"1 deferred recipient at \[127\.0\.0\.5\]: "
                     r"Connection refused", l), l
    assert "r.test" not in l, l
