"""test_flood - floods against the whole system (issue 15).

`facteur run` with every listener (25, 587, 465, 110, 995 on free
loopback ports) and timeoutsmtpd = timeoutpop3 = 3 s, then hostile
sessions at once, spread over six kinds and the five ports
(hostile_net.KINDS): idle (no byte, not even a ClientHello on 465/995),
one byte a second of a line that never ends, endless header lines in
DATA (endless short commands on POP3), a 1 MiB command line, 5,000
pipelined junk commands, a TLS handshake that stops after 11 bytes (after
STARTTLS / STLS on 587 and 110). Meanwhile a normal client from its own
address sends three messages (25; 587 with STARTTLS and AUTH; 465) and
reads them by POP3 (110 with STLS; 995).

Proved: the normal client's every greeting in under 1 s, its three
messages delivered and read; every hostile session dropped by the server
within timeout + 5 s of its last byte (the one-byte-a-second one within
timeout + 5 s of its first: the timeout is of a whole line); no sanitizer
report. Then maxperip from one address holds (the limit+1st gets 421 /
-ERR) while another address is served; and the peak RSS of every process
for a 1 MiB header line, 100,000 header lines, and 1,000 recipients x a
10 MiB message (relayed to a fake MX) stays under 64 MiB, the message
stored once in the queue.

test_* floods with 120 sessions (20 of each kind); slow_* with 500.
"""
import os
import socket
import sys
import time

import helpers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_net import (KINDS, NORMAL_IP, USER, PeakRSS, System, flood,
                         normal_read, normal_send)

ALONE = True    # timing: greetings under 1 s, drops within timeout + 5 s
MIB = 1 << 20


def flood_round(t, n):
    sys_ = System(t, timeout=3, controls=(("maxsessions", "2000\n"),
                                          ("maxperip", "20\n")))
    try:
        hostile = flood(sys_, n)
        time.sleep(1.5)     # every hostile session connected and at work
        times = normal_send(sys_, "flood")
        subjects = wait_subjects(sys_, 3)
        for h in hostile:
            h.join(timeout=sys_.timeout + 30)
        report(sys_, hostile, times + subjects[1], subjects[0], n)
    finally:
        sys_.stop()


def wait_subjects(sys_, n):
    """bob's subjects once n messages arrived (mta-send delivers them)"""
    end = time.monotonic() + 30
    while True:
        subjects, times = normal_read(sys_)
        if len(subjects) >= n or time.monotonic() > end:
            return subjects, times
        time.sleep(0.3)


def report(sys_, hostile, greet_times, subjects, n):
    """assert, and print the counts a docs table takes"""
    limit = sys_.timeout + 5
    late, open_, by_kind = [], [], {}
    for h in hostile:
        key = (h.kind, h.service)
        by_kind.setdefault(h.kind, []).append(h)
        if h.closed_at is None:
            open_.append((key, h.error))
            continue
        since = h.closed_at - (h.t0 if h.kind == "trickle" else h.last_sent)
        if since > limit:
            late.append((key, round(since, 1)))
    worst = {k: round(max((h.closed_at or 0) - h.t0 for h in v), 1)
             for k, v in by_kind.items()}
    print(f"flood {n}: greetings {[round(x, 3) for x in greet_times]} s; "
          f"{len(subjects)} messages read; never dropped {len(open_)}; "
          f"late {len(late)}; longest session by kind {worst}; "
          f"load {os.getloadavg()}")
    assert sorted(subjects) == ["flood mx", "flood sub", "flood tls"], (
        subjects)
    assert max(greet_times) < 1.0, greet_times
    assert not open_, open_[:10]
    assert not late, late[:10]


def test_flood_120_sessions_normal_client_served(t):
    flood_round(t, 20 * len(KINDS))


def slow_flood_500_sessions_normal_client_served(t):
    flood_round(t, 500)


def perip_round(port, limit, src="127.0.0.9", wait=5):
    """limit sessions from src, held open, then one more: (the held
    sockets, their greetings, what the one more got; b"" if nothing in
    wait s). bench/hostile_peers.py runs it on the peers too."""
    held, greetings = [], []
    for _ in range(limit):
        s = socket.create_connection(("127.0.0.1", port), 5,
                                     source_address=(src, 0))
        held.append(s)
        greetings.append(s.recv(512))
    s = socket.create_connection(("127.0.0.1", port), wait,
                                 source_address=(src, 0))
    try:
        got = s.recv(512)
    except socket.timeout:
        got = b""
    finally:
        s.close()
    return held, greetings, got


def test_flood_maxperip_holds_from_one_address(t):
    """maxperip 5: the 6th SMTP and POP3 session from 127.0.0.9 is refused
    while 127.0.0.2 (and 127.0.0.1 for POP3) is served at once"""
    sys_ = System(t, timeout=10, controls=(("maxperip", "5\n"),))
    held = []
    try:
        for svc, refusal in (("smtp", b"421 4.7.0 "), ("pop3", b"-ERR ")):
            socks, greetings, got = perip_round(sys_.ports[svc], 5)
            held += socks
            assert all(g[:1] in (b"2", b"+") for g in greetings), greetings
            assert got.startswith(refusal), got
        times = normal_send(sys_, "perip")
        subjects, ptimes = wait_subjects(sys_, 3)
        assert max(times + ptimes) < 1.0, times + ptimes
        assert len(subjects) == 3, subjects
    finally:
        for s in held:
            s.close()
        sys_.stop()


