"""test_loop - mail loops: this host in every spelling, and the hop limit.

The attack of the audit end to end: a client that may not relay sends, on
a real listening mta-smtpd, a message to a hosted user that vdeliver
refuses as a loop, with a sender whose domain is an address literal of
this host ([IPv6:::ffff:127.0.0.1]); the bounce must fail as a loop in
mta-remote instead of being relayed back into our own mta-smtpd again and
again. Then each spelling of this host as an address literal and as MX/A
records (mta-remote alone; a scripted peer stands where our mta-smtpd
listens, so any connection shows), and the 100-hop limit at every entry
(mta-smtpd, mta-inject, sendmail and drop/) and in mta-send for a queue
file that got past them.
"""
import os
import re
import smtplib
import socket
import time

from helpers import (Sender, close_all, free_port, peers, qf_build, qf_new,
                     qf_parse, queue_files)
from test_remote import Dns, remote
from test_remote import setup as remote_setup
from test_send import DOMAIN, inject, maildir, read, setup, wait_files
from test_smtpd import Server, codes, inetd

LOOP = re.compile(r"loop: .* is this host \(#5\.4\.6\)")


def received(n, fold=False):
    """n Received: lines, each a hop of its own"""
    out = b""
    for i in range(n):
        out += (b"Received: from h%d.example.org\n\tby x.example.org;\n"
                b"\tSat, 5 Dec 2026 00:00:00 +0000\n" % i if fold else
                b"Received: from h%d.example.org by x.example.org\n" % i)
    return out


def rules(t, text):
    with open(t.path("control", "relayrules"), "w") as f:
        f.write(text)
    t.run("mta-rules", check=0)


def control(t, name, value):
    with open(t.path("control", name), "w") as f:
        f.write(value)


# --- the attack, end to end ---------------------------------------------

def test_loop_bounce_to_own_literal_stops(t):
    setup(t, users=("bob", "pm"), doublebounceto=f"pm@{DOMAIN}")
    control(t, "me", "mx.example.test\n")
    # 127.0.0.3 is a client that may not relay; the rest of 127/8 may
    rules(t, '127.0.0.3:allow\n127.:allow,RELAYCLIENT=""\n:allow\n')
    srv = Server(t, smtp=1)
    port = srv.ports["smtp"]
    control(t, "remoteport", f"{port}\n")
    s = Sender(t)
    try:
        c = smtplib.SMTP("127.0.0.1", port, timeout=20,
                         source_address=("127.0.0.3", 0))
        c.ehlo("attacker.example")
        # may not relay: only the hosted recipient is accepted
        assert c.docmd("MAIL FROM:<x@[IPv6:::ffff:127.0.0.1]>")[0] == 250
        assert c.docmd("RCPT TO:<x@[IPv6:::ffff:127.0.0.1]>")[0] == 553
        assert c.docmd(f"RCPT TO:<bob@{DOMAIN}>")[0] == 250
        code, _ = c.data(f"Delivered-To: bob@{DOMAIN}\r\nSubject: loop\r\n"
                         "\r\nround and round\r\n".encode())
        assert code == 250
        c.quit()
        # vdeliver refuses it (its own Delivered-To), the bounce to
        # x@[IPv6:::ffff:127.0.0.1] fails as a loop in mta-remote, and
        # that failure of a bounce goes to doublebounceto, once
        wait_files(t, "pm", 1, timeout=30)
        s.wait_drained(timeout=30)
        time.sleep(1)           # a loop would go on queueing meanwhile
        assert queue_files(t) == []
    finally:
        log = s.stop()
        slog = srv.stop()
    assert re.search(r"delivery \d+: failure: loop:_\[ipv6:::ffff:127\.0\.0"
                     r"\.1\]_is_this_host_\(#5\.4\.6\)", log), log
    # the message, its bounce, the double bounce: nothing came back in
    assert len(re.findall(r"new msg ", log)) == 3, log
    assert maildir(t, "bob") == []
    assert len(maildir(t, "pm")) == 1
    assert "Sanitizer" not in slog


# --- every spelling of this host, in mta-remote --------------------------

