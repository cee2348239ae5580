"""test_doctor_net - `facteur doctor`'s checks tls, control (the syntax of
every control file, by file and line), listen and mx.

tls: a certificate made a year ago for one day (openssl under
libfaketime) is a FAIL naming the file; a key of another pair is a FAIL.
control: a number, a listen line, a relay rule that do not parse are
FAILs naming the file and the line. listen: with nothing on the listen
addresses a warning, with a fake SMTP server (helpers.MX) on the
listen.smtp port ok, with a server that greets with something else a
FAIL; with facteur run started, its own services greet (smtps and pop3s
under TLS). mx: dnsmasq on a free loopback port, named in control/resolvers,
answers for hosted domains whose MX is control/me or a host with the
address of listen.smtp (ok), another host (warn naming it), or nothing at
all (FAIL).
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

from helpers import MX, dnsmasq, mute_resolver
from test_facteur import free_listen, start_run, stop_run, wait_for
from vadmin_util import give

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
ME = "mail.example.test"
LISTENS = ("smtp", "submission", "smtps", "pop3", "pop3s")


def doctor(ctx, *args, check=None):
    """{check: line} of the text report"""
    p = ctx.run("facteur", "doctor", *args, check=check)
    return {re.match(r"\S+ ([\w-]+)", l).group(1): l
            for l in p.out.splitlines() if not l.startswith("fixed ")}


def js(ctx, check=None):
    p = ctx.run("facteur", "doctor", "--json", check=check)
    return {o["check"]: o for o in json.loads(p.out)}


def write(ctx, name, text, mode=0o644):
    path = ctx.path("control", name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    give(ctx, path)
    return path


def openssl(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   env=e)


def new_pair(ctx, days, faketime=None, cn=ME):
    """a self-signed pair written over control/tls"""
    key, cert = ctx.path("control/tls/key.pem"), \
        ctx.path("control/tls/cert.pem")
    env = {"LD_PRELOAD": FAKETIME, "FAKETIME": faketime} if faketime \
        else None
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
            cert, "-days", str(days), "-subj", f"/CN={cn}",
            "-addext", f"subjectAltName=DNS:{cn}", env=env)
    os.chmod(key, 0o600)
    give(ctx, key)
    give(ctx, cert)
    return key, cert


def test_doctor_tls_fresh(ctx):
    """init's certificate: in date, matches, covers control/me; only
    self-signed is said, as a warning"""
    ctx.init("--hostname", ME)
    line = doctor(ctx)["tls"]
    assert line.startswith("warn tls: ") and "self-signed" in line, line
    assert "cert.pem" in line and "expire" not in line, line
    assert "not " + ME not in line, line
    write(ctx, "me", "other.example.test\n")
    line = doctor(ctx)["tls"]
    assert f"covers {ME}, localhost, not other.example.test" in line, line


def test_doctor_tls_expired(ctx):
    ctx.init("--hostname", ME)
    key, cert = new_pair(ctx, 1, faketime="-400d")
    line = doctor(ctx, check=1)["tls"]
    assert line.startswith("FAIL tls: ") and cert in line, line
    assert re.search(r"expired \d+ days ago", line), line
    # the same pair made now, for ten days: a warning
    new_pair(ctx, 10)
    line = doctor(ctx)["tls"]
    assert line.startswith("warn tls: "), line
    assert re.search(r"cert\.pem expires in (9|10) days", line), line


def test_doctor_tls_key_mismatch(ctx):
    ctx.init("--hostname", ME)
    key = ctx.path("control/tls/key.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", key)
    os.chmod(key, 0o600)
    give(ctx, key)
    o = js(ctx, check=1)["tls"]
    assert o["status"] == "FAIL", o
    assert f"{key} is not the key of " in o["message"], o
    assert o["fix"].startswith("install the matching pair;"), o


def test_doctor_control_lines(ctx):
    ctx.init()
    line = doctor(ctx)["control"]
    assert line == "ok control", line
    write(ctx, "databytes", "10M\n")
    line = doctor(ctx, check=1)["control"]
    assert line.startswith("FAIL control: control/databytes:1: not a "
                           'number: "10M"'), line
    os.unlink(ctx.path("control/databytes"))
    write(ctx, "listen.smtp", "# the first\n\n127.0.0.1:2525\n1.2.3.4\n"
          "[::1]:22\n127.0.0.1:25\n")
    write(ctx, "timeoutsmtpd", "\n\n0\n")
    o = js(ctx, check=1)["control"]
    assert o["status"] == "FAIL", o
    assert "control/timeoutsmtpd:3: 0 is outside 1-" in o["message"], o
    assert ('control/listen.smtp:4: not ADDR:PORT or [IPV6]:PORT: '
            '"1.2.3.4"') in o["message"], o
    assert "listen.smtp:3" not in o["message"], o
    # a privileged port no mail service uses is never bound (lib/listen)
    assert ('control/listen.smtp:5: "[::1]:22" is a port below 1024 that '
            'no mail service uses') in o["message"], o
    assert "listen.smtp:6" not in o["message"], o


def test_doctor_control_ranges(ctx):
    """a number outside its range (lib/ctl's table, which every program
    reads through) is named with the value the programs use instead"""
    ctx.init()
    write(ctx, "concurrencyremote", "5000\n")
    write(ctx, "pop3plaintext", "2\n")
    write(ctx, "remoteport", "70000\n")
    write(ctx, "queuelifetime", "0\n")     # in range: bounce at once
    o = js(ctx, check=1)["control"]
    assert o["status"] == "FAIL", o
    m = o["message"]
    assert ("control/concurrencyremote:1: 5000 is outside 1-1000 (the "
            "programs use 1000)") in m, m
    assert ("control/pop3plaintext:1: 2 is outside 0-1 (the programs "
            "use 0)") in m, m
    assert ("control/remoteport:1: 70000 is outside 1-65535, so "
            "mta-remote defers every message") in m, m
    assert "queuelifetime" not in m, m
    for name in ("concurrencyremote", "pop3plaintext", "remoteport"):
        os.unlink(ctx.path("control", name))
    assert doctor(ctx)["control"] == "ok control"


def test_doctor_control_rules_resolvers(ctx):
    ctx.init()
    write(ctx, "relayrules", '127.:allow,RELAYCLIENT=""\n\n10.1.x:allow\n')
    write(ctx, "resolvers", "127.0.0.1:53\nnot-an-ip\n")
    write(ctx, "passwordscheme", "md5\n")
    line = doctor(ctx, check=1)["control"]
    assert ("control/relayrules:3: not an IPv4 or IPv6 address, prefix or "
            'range: "10.1.x:allow"; fix it and run mta-rules') in line, line
    assert 'control/resolvers:2: not IP[:PORT] or [IPV6]:PORT: ' \
        '"not-an-ip"' in line, line
    assert 'control/passwordscheme:1: not yescrypt or sha512crypt: "md5"' \
        in line, line


def test_doctor_control_smtproutes(ctx):
    """smtproutes by mta-remote's parser (lib/route): a bad line is named
    by its number in the file, comments and blank lines counted"""
    ctx.init()
    write(ctx, "smtproutes", "# routes\n\nexample.net:[192.0.2.1]:2525\n"
          ".example.org:\n")
    assert doctor(ctx)["control"] == "ok control"
    write(ctx, "smtproutes", "# routes\n\nexample.net:[192.0.2.1]:2525\n"
          "example.com:mx.example.com:99999\n")
    line = doctor(ctx, check=1)["control"]
    assert ('control/smtproutes:4: not DOMAIN:HOST[:PORT]: '
            '"example.com:mx.example.com:99999"') in line, line
    write(ctx, "smtproutes", "no-colon-here\n")
    o = js(ctx, check=1)["control"]
    assert o["status"] == "FAIL", o
    assert "control/smtproutes:1:" in o["message"], o


def only_smtp(ctx, addr):
    """listen.smtp is ADDR, every other listen file empty (off)"""
    for k in LISTENS:
        write(ctx, "listen." + k, addr + "\n" if k == "smtp" else "")


def test_doctor_listen(ctx):
    ctx.init()
    mx = MX()
    try:
        only_smtp(ctx, f"127.0.0.1:{mx.port}")
        assert doctor(ctx)["listen"] == "ok listen"
        assert mx.conns, "doctor did not connect"
        mx.mode = "greet421"
        line = doctor(ctx, check=1)["listen"]
        assert line.startswith(f"FAIL listen: 127.0.0.1:{mx.port} (smtp) "
                               'greets with "421 4.3.2'), line
        # smtps shakes hands first: a server in the clear fails it
        mx.mode = "accept"
        write(ctx, "listen.smtps", f"127.0.0.1:{mx.port}\n")
        line = doctor(ctx, check=1)["listen"]
        assert line.startswith(f"FAIL listen: 127.0.0.1:{mx.port} (smtps) "
                               "accepts connections but sent no "
                               "greeting"), line
        write(ctx, "listen.smtps", "")
    finally:
        mx.close()
    # the port is free now: nothing listens, which is a warning
    o = js(ctx)["listen"]
    assert o["status"] == "warn", o
    assert o["message"] == (f"nothing listening on 127.0.0.1:{mx.port} "
                            "(is facteur run started?)"), o


def test_doctor_mx(ctx):
    """ours.test: MX control/me, ok; byaddr.test: MX a host whose address
    is listen.smtp's; else.test: MX another host, warn naming it;
    none.test: no MX, no A, FAIL; plain.test: no MX, an A elsewhere,
    warn"""
    ctx.init("--hostname", ME)
    for dom in ("ours.test", "byaddr.test"):
        ctx.run("vadmin", "adddomain", dom, "postmaster-pw-1", check=0)
    records = [f"--mx-host=ours.test,{ME},10",
               "--mx-host=byaddr.test,mx.byaddr.test,10",
               "--host-record=mx.byaddr.test,127.0.0.1",
               "--mx-host=else.test,mx.elsewhere.test,10",
               "--host-record=mx.elsewhere.test,192.0.2.1",
               "--host-record=plain.test,192.0.2.2"]
    with dnsmasq(ctx, "--local=/test/", *records):
        # --dev: listen.smtp is 127.0.0.1:2525
        assert doctor(ctx)["mx"] == "ok mx"
        ctx.run("vadmin", "adddomain", "else.test", "postmaster-pw-1",
                check=0)
        line = doctor(ctx)["mx"]
        assert line == ("warn mx: the MX of else.test is mx.elsewhere.test, "
                        f"not this host; make it {ME}, or make sure that "
                        "host relays to this one"), line
        ctx.run("vadmin", "aliasdomain", "add", "none.test", "ours.test",
                check=0)
        ctx.run("vadmin", "adddomain", "plain.test", "postmaster-pw-1",
                check=0)
        o = js(ctx, check=1)["mx"]
        assert o["status"] == "FAIL", o
        assert "none.test has no MX and no address record" in \
            o["message"], o
        assert "plain.test has no MX and its address is not this " \
            "host's" in o["message"], o
        assert "else.test" in o["message"], o
        assert "ours.test" not in o["message"], o
        assert "byaddr.test" not in o["message"], o
        # listen.smtp on another address: byaddr.test is no longer ours
        write(ctx, "listen.smtp", "127.0.0.2:2525\n")
        line = doctor(ctx, check=1)["mx"]
        assert "the MX of byaddr.test is mx.byaddr.test" in line, line
        assert "ours.test" not in line, line


def answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_doctor_listen_run(ctx):
    """facteur run's own services: smtp and pop3 greet in the clear, smtps
    and pop3s after a TLS handshake; stopped, nothing listens (warn)"""
    ctx.init()
    ports = free_listen(ctx)
    p = start_run(ctx)
    try:
        assert wait_for(lambda: all(answers(n) for n in ports.values()),
                        timeout=20), ports
        line = doctor(ctx)["listen"]
        assert line == "ok listen", line
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        stop_run(p)
    line = doctor(ctx)["listen"]
    assert line.startswith("warn listen: nothing listening on "), line
    for n in ports.values():
        assert f"127.0.0.1:{n}" in line, line


def many_domains(ctx, n):
    """n domains d000.test... put straight into the database (quicker than
    n vadmin adddomain) and into the tables; their names"""
    import sqlite3
    names = [f"d{i:03d}.test" for i in range(n)]
    db = sqlite3.connect(ctx.path("db/accounts.sqlite"))
    with db:
        db.executemany("INSERT INTO domains (name, created) VALUES (?, 0)",
                       [(d,) for d in names])
    db.close()
    for name in os.listdir(ctx.path("db")):     # -wal, -shm made by us
        give(ctx, ctx.path("db", name))
    ctx.run("vadmin", "rebuild", check=0)
    return names


def timing(p, name):
    """the milliseconds --timing gave check NAME"""
    m = re.search(rf"^facteur: timing {re.escape(name)} (\d+)$", p.err,
                  re.M)
    assert m, p.err
    return int(m.group(1))


def test_doctor_mx_many_in_parallel(ctx):
    """250 domains (more than lib/dns keeps in flight at once) whose MX
    hosts have the address of listen.smtp, and one whose MX is elsewhere:
    every answer arrives (asked in parallel), only that one is named"""
    ctx.init("--hostname", ME)
    names = many_domains(ctx, 250)
    records = ["--local=/test/", "--mx-host=zz.test,mx.elsewhere.test,10",
               "--host-record=mx.elsewhere.test,192.0.2.1"]
    for d in names:
        records += [f"--mx-host={d},mx.{d},10",
                    f"--host-record=mx.{d},127.0.0.1"]
    with dnsmasq(ctx, *records):
        ctx.run("vadmin", "adddomain", "zz.test", "postmaster-pw-1",
                check=0)
        p = ctx.run("facteur", "doctor", "--timing", check=0)
        line = [l for l in p.out.splitlines() if l.startswith(
            ("ok mx", "warn mx", "FAIL mx"))][0]
        assert line == ("warn mx: the MX of zz.test is mx.elsewhere.test, "
                        f"not this host; make it {ME}, or make sure that "
                        "host relays to this one"), line
        assert timing(p, "mx") < 3000, p.err


def test_doctor_mx_silent_resolver(ctx):
    """a resolver that takes the questions and never answers: the check
    ends at its 3 s deadline, whatever the number of domains, and counts
    every domain as unchecked (timeout), naming the first three"""
    ctx.init("--hostname", ME)
    names = many_domains(ctx, 250)
    with mute_resolver(ctx):
        t0 = time.monotonic()
        p = ctx.run("facteur", "doctor", check=0)
        took = time.monotonic() - t0
        line = [l for l in p.out.splitlines() if " mx" in l][0]
        assert line == ("warn mx: 250 domains unchecked (timeout): no DNS "
                        f"answer within 3 s ({', '.join(names[:3])}, ...); "
                        "check control/resolvers, or run doctor again"), line
        # the 3 s, and the rest of doctor beside them (a sanitizer build)
        assert 2.9 <= took < 8, took
        o = js(ctx)["mx"]
        assert o["status"] == "warn", o
        assert o["fix"] == "check control/resolvers, or run doctor again", o
