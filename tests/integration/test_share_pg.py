"""Integration tests of what several hosts share besides the accounts
(issue 16, SPEC.md "Several hosts"): POP-before-SMTP grants and
failed-login counts, carried by each host's `vadmin share` through one
private PostgreSQL (helpers.Postgres). Each host is a root of its own
with its own control/me; the servers run over pipes (--inetd) with the
client address in $TCPREMOTEIP.
"""
import base64
import contextlib
import os
import smtplib
import socket
import struct
import subprocess
import time

import helpers
from test_store_pg import H1, PW, make_root, stop
from vadmin_util import D, put, vadmin

CLIENT = "192.0.2.10"
RELAY = (b"EHLO client.example\r\nMAIL FROM:<u@" + D.encode() + b">\r\n"
         b"RCPT TO:<x@remote.example>\r\nQUIT\r\n")


def host(t, name, conn):
    """a root called NAME.test (its control/me) on the shared database"""
    root = make_root(t, name, conn)
    put(t, t.path("control", "me"), f"{name}.test\n", 0o644)
    # the clients are not on loopback
    put(t, t.path("control", "pop3plaintext"), "1\n", 0o644)
    return root


def share(t, root):
    """vadmin share on a root, started and caught up"""
    n = len([f for f in os.listdir(t.tmp) if f.startswith("share-")])
    errpath = os.path.join(t.tmp, f"share-{os.path.basename(root)}-{n}")
    with open(errpath, "wb") as err:
        p = subprocess.Popen([t.bin("vadmin"), "--root", root, "share"],
                             stdin=subprocess.DEVNULL, stdout=err,
                             stderr=err)
    p.errpath = errpath
    helpers.wait_for("vadmin share to start",
                     lambda: "sharing as" in said(p) or p.poll() is not None,
                     30)
    assert p.poll() is None, said(p)
    return p


def said(p):
    with open(p.errpath, errors="replace") as f:
        return f.read()


def halt(p):
    """stop a bridge (by its PID); it must have run clean"""
    stop(p)
    text = said(p)
    assert "Sanitizer" not in text and "runtime error" not in text, text


def relay(t, root, ip=CLIENT):
    """the reply to RCPT of a remote address from ip, through mta-smtpd"""
    t.root = root
    p = t.run("mta-smtpd", "--inetd", input=RELAY, env={"TCPREMOTEIP": ip},
              check=0)
    lines = p.stdout.decode(errors="replace").split("\r\n")
    assert "Sanitizer" not in p.err and "runtime error" not in p.err, p.err
    return [line for line in lines if line.startswith(("250 ", "553 "))][-1]


def pop(t, root, user, pw, ip=CLIENT):
    """one POP3 session from ip: its replies and its log"""
    t.root = root
    p = t.run("pop3d", "--inetd", input=(
        f"USER {user}\r\nPASS {pw}\r\nQUIT\r\n"), env={"TCPREMOTEIP": ip},
        check=0)
    assert "Sanitizer" not in p.err and "runtime error" not in p.err, p.err
    return p.out.split("\r\n"), p.err


def fnv_mix(h, data):
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xffffffffffffffff
    return h


def remote_count(root, service, text):
    """the other hosts' count of a key in ROOT/db/fails.SERVICE, read as
    lib/limit does: the table's own seed, the shared text, 8 probes"""
    with open(os.path.join(root, "db", "fails." + service), "rb") as f:
        data = f.read()
    assert data[:8] == b"FACTEUR1", data[:8]
    slots, window, seed = struct.unpack_from("<IIQ", data, 8)
    m = 0xffffffffffffffff
    h = fnv_mix(fnv_mix(14695981039346656037, seed.to_bytes(8, "little")),
                text.encode())
    h = ((h ^ h >> 33) * 0xff51afd7ed558ccd) & m
    h = ((h ^ h >> 33) * 0xc4ceb9fe1a85ec53) & m
    h = (h ^ h >> 33) or 1
    for i in range(8):
        key, count, at = struct.unpack_from(
            "<QI4xq", data, 24 + 24 * ((h + i) & (slots - 1)))
        if key == h and time.time() - at <= window:
            return count
    return 0


def two_hosts(t, conn):
    """hosts a and b, user u of D made on a, and their bridges started"""
    a = host(t, "a", conn)
    b = host(t, "b", conn)
    t.root = a
    vadmin(t, "adddomain", D, input="pm-Secret-1\n")
    vadmin(t, "adduser", f"u@{D}", "--hash", H1)
    return a, b, share(t, a), share(t, b)