def local_addresses():
    """(IPv4, IPv6) addresses of a non-loopback interface, or None each"""
    v4 = v6 = None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))     # no packet is sent
        a = s.getsockname()[0]
        v4 = None if a.startswith("127.") else a
    except OSError:
        pass
    finally:
        s.close()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexa, _, _, scope, _, dev = line.split()
                if dev != "lo" and scope == "00":     # global scope
                    v6 = ":".join(hexa[i:i + 4] for i in range(0, 32, 4))
                    break
    except OSError:
        pass
    return v4, v6


def test_loop_literal_spellings(t):
    remote_setup(t)
    port = free_port("127.0.0.1")
    control(t, "remoteport", f"{port}\n")
    # our own mta-smtpd listens on the port mail goes to; a peer stands
    # there so that a connection would show
    control(t, "listen.smtp", f"127.0.0.1:{port}\n")
    (us,) = peers(port, ("127.0.0.1", {}))
    v4, v6 = local_addresses()
    lits = ["[127.0.0.1]", "[127.0.0.2]", "[127.255.255.254]",
            "[IPv6:::ffff:127.0.0.1]", "[ipv6:::FFFF:7F00:1]",
            "[IPv6:::ffff:127.0.0.2]", "[IPv6:::1]", "[IPv6:0:0:0:0:0:0:0:1]",
            "[0.0.0.0]", "[0.1.2.3]", "[IPv6:::]", "[IPv6:::ffff:0.0.0.0]",
            "[IPv6:::127.0.0.1]", "[IPv6:64:ff9b::7f00:1]"]
    if v4:
        lits += [f"[{v4}]", f"[IPv6:::ffff:{v4}]"]
    else:
        print("note: no non-loopback IPv4 interface address to try")
    if v6:
        lits += [f"[IPv6:{v6}]"]
    else:
        print("note: no global IPv6 interface address to try")
    try:
        for lit in lits:
            res, _, dt = remote(t, lit, "", f"x@{lit}")
            assert res[0][0] == "F" and LOOP.search(res[0][1]), (lit, res)
            assert dt < 10, (lit, dt)
        assert us.sessions == []
    finally:
        close_all(us)


def test_loop_port_decides_and_smtproutes_exempt(t):
    port = remote_setup(t)
    (lab,) = peers(port, ("127.0.0.2", {}))
    try:
        # a lab's fake MX on a loopback address, on a port where no MTA of
        # ours listens: delivered (the test suite's own set-up)
        res, _, _ = remote(t, "[127.0.0.2]", "a@example.org",
                           "x@[127.0.0.2]")
        assert res[0][0] == "D", res
        # our mta-smtpd on that port, in any listen file: a loop
        for kind in ("listen.smtp", "listen.submission", "listen.smtps"):
            control(t, kind, f"[::1]:{port}\n")
            res, _, _ = remote(t, "[127.0.0.2]", "a@example.org",
                               "x@[127.0.0.2]")
            assert res[0][0] == "F" and LOOP.search(res[0][1]), (kind, res)
            os.unlink(t.path("control", kind))
        # an explicit smtproutes line is the administrator's choice
        control(t, "listen.smtp", f"127.0.0.1:{port}\n")
        control(t, "smtproutes", ":[127.0.0.2]\n")
        res, _, _ = remote(t, "[127.0.0.2]", "a@example.org",
                           "x@[127.0.0.2]")
        assert res[0][0] == "D", res
        # ... but a route that only sets the port still checks the literal
        control(t, "smtproutes", f"::{port}\n")
        res, _, _ = remote(t, "[127.0.0.2]", "a@example.org",
                           "x@[127.0.0.2]")
        assert res[0][0] == "F" and LOOP.search(res[0][1]), res
        assert len(lab.sessions) == 2
        # port 25 is always a port of this host's MTA
        os.unlink(t.path("control", "smtproutes"))
        os.unlink(t.path("control", "listen.smtp"))
        control(t, "remoteport", "25\n")
        res, _, _ = remote(t, "[IPv6:::ffff:127.0.0.2]", "",
                            "x@[IPv6:::ffff:127.0.0.2]")
        assert res[0][0] == "F" and LOOP.search(res[0][1]), res
    finally:
        close_all(lab)