# --- peak RSS --------------------------------------------------------------

def smtp_raw(port, src=NORMAL_IP):
    s = socket.create_connection(("127.0.0.1", port), 30,
                                 source_address=(src, 0))
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line
    assert reply().startswith(b"220 ")
    return s, reply


def in_data(port):
    """a session to bob at the point where DATA was answered 354"""
    s, reply = smtp_raw(port)
    s.sendall(b"EHLO rss\r\nMAIL FROM:<a@remote.example>\r\n"
              b"RCPT TO:<" + USER.encode() + b">\r\nDATA\r\n")
    for _ in range(3):
        assert reply()[:1] == b"2"
    assert reply().startswith(b"354")
    return s, reply


def big_header_line(port):
    """a 1 MiB header line in DATA: refused (a line over 1000 bytes)"""
    s, reply = in_data(port)
    s.sendall(b"X-Big: " + b"b" * MIB + b"\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    got = reply()
    s.close()
    return got


def many_header_lines(port):
    """100,000 header lines (1.4 MB): accepted"""
    s, reply = in_data(port)
    chunk = b"".join(b"X-H%06d: v\r\n" % i for i in range(1000))
    for _ in range(100):
        s.sendall(chunk)
    s.sendall(b"Subject: many\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    got = reply()
    s.close()
    return got


def thousand_rcpts(port, mx_domain):
    """1,000 recipients of a relayed domain x 10 MiB (relay client)"""
    s, reply = smtp_raw(port)
    cmds = [b"EHLO rss", b"MAIL FROM:<a@example.test> SIZE=10600000"]
    cmds += [b"RCPT TO:<u%d@%s>" % (i, mx_domain.encode())
             for i in range(1000)]
    s.sendall(b"\r\n".join(cmds + [b"DATA"]) + b"\r\n")
    for _ in range(len(cmds)):
        r = reply()
        assert r[:1] == b"2", r
    assert reply().startswith(b"354")
    line = b"0123456789" * 7 + b"\r\n"          # 72 bytes
    block = b"Subject: big\r\n\r\n" + line * (MIB // 72)
    for _ in range(10):
        s.sendall(block)
        block = line * (MIB // 72)
    s.sendall(b".\r\n")
    got = reply()
    s.sendall(b"QUIT\r\n")
    s.close()
    return got


def size_or_none(path):
    """the size of PATH, None when it went away meanwhile"""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return None


def big_files(t, before):
    """the queue's new files over 10 MB, from a listing in which no file
    moved between the listing and its stat (mta-send renames a message
    into msg/ as it takes it); None when no listing held still"""
    for _ in range(20):
        names = [f for f in helpers.queue_files(t) if f not in before]
        sizes = [size_or_none(f) for f in names]
        if None not in sizes:
            return [f for f, z in zip(names, sizes) if z > 10_000_000]
        time.sleep(0.05)
    return None


def test_flood_peak_rss_under_64mib(t):
    mx = helpers.MX()
    sys_ = System(t, timeout=30, controls=(
        ("databytes", "20000000\n"),
        ("smtproutes", f"big.example:127.0.0.1:{mx.port}\n")))
    rss = PeakRSS(sys_.p.pid)
    try:
        assert big_header_line(sys_.ports["smtp"]).startswith(b"554 5.6.0")
        assert many_header_lines(sys_.ports["smtp"]).startswith(b"250 ")
        qid_before = set(helpers.queue_files(t))
        got = thousand_rcpts(sys_.ports["smtp"], "big.example")
        assert got.startswith(b"250 2.0.0 ok "), got
        # one copy on disk: the queue holds one message file of ~10 MiB
        big = big_files(t, qid_before)
        assert big is not None and len(big) == 1, big
        helpers.wait_for("1,000 recipients at the MX",
                         lambda: sum(len(r) for _, r, _ in mx.got) >= 1000,
                         120)
        time.sleep(0.5)
    finally:
        peak = rss.stop()
        sys_.stop()
        mx.close()
    copies = [len(r) for _, r, _ in mx.got]
    assert sum(copies) == 1000 and len(copies) <= 10, copies
    assert all(len(d) >= 10_000_000 for _, _, d in mx.got), [
        len(d) for _, _, d in mx.got]
    print("peak RSS MiB: " + ", ".join(
        f"{k} {v / MIB:.1f}" for k, v in sorted(peak.items())) +
        f"; load {os.getloadavg()}")
    for name in ("mta-smtpd", "mta-send", "mta-remote", "vdeliver", "pop3d",
                 "facteur"):
        assert peak.get(name, 0) < 64 * MIB, (name, peak)
    assert peak.get("mta-smtpd") and peak.get("mta-remote"), peak