def test_grant_on_one_host_relays_through_another(t):
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a, b, sa, sb = two_hosts(t, conn)
        try:
            assert relay(t, b).startswith("553 5.7.1"), "relayed before"
            lines, _ = pop(t, a, f"u@{D}", PW)
            assert lines[2].startswith("+OK logged in"), lines
            t0 = time.monotonic()
            got = os.path.join(b, "open-smtp", CLIENT)
            helpers.wait_for("the grant on host b",
                             lambda: os.path.exists(got), 10)
            took = time.monotonic() - t0
            assert took < 1.0, f"the grant took {took:.2f} s to reach b"
            want = os.lstat(os.path.join(a, "open-smtp", CLIENT)).st_mtime
            assert int(os.lstat(got).st_mtime) == int(want)
            assert relay(t, b).startswith("250 "), "not relayed after"
            # the echo of b applying it changed nothing: one row, a's
            time.sleep(0.3)
            assert pg.sql("SELECT ip, host FROM grants") == [
                [CLIENT, "a.test"]]
            # a host that starts later catches up
            c = host(t, "c", conn)
            sc = share(t, c)
            halt(sc)
            assert os.path.exists(os.path.join(c, "open-smtp", CLIENT))
            assert "1 grant " in said(sc), said(sc)
        finally:
            halt(sa)
            halt(sb)


def pop_tcp(port, user, pw):
    """one POP3 session to 127.0.0.1:port: the replies, and the seconds
    the answer to PASS took"""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        f = c.makefile("rb")
        lines = [f.readline().decode()]
        if not lines[0].startswith("+OK"):
            return lines, 0.0
        c.sendall(f"USER {user}\r\n".encode())
        lines.append(f.readline().decode())
        t0 = time.monotonic()
        c.sendall(f"PASS {pw}\r\n".encode())
        lines.append(f.readline().decode())
        took = time.monotonic() - t0
        c.sendall(b"QUIT\r\n")
        lines.append(f.readline().decode())
        return lines, took


def test_failures_spread_over_three_hosts_slow_all_three(t):
    from test_pop3d import server
    with helpers.Postgres(t) as pg, contextlib.ExitStack() as stack:
        conn = pg.createdb("facteur")
        roots = [host(t, n, conn) for n in ("a", "b", "c")]
        ports = {}
        for r in roots:
            t.root = r
            put(t, t.path("control", "pop3maxfail"), "3\n", 0o644)
            ports[r] = helpers.free_port()
            put(t, t.path("control", "listen.pop3"),
                f"127.0.0.1:{ports[r]}\n", 0o644)
            put(t, t.path("control", "listen.pop3s"), "", 0o644)
        shares = [share(t, r) for r in roots]
        try:
            for r in roots:
                t.root = r
                t.port = ports[r]
                stack.enter_context(server(t, wait_ports=[ports[r]]))
                ports[r] = t.port
            text = "ip 127.0.0.1"
            took = []
            for i, r in enumerate(roots):
                lines, s = pop_tcp(ports[r], f"nobody@{D}", "wrong")
                assert lines[2].startswith("-ERR [AUTH]"), lines
                took.append(s)
                for other in roots[i + 1:]:
                    helpers.wait_for(
                        "the failure on the next host",
                        lambda o=other: remote_count(o, "pop3", text) >=
                        i + 1, 10)
            # the third failure, on the third host, waited as a third
            # (lib/limit's 250, 500, 1000 ms), not as a first
            assert took[2] >= 0.95, took
            # three failures over three hosts: the address is refused by
            # each (control/pop3maxfail 3), before a word
            for r in roots:
                lines, _ = pop_tcp(ports[r], f"nobody@{D}", "wrong")
                assert lines[0].startswith(
                    "-ERR [SYS/TEMP] too many failed logins from your "
                    "address"), (r, lines)
            rows = pg.sql("SELECT host, count FROM fails WHERE key = "
                          f"'{text}' AND service = 'pop3' ORDER BY host")
            assert rows == [["a.test", "1"], ["b.test", "1"],
                            ["c.test", "1"]], rows
        finally:
            stack.close()
            for p in shares:
                halt(p)


def test_inetd_sessions_add_the_other_hosts_failures(t):
    """a POP3 server run per connection has no table of its own between
    sessions, but adds the other hosts' failures all the same"""
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        roots = [host(t, n, conn) for n in ("a", "b")]
        shares = [share(t, r) for r in roots]
        try:
            lines, err = pop(t, roots[0], f"nobody@{D}", "wrong")
            assert "failures: ip 1 user 1" in err, err
            helpers.wait_for("a's failure on b", lambda: remote_count(
                roots[1], "pop3", "ip " + CLIENT) == 1, 10)
            assert remote_count(roots[1], "pop3", f"user nobody@{D}") == 1
            lines, err = pop(t, roots[1], f"nobody@{D}", "wrong")
            assert "failures: ip 2 user 2" in err, err
            # another address is not slowed anywhere
            lines, err = pop(t, roots[1], f"nobody@{D}", "wrong",
                             ip="192.0.2.11")
            assert "failures: ip 1 user 2" in err, err
        finally:
            for p in shares:
                halt(p)