def test_loop_mx_and_address_records(t):
    port = remote_setup(t)
    control(t, "listen.smtp", f"127.0.0.1:{port}\n")
    v4, _ = local_addresses()
    recs = ["--mx-host=lo2.test,mx.lo2.test,10",
            "--host-record=mx.lo2.test,127.0.0.2",
            "--mx-host=zero.test,mx.zero.test,10",
            "--host-record=mx.zero.test,0.0.0.0",
            "--mx-host=six.test,mx.six.test,10",
            "--host-record=mx.six.test,::1",
            "--host-record=bare.test,127.0.0.9",
            # a better MX that is somebody else still gets the mail
            "--mx-host=backup.test,mx1.backup.test,10",
            "--mx-host=backup.test,mx2.backup.test,20",
            "--host-record=mx1.backup.test,127.0.0.4",
            "--host-record=mx2.backup.test,127.0.0.5"]
    doms = ["lo2.test", "zero.test", "six.test", "bare.test"]
    if v4:
        recs += ["--mx-host=iface.test,mx.iface.test,10",
                 f"--host-record=mx.iface.test,{v4}"]
        doms.append("iface.test")
    dns = Dns(t, *recs)
    try:
        for dom in doms:
            res, _, _ = remote(t, dom, "", f"x@{dom}")
            assert res[0][0] == "F" and "loop" in res[0][1], (dom, res)
            assert "5.4.6" in res[0][1], (dom, res)
        # 127.0.0.4 is ours too, on that port: mx1 is cut as well
        res, _, _ = remote(t, "backup.test", "", "x@backup.test")
        assert res[0][0] == "F" and "loop" in res[0][1], res
        # off our port, the lab's loopback MX hosts are other hosts
        os.unlink(t.path("control", "listen.smtp"))
        (p4,) = peers(port, ("127.0.0.4", {}))
        try:
            res, _, _ = remote(t, "backup.test", "", "x@backup.test")
            assert res[0][0] == "D" and res[0][1].startswith("127.0.0.4"), \
                res
        finally:
            close_all(p4)
    finally:
        close_all(dns)


# --- the hop limit --------------------------------------------------------

def smtp_session(hops, fold=False):
    body = received(hops, fold) + b"Subject: hops\n\nhello\n"
    return (b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n"
            b"RCPT TO:<bob@example.test>\r\nDATA\r\n" +
            body.replace(b"\n", b"\r\n") + b".\r\nQUIT\r\n")


def test_loop_smtpd_hop_limit(t):
    setup(t, users=("bob",))
    for fold in (False, True):
        lines, err = inetd(t, smtp_session(101, fold))
        assert codes(lines)[-2:] == ["554", "221"], lines
        assert lines[-2].startswith("554 5.4.6 too many hops"), lines
        assert queue_files(t) == [], queue_files(t)
        assert os.listdir(t.path("queue", "tmp")) == []
    # 100 are fine; the file then holds ours on top: 101
    lines, _ = inetd(t, smtp_session(100))
    assert codes(lines)[-2:] == ["250", "221"], lines
    (q,) = queue_files(t)
    data = read(q)
    assert data.count(b"Received: ") == 101, data[:300]
    assert b"Received: from c (192.0.2.7)" in data, data[:300]


def inject_rc(t, body):
    return t.run("mta-inject", "-f", "a@example.org", f"bob@{DOMAIN}",
                 input=body)


def test_loop_inject_hop_limit(t):
    setup(t, users=("bob",))
    p = inject_rc(t, received(101) + b"Subject: x\n\nbody\n")
    assert p.returncode == 100, (p.returncode, p.err)
    assert p.err.count("\n") == 1 and "5.4.6 too many hops" in p.err, p.err
    assert queue_files(t) == [] and os.listdir(t.path("queue", "tmp")) == []
    # CR LF input counts the same
    p = inject_rc(t, (received(101, True) + b"\n").replace(b"\n", b"\r\n"))
    assert p.returncode == 100, (p.returncode, p.err)
    # Received: in the body is no hop
    p = inject_rc(t, b"Subject: x\n\n" + received(150))
    assert p.returncode == 0, p.err
    p = inject_rc(t, received(100) + b"Subject: x\n\nbody\n")
    assert p.returncode == 0, p.err
    assert len(queue_files(t)) == 2


