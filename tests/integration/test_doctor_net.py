"""test_doctor_net - `facteur doctor`'s checks tls, control (the syntax of
every control file, by file and line) and listen.

tls: a certificate made a year ago for one day (openssl under
libfaketime) is a FAIL naming the file; a key of another pair is a FAIL.
control: a number, a listen line, a relay rule that do not parse are
FAILs naming the file and the line. listen: with nothing on the listen
addresses a warning, with a fake SMTP server (helpers.MX) on the
listen.smtp port ok, with a server that greets with something else a
FAIL.
"""
import contextlib
import json
import os
import re
import subprocess
import time

from helpers import MX, free_dns_port
from vadmin_util import give

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
DNSMASQ = "/usr/sbin/dnsmasq"
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
    write(ctx, "listen.smtp", "# the first\n\n127.0.0.1:2525\n1.2.3.4\n")
    write(ctx, "timeoutsmtpd", "\n\n0\n")
    o = js(ctx, check=1)["control"]
    assert o["status"] == "FAIL", o
    assert "control/timeoutsmtpd:3: 0 is outside 1-" in o["message"], o
    assert ('control/listen.smtp:4: not ADDR:PORT or [IPV6]:PORT: '
            '"1.2.3.4"') in o["message"], o
    assert "listen.smtp:3" not in o["message"], o


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
    finally:
        mx.close()
    # the port is free now: nothing listens, which is a warning
    o = js(ctx)["listen"]
    assert o["status"] == "warn", o
    assert o["message"] == (f"nothing listening on 127.0.0.1:{mx.port} "
                            "(is facteur run started?)"), o