def test_database_down_servers_go_on_alone(t):
    with helpers.Postgres(t) as pg:
        a, b, sa, sb = two_hosts(t, pg.createdb("facteur"))
        try:
            pg.stop()
            for p in (sa, sb):
                assert p.wait(timeout=20) == 111, said(p)
                assert "lost the account database" in said(p), said(p)
            # the servers never needed it: login, grant, relay, counts
            lines, _ = pop(t, a, f"u@{D}", PW)
            assert lines[2].startswith("+OK logged in"), lines
            assert relay(t, a).startswith("250 ")
            assert relay(t, b).startswith("553 ")
            lines, err = pop(t, a, f"u@{D}", "wrong")
            assert "failures: ip 1 " in err, err
            # back up: a new bridge publishes the grant made meanwhile
            pg.start()
            sb = share(t, b)
            sa = share(t, a)
            helpers.wait_for("the grant made while down, on b",
                             lambda: os.path.exists(
                                 os.path.join(b, "open-smtp", CLIENT)), 10)
            assert relay(t, b).startswith("250 ")
        finally:
            halt(sa)
            halt(sb)


def answers(port):
    """whether a server listens on 127.0.0.1:port"""
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def auth_fail(port):
    """one SMTP session from 127.0.0.1 whose AUTH PLAIN fails: the
    seconds from the AUTH command to its 535"""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
        c.ehlo("c")
        t0 = time.monotonic()
        code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(
            f"\0u@{D}\0wrong".encode()).decode())
        took = time.monotonic() - t0
    assert code == 535, code
    return took


def test_smtp_auth_failures_on_one_host_slow_another(t):
    """mta-smtpd daemons: an address that failed AUTH on host a waits on
    host b as lib/limit's schedule says for a's failures (127.0.0.1 is a
    relay client, to which AUTH is offered in plaintext)"""
    with helpers.Postgres(t) as pg, contextlib.ExitStack() as stack:
        conn = pg.createdb("facteur")
        roots = [host(t, n, conn) for n in ("a", "b")]
        ports = []
        for r in roots:
            t.root = r
            ports.append(helpers.free_port())
            put(t, t.path("control", "listen.smtp"),
                f"127.0.0.1:{ports[-1]}\n", 0o644)
            for name in ("listen.submission", "listen.smtps"):
                put(t, t.path("control", name), "", 0o644)
        shares = [share(t, r) for r in roots]
        try:
            for r, port in zip(roots, ports):
                log = open(os.path.join(t.tmp, f"smtpd-{port}.log"), "wb")
                p = subprocess.Popen([t.bin("mta-smtpd"), "--root", r],
                                     stdout=subprocess.DEVNULL, stderr=log)
                log.close()
                stack.callback(lambda p=p: (p.terminate(), p.wait(30)))
                helpers.wait_for("mta-smtpd", lambda port=port: answers(
                    port), 20)
            for _ in range(3):
                auth_fail(ports[0])
            helpers.wait_for("a's AUTH failures on b", lambda: remote_count(
                roots[1], "smtp", "ip 127.0.0.1") == 3, 10)
            # b's first failure of this address: lib/limit's wait after
            # three failures (1 s) before the check, then the session's
            # own 1 s sleep; alone it would be that 1 s only
            took = auth_fail(ports[1])
            assert took >= 1.9, took
            # counted apart from POP3, as on one host
            assert remote_count(roots[1], "pop3", "ip 127.0.0.1") == 0
        finally:
            stack.close()
            for p in shares:
                halt(p)
            for f in os.listdir(t.tmp):
                if f.startswith("smtpd-"):
                    text = open(os.path.join(t.tmp, f), errors="replace").read()
                    assert "Sanitizer" not in text, text


def test_bridge_prunes_rows_past_their_lifetime(t):
    """grants older than popbeforesmtp and failures older than lib/limit's
    window are deleted; fresh ones kept, and an old grant never applied"""
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = host(t, "a", conn)
        put(t, t.path("control", "popbeforesmtp"), "600\n", 0o644)
        sa = share(t, a)
        halt(sa)
        now = int(time.time())
        pg.sql("INSERT INTO grants VALUES ('192.0.2.30', "
               f"{now - 700}, 'z.test'), ('192.0.2.31', {now - 10}, "
               f"'z.test'); INSERT INTO fails VALUES ('z.test', 'pop3', "
               f"'ip 192.0.2.30', 4, {now - 1000}), ('z.test', 'pop3', "
               f"'ip 192.0.2.31', 2, {now - 10})")
        sa = share(t, a)
        try:
            helpers.wait_for("the old rows pruned", lambda: pg.sql(
                "SELECT count(*) FROM grants") == [["1"]], 10)
            assert pg.sql("SELECT ip FROM grants") == [["192.0.2.31"]]
            assert pg.sql("SELECT key FROM fails") == [["ip 192.0.2.31"]]
            assert os.path.exists(os.path.join(a, "open-smtp", "192.0.2.31"))
            assert not os.path.exists(
                os.path.join(a, "open-smtp", "192.0.2.30"))
            assert remote_count(a, "pop3", "ip 192.0.2.31") == 2
            assert remote_count(a, "pop3", "ip 192.0.2.30") == 0
        finally:
            halt(sa)
