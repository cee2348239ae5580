"""test_facteur - `facteur init`, `facteur doctor` and `facteur run`.

Every test works in its own temporary root. Run as root (as on CI), init
also creates the `facteur` system user and gives it the root's content;
the tests check ownership only then. `run` is started with its output in
files (a pipe nobody reads would stall it) and is always stopped, and
killed if it must be, before the test ends.
"""
import os
import pwd
import re
import shutil
import signal
import ssl
import stat
import subprocess
import time

AS_ROOT = os.geteuid() == 0

DIRS = {
    "control": 0o755,
    "control/domains": 0o700,
    "control/passwd": 0o700,
    "control/tls": 0o700,
    "db": 0o700,
    "domains": 0o700,
    "queue": 0o700,
    "open-smtp": 0o700,
    "log": 0o700,
}
CONTROL_FILES = {
    "me", "listen.smtp", "listen.submission", "listen.smtps", "listen.pop3",
    "listen.pop3s", "relayrules", "mailuser", "assign.cdb", "rcpthosts.cdb",
    "relayrules.cdb",
}
CHECKS = ["layout", "database", "control", "tls", "mailuser", "cdbs",
          "pending", "log"]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def read(path):
    with open(path) as f:
        return f.read()


def snapshot(top):
    """Every path below top with its type, mode, size and mtime."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def san(cert):
    return set(cert.get("subjectAltName", ()))


def cn(cert):
    return [v for rdn in cert["subject"] for k, v in rdn if k == "commonName"]


def test_init_layout(ctx):
    root = ctx.init()
    assert mode(root) == 0o755
    for d, m in DIRS.items():
        p = ctx.path(d)
        assert stat.S_ISDIR(os.lstat(p).st_mode), d
        assert mode(p) == m, f"{d}: {oct(mode(p))}, want {oct(m)}"
    files = {n for n in os.listdir(ctx.path("control"))
             if os.path.isfile(ctx.path("control", n))}
    assert files == CONTROL_FILES, files
    for n in CONTROL_FILES:
        assert mode(ctx.path("control", n)) == 0o644, n
    assert read(ctx.path("control/listen.smtp")) == "127.0.0.1:2525\n"
    assert read(ctx.path("control/listen.submission")) == "127.0.0.1:2587\n"
    assert read(ctx.path("control/listen.smtps")) == "127.0.0.1:2465\n"
    assert read(ctx.path("control/listen.pop3")) == "127.0.0.1:2110\n"
    assert read(ctx.path("control/listen.pop3s")) == "127.0.0.1:2995\n"
    assert read(ctx.path("control/relayrules")) == (
        '127.:allow,RELAYCLIENT=""\n::1:allow,RELAYCLIENT=""\n')
    assert read(ctx.path("control/mailuser")) == "facteur\n"
    me = read(ctx.path("control/me"))
    assert me.endswith("\n") and me.count("\n") == 1 and len(me) > 1
    assert os.path.isfile(ctx.path("db/accounts.sqlite"))
    assert mode(ctx.path("control/tls/key.pem")) == 0o600
    assert mode(ctx.path("control/tls/cert.pem")) == 0o644
    assert sorted(os.listdir(ctx.path("control/tls"))) == [
        "cert.pem", "key.pem"]
    if AS_ROOT:
        pw = pwd.getpwnam("facteur")
        assert pw.pw_uid != 0
        assert os.lstat(root).st_uid == 0
        for d, _, fs in os.walk(root):
            for n in fs + ([] if d == root else [""]):
                p = os.path.join(d, n)
                assert os.lstat(p).st_uid == pw.pw_uid, p


def test_init_summary_and_default_ports(ctx):
    root = os.path.join(ctx.tmp, "prod")
    p = ctx.run("facteur", "init", "--root", root, "--hostname",
                "mx.example.test", root=False, check=0)
    assert f"root in {root}" in p.out
    assert "vadmin adddomain example.test" in p.out
    assert "0.0.0.0:25 [::]:25" in p.out
    assert p.err == ""
    for name, port in [("smtp", 25), ("submission", 587), ("smtps", 465),
                       ("pop3", 110), ("pop3s", 995)]:
        assert read(os.path.join(root, "control", "listen." + name)) == (
            f"0.0.0.0:{port}\n[::]:{port}\n")
    cert = ssl._ssl._test_decode_cert(
        os.path.join(root, "control/tls/cert.pem"))
    assert san(cert) == {("DNS", "mx.example.test")}


def test_init_hostname(ctx):
    ctx.init("--hostname", "Mail.Example.Test")
    assert read(ctx.path("control/me")) == "mail.example.test\n"
    cert = ssl._ssl._test_decode_cert(ctx.path("control/tls/cert.pem"))
    assert cn(cert) == ["mail.example.test"]
    assert san(cert) == {("DNS", "mail.example.test"), ("DNS", "localhost"),
                         ("IP Address", "127.0.0.1")}
    start = ssl.cert_time_to_seconds(cert["notBefore"])
    end = ssl.cert_time_to_seconds(cert["notAfter"])
    assert abs(start - time.time()) < 300
    assert 3650 * 86400 <= end - start <= 3653 * 86400
    x = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                        ctx.path("control/tls/cert.pem")],
                       capture_output=True, text=True)
    if x.returncode == 0:  # the command is optional; the module is not
        assert "CA:FALSE" in x.stdout
        assert "Digital Signature" in x.stdout
        assert "TLS Web Server Authentication" in x.stdout
        assert "ecdsa-with-SHA256" in x.stdout
        assert "prime256v1" in x.stdout or "P-256" in x.stdout


def test_init_bad_hostname(ctx):
    root = os.path.join(ctx.tmp, "r")
    p = ctx.run("facteur", "init", "--root", root, "--hostname", "a/b",
                root=False, check=1)
    assert p.err.startswith("facteur: ") and p.err.count("\n") == 1
    assert not os.path.exists(root)


def test_init_existing_root(ctx):
    root = ctx.init()
    before = snapshot(root)
    time.sleep(0.05)
    p = ctx.run("facteur", "init", "--root", root, "--dev", root=False,
                check=1)
    assert p.err == (f"facteur: {root} already holds a Facteur root; "
                     "nothing changed\n")
    assert p.out == ""
    assert snapshot(root) == before


def test_init_half_made_is_reported(ctx):
    root = os.path.join(ctx.tmp, "r")
    os.mkdir(root)
    with open(os.path.join(root, "db"), "w"):
        pass
    p = ctx.run("facteur", "init", "--root", root, root=False, check=111)
    assert p.err.startswith(f"facteur: cannot make {root}/db: ")
    assert "partly made" in p.err and p.err.count("\n") == 1
    # the half-made root is refused from now on, not silently finished
    p = ctx.run("facteur", "init", "--root", root, root=False, check=1)


def test_help(ctx):
    for args in (["--help"], ["init", "--help"], ["run", "-h"]):
        p = ctx.run("facteur", *args, root=False, check=0)
        assert p.out.startswith("usage: facteur init"), p.out
        assert p.err == ""


def test_usage_errors(ctx):
    cases = [
        (["--bogus"], "facteur: unknown option --bogus"),
        (["init", "--bogus"], "facteur: unknown option --bogus"),
        (["doctor", "--bogus"], "facteur: unknown option --bogus"),
        (["run", "--bogus"], "facteur: unknown option --bogus"),
        (["init", "--hostname"], "facteur: --hostname needs a name"),
        (["frobnicate"], "facteur: unknown command frobnicate"),
        ([], "facteur: no command given"),
    ]
    for args, want in cases:
        p = ctx.run("facteur", *args, "--root", os.path.join(ctx.tmp, "x"),
                    root=False, check=2)
        lines = p.err.splitlines()
        assert lines[0] == want, (args, p.err)
        assert lines[1].startswith("usage: facteur"), (args, p.err)
        assert p.out == ""
    assert not os.path.exists(os.path.join(ctx.tmp, "x"))


def doctor_lines(p):
    lines = p.out.splitlines()
    assert [re.match(r"(ok|warn|FAIL) (\w+)", l).group(2)
            for l in lines] == CHECKS, p.out
    for l in lines:
        assert re.fullmatch(r"ok \w+|(warn|FAIL) \w+: \S.*", l), l
    return {re.match(r"\S+ (\w+)", l).group(1): l for l in lines}


def test_doctor_fresh(ctx):
    ctx.init()
    p = ctx.run("facteur", "doctor", check=0)
    lines = doctor_lines(p)
    assert not any(l.startswith("FAIL") for l in lines.values()), p.out
    assert p.err == ""


def test_doctor_domains_mode(ctx):
    ctx.init()
    os.chmod(ctx.path("domains"), 0o755)
    p = ctx.run("facteur", "doctor", check=1)
    lines = doctor_lines(p)
    assert lines["layout"].startswith("FAIL layout: "), p.out
    assert "domains" in lines["layout"] and "chmod 700" in lines["layout"]
    assert lines["database"] == "ok database"


def test_doctor_bad_control(ctx):
    ctx.init()
    with open(ctx.path("control/databytes"), "w") as f:
        f.write("10M\n")
    p = ctx.run("facteur", "doctor", check=1)
    lines = doctor_lines(p)
    assert lines["control"].startswith("FAIL control: "), p.out
    assert "databytes" in lines["control"]
    os.unlink(ctx.path("control/databytes"))
    for name, value in [("passwordscheme", "md5"), ("listen.smtp", "nope"),
                        ("remoteport", "70000")]:
        with open(ctx.path("control", name), "w") as f:
            f.write(value + "\n")
        p = ctx.run("facteur", "doctor", check=1)
        line = doctor_lines(p)["control"]
        assert line.startswith("FAIL control: ") and name in line, p.out
        os.unlink(ctx.path("control", name))
    with open(ctx.path("control/listen.smtp"), "w") as f:
        f.write("[::1]:25\n127.0.0.1:25\n")
    ctx.run("facteur", "doctor", check=0)


def test_doctor_missing_pieces(ctx):
    ctx.init()
    os.unlink(ctx.path("control/assign.cdb"))
    os.unlink(ctx.path("control/tls/key.pem"))
    p = ctx.run("facteur", "doctor", check=1)
    lines = doctor_lines(p)
    assert lines["cdbs"].startswith("FAIL cdbs: ") and "vadmin rebuild" in \
        lines["cdbs"]
    assert lines["tls"].startswith("FAIL tls: ")


def test_doctor_pending(ctx):
    import sqlite3
    ctx.init()
    db = sqlite3.connect(ctx.path("db/accounts.sqlite"))
    with db:
        db.execute("INSERT INTO pending (kind, arg) VALUES ('global', '')")
    db.close()
    p = ctx.run("facteur", "doctor", check=0)
    assert doctor_lines(p)["pending"] == (
        "warn pending: an interrupted vadmin change is unfinished; "
        "run vadmin rebuild"), p.out


def start_run(ctx, exe=None):
    out = open(os.path.join(ctx.tmp, "run.out"), "wb")
    err = open(os.path.join(ctx.tmp, "run.err"), "wb")
    env = dict(os.environ)
    env.pop("FACTEUR_ROOT", None)
    p = subprocess.Popen([exe or ctx.bin("facteur"), "run", "--root",
                          ctx.root], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=err, env=env)
    out.close()
    err.close()
    return p


def stop_run(p):
    if p.poll() is None:
        p.kill()
        p.wait(timeout=10)


def wait_for(what, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(0.05)
    return what()


def log(ctx):
    try:
        return read(ctx.path("log/current"))
    except FileNotFoundError:
        return ""


def test_run(ctx):
    ctx.init()
    old = ctx.path("open-smtp", "192.0.2.1")
    fresh = ctx.path("open-smtp", "192.0.2.2")
    dot = ctx.path("open-smtp", ".192.0.2.3")
    for n in (old, fresh, dot):
        open(n, "w").close()
    back = time.time() - 4 * 3600
    os.utime(old, (back, back))
    os.utime(dot, (back, back))
    p = start_run(ctx)
    try:
        tag = f"facteur[{p.pid}]: "
        assert wait_for(lambda: tag in log(ctx) and not os.path.exists(old)), (
            log(ctx))
        assert os.path.exists(fresh) and os.path.exists(dot)
        assert f"{tag}no services built yet" in log(ctx) or \
            f"{tag}started " in log(ctx)
        assert "expired 1 POP-before-SMTP grant" in log(ctx)
        line = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z "
                          r"[\w-]+\[\d+\]: .*")
        for l in log(ctx).splitlines():
            assert line.fullmatch(l), l
        if AS_ROOT:
            st = os.lstat(ctx.path("log/current"))
            assert st.st_uid == pwd.getpwnam("facteur").pw_uid
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=5) == 0
    finally:
        stop_run(p)
    assert f"facteur[{p.pid}]: stopping" in log(ctx)
    assert read(os.path.join(ctx.tmp, "run.out")) == log(ctx)
    assert read(os.path.join(ctx.tmp, "run.err")) == ""


FAKE_SEND = """#!/bin/sh
echo "hello $*"
echo "2001-02-03T04:05:06.000007Z mta-send[$$]: already stamped"
printf 'no newline'
exec sleep 60
"""
FAKE_POP3D = """#!/bin/sh
echo "pop3d gives up" >&2
exit 3
"""


def test_run_supervises(ctx):
    ctx.init()
    bindir = os.path.join(ctx.tmp, "bin")
    os.mkdir(bindir)
    os.chmod(bindir, 0o755)
    exe = os.path.join(bindir, "facteur")
    shutil.copy(ctx.bin("facteur"), exe)
    for name, text in [("mta-send", FAKE_SEND), ("pop3d", FAKE_POP3D)]:
        with open(os.path.join(bindir, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(bindir, name), 0o755)
    p = start_run(ctx, exe)
    try:
        tag = f"facteur[{p.pid}]: "
        assert wait_for(lambda: f"{tag}restarting pop3d in 2 s" in log(ctx)), (
            log(ctx))
        text = log(ctx)
        m = re.search(re.escape(tag) + r"started mta-send pid (\d+)", text)
        assert m, text
        send = int(m.group(1))
        assert f"mta-send[{send}]: hello --root {ctx.root}\n" in text
        assert f"2001-02-03T04:05:06.000007Z mta-send[{send}]: already " \
               f"stamped\n" in text
        assert re.search(r"pop3d\[\d+\]: pop3d gives up\n", text)
        assert f"{tag}pop3d exited status 3\n" in text
        assert f"{tag}restarting pop3d in 1 s\n" in text
        assert "mta-smtpd" not in text
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=5) == 0
    finally:
        stop_run(p)
    text = log(ctx)
    assert f"mta-send[{send}]: no newline\n" in text
    assert f"{tag}mta-send exited on signal 15\n" in text
    try:
        os.kill(send, 0)
        assert False, f"mta-send {send} survived facteur run"
    except ProcessLookupError:
        pass