def test_loop_sendmail_hop_limit(t):
    setup(t, users=("bob",))
    p = t.run("sendmail", f"bob@{DOMAIN}",
              input=received(101) + b"Subject: x\n\nbody\n")
    assert p.returncode == 100, (p.returncode, p.err)
    assert "5.4.6 too many hops" in p.err, p.err
    assert queue_files(t) == []
    p = t.run("sendmail", f"bob@{DOMAIN}",
              input=received(100) + b"Subject: x\n\nbody\n")
    assert p.returncode == 0, p.err
    assert len(queue_files(t)) == 1
    from test_sendmail_user import can_switch, user_sendmail
    if not can_switch():
        return
    # a local user's sendmail writes drop/: refused before that
    p = user_sendmail(t, f"bob@{DOMAIN}",
                      input=received(101) + b"Subject: x\n\nbody\n")
    assert p.returncode == 100, (p.returncode, p.err)
    assert "5.4.6 too many hops" in p.err, p.err
    assert [n for n in os.listdir(t.path("drop")) if n != "trigger"] == []


def add_hop(path):
    """one more Received: line under the top one of a queue file, in place
    (same inode, so the file keeps its id)"""
    recs, msg = qf_parse(read(path))
    first = msg.index(b"\nReceived: ") + 1      # after our own line
    msg = msg[:first] + b"Received: from one.more.example\n" + msg[first:]
    with open(path, "r+b") as f:
        f.write(qf_build(recs, msg))


def test_loop_queue_file_fails_at_once(t):
    setup(t, users=("a", "bob"))
    # injected while no scheduler runs: 100 hops each, ours on top
    inject(t, f"a@{DOMAIN}", f"bob@{DOMAIN}", "far@remote.test",
           body=received(100) + b"Subject: loop\n\nbody\n")
    (looped,) = queue_files(t)
    add_hop(looped)                               # 101 hops, then ours
    assert read(looped).count(b"Received: ") == 102
    inject(t, f"a@{DOMAIN}", f"bob@{DOMAIN}",
           body=received(100) + b"Subject: fine\n\nbody\n")
    s = Sender(t)
    try:
        bounce = wait_files(t, "a", 1)
        got = wait_files(t, "bob", 1)
        s.wait_drained()
    finally:
        log = s.stop()
    # the looping one went nowhere, not even to a delivery program
    assert len(maildir(t, "bob")) == 1 and b"Subject: fine" in read(got[0])
    fails = re.findall(r"delivery \d+: failure: 5\.4\.6_too_many_hops", log)
    assert len(fails) == 2, log
    assert "remote far@remote.test" in log, log
    # bob's fine copy and the bounce: the only deliveries that ran
    assert len(re.findall(r"delivery \d+: success: ", log)) == 2, log
    b = read(bounce[0])
    assert b"Status: 5.4.6" in b, b[:2000]
    assert b"Final-Recipient: rfc822; far@remote.test" in b
    assert len(maildir(t, "a")) == 1


def test_loop_drop_file_fails_at_once(t):
    from test_sendmail_user import can_switch, put
    if not can_switch():
        return
    setup(t, users=("a", "bob"))
    # written by hand past sendmail: the pickup adds its own line on top
    put(t, "65534.1.2.3.beef", qf_new(f"a@{DOMAIN}", [f"bob@{DOMAIN}"],
                                      received(101) + b"Subject: x\n\nb\n"))
    s = Sender(t)
    try:
        bounce = wait_files(t, "a", 1)
        s.wait_drained()
    finally:
        log = s.stop()
    assert maildir(t, "bob") == []
    assert re.search(r"delivery \d+: failure: 5\.4\.6_too_many_hops", log)
    assert b"Status: 5.4.6" in read(bounce[0])
