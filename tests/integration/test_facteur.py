"""test_facteur - `facteur init`, `facteur doctor` and `facteur run`.

Every test works in its own temporary root. Run as root (as on CI), init
also creates the `facteur` system user and gives it the root's content;
the tests check ownership only then. `run` is started with its output in
files (a pipe nobody reads would stall it) and is always stopped, and
killed if it must be, before the test ends.
"""
import os
import poplib
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import time

from helpers import free_port

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
    "relayrules.cdb", "srssecret",
}
CHECKS = ["layout", "database", "control", "tls", "listen", "mx", "dkim",
          "srs",
          "mailuser", "services", "cdbs", "domains", "cdb-age", "passwords",
          "pending",
          "maildirs", "log", "queue", "relay"]


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
    root = ctx.init(machine_dns=True)
    assert mode(root) == 0o755
    for d, m in DIRS.items():
        p = ctx.path(d)
        assert stat.S_ISDIR(os.lstat(p).st_mode), d
        assert mode(p) == m, f"{d}: {oct(mode(p))}, want {oct(m)}"
    files = {n for n in os.listdir(ctx.path("control"))
             if os.path.isfile(ctx.path("control", n))}
    assert files == CONTROL_FILES, files
    for n in CONTROL_FILES - {"srssecret"}:
        assert mode(ctx.path("control", n)) == 0o644, n
    # the SRS key: secret, one line of 32 random bytes in base64
    assert mode(ctx.path("control/srssecret")) == 0o600
    key = read(ctx.path("control/srssecret"))
    assert len(key) == 45 and key.endswith("=\n"), key
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


def test_init_bad_mailuser(ctx):
    """A name useradd would refuse, or read as an option, is a usage
    error before anything is made."""
    root = os.path.join(ctx.tmp, "r")
    for bad in ["-o", "Root", "9lives", "a b", "a/b", "x" * 33, ""]:
        p = ctx.run("facteur", "init", "--root", root, "--mailuser", bad,
                    root=False, check=2)
        assert p.err.startswith("facteur: --mailuser: "), p.err
        assert "\nusage: facteur init" in p.err, p.err
        assert not os.path.exists(root)
    # a user that exists with uid 0: facteur run would refuse it
    p = ctx.run("facteur", "init", "--root", root, "--mailuser", "root",
                root=False, check=1)
    assert p.err == ("facteur: --mailuser: root has uid or gid 0; the "
                     "services never run as root: name another user\n")
    assert not os.path.exists(root)


def init_lock():
    """The lock facteur init holds around useradd (/run/facteur-init.lock):
    taken here around userdel, so that removing the test's user never
    races another test's init making `facteur` on a fresh machine."""
    import fcntl
    f = open("/run/facteur-init.lock", "a")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def test_init_parallel_inits_make_one_user(ctx):
    """Four inits at once, as root, for a mail user that does not exist:
    one useradd, one /etc/passwd entry, and every root given to that
    entry's uid (without init's lock two useradds could both succeed and
    one root was left to a uid /etc/passwd no longer had)."""
    if not AS_ROOT:
        print("SKIP: needs root (useradd)")
        return
    user = "fctest" + os.urandom(4).hex()
    roots = [os.path.join(ctx.tmp, f"r{i}") for i in range(4)]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    env.pop("FACTEUR_ROOT", None)
    try:
        procs = [subprocess.Popen(
            [ctx.bin("facteur"), "init", "--root", r, "--dev",
             "--mailuser", user], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env) for r in roots]
        outs = [(p.communicate(timeout=120), p.returncode) for p in procs]
        for (out, err), rc in outs:
            assert rc == 0, err.decode(errors="replace")
        created = sum(f"mail user   {user} (created)" in out.decode()
                      for (out, _), _ in outs)
        assert created == 1, [o.decode() for (o, _), _ in outs]
        with open("/etc/passwd") as f:
            entries = [l for l in f if l.startswith(user + ":")]
        assert len(entries) == 1, entries
        pw = pwd.getpwnam(user)
        assert pw.pw_uid != 0
        for r in roots:
            assert read(os.path.join(r, "control/mailuser")) == user + "\n"
            for d in ["queue", "domains", "db", "log", "control/tls"]:
                st = os.stat(os.path.join(r, d))
                assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), (
                    r, d, st.st_uid, pw.pw_uid)
    finally:
        with init_lock():
            subprocess.run(["userdel", user], capture_output=True)
            subprocess.run(["groupdel", user], capture_output=True)


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
    assert [re.match(r"(ok|warn|FAIL) ([\w-]+)", l).group(2)
            for l in lines] == CHECKS, p.out
    for l in lines:
        assert re.fullmatch(r"ok [\w-]+|(warn|FAIL) [\w-]+: \S.*", l), l
    return {re.match(r"\S+ ([\w-]+)", l).group(1): l for l in lines}


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


def test_doctor_services_the_mail_user_cannot_execute(ctx):
    """facteur run starts its services from its own directory as the
    mail user; doctor must say beforehand which one could not start and
    how to fix it: programs under a 0700 directory of root's, then a
    program without x bits. The good layout has no such finding."""
    if os.geteuid() != 0:
        print("SKIP: needs root (the services run as another user)")
        return
    ctx.init()
    p = ctx.run("facteur", "doctor", check=0)
    assert doctor_lines(p)["services"] == "ok services", p.out
    closed = os.path.join(ctx.tmp, "closed")
    os.mkdir(closed, 0o700)
    bindir = os.path.join(closed, "bin")
    shutil.copytree(ctx.bindir, bindir, symlinks=True)
    real = ctx.bindir
    ctx.bindir = bindir
    try:
        p = ctx.run("facteur", "doctor", check=1)
        line = doctor_lines(p)["services"]
        assert line.startswith("FAIL services: "), p.out
        for prog in ("mta-smtpd", "mta-send", "pop3d"):
            assert (f"cannot execute {bindir}/{prog} as facteur: "
                    "Permission denied") in line, line
        assert f"run chmod o+x {closed}" in line, line
        # the fix it names is enough
        os.chmod(closed, 0o711)
        os.chmod(os.path.join(bindir, "mta-send"), 0o600)
        p = ctx.run("facteur", "doctor", check=1)
        line = doctor_lines(p)["services"]
        assert "mta-smtpd" not in line and "pop3d" not in line, line
        assert (f"cannot execute {bindir}/mta-send as facteur: Permission "
                f"denied; run chmod 755 {bindir}/mta-send") in line, line
        os.chmod(os.path.join(bindir, "mta-send"), 0o755)
        p = ctx.run("facteur", "doctor", check=0)
        assert doctor_lines(p)["services"] == "ok services", p.out
    finally:
        ctx.bindir = real


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


def start_run(ctx, exe=None, user=None):
    """facteur run on the root; user: a pwd entry to run it as."""
    out = open(os.path.join(ctx.tmp, "run.out"), "wb")
    err = open(os.path.join(ctx.tmp, "run.err"), "wb")
    env = dict(os.environ)
    env.pop("FACTEUR_ROOT", None)
    kw = {}
    if user:
        kw = {"user": user.pw_uid, "group": user.pw_gid,
              "extra_groups": []}
    p = subprocess.Popen([exe or ctx.bin("facteur"), "run", "--root",
                          ctx.root], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=err, env=env, **kw)
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


def free_listen(ctx, off=()):
    """Every listen.* file of the root on a free loopback port (the fixed
    --dev ports may be taken on a shared machine); KINDs in off get an
    empty file. Returns {kind: port}."""
    ports = {}
    for kind in ("smtp", "submission", "smtps", "pop3", "pop3s"):
        with open(ctx.path("control", "listen." + kind), "w") as f:
            if kind not in off:
                ports[kind] = free_port()
                f.write(f"127.0.0.1:{ports[kind]}\n")
    return ports


def test_run(ctx):
    ctx.init()
    free_listen(ctx)
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


def proc_ids(pid):
    """(uids, gids, groups) of a process, from /proc/PID/status."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            k, _, v = l.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                ids[k] = [int(x) for x in v.split()]
    return ids["Uid"], ids["Gid"], ids["Groups"]


def listening_inodes(port):
    """Socket inodes listening on 127.0.0.1:port (state 0A in
    /proc/net/tcp)."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for l in f:
            w = l.split()
            addr, p = w[1].split(":")
            if int(p, 16) == port and w[3] == "0A" and addr == "0100007F":
                out.add(int(w[9]))
    return out


def socket_inodes(pid):
    out = set()
    d = f"/proc/{pid}/fd"
    for n in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, n))
        except FileNotFoundError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", t)
        if m:
            out.add(int(m.group(1)))
    return out


def started_pids(ctx, tag, name):
    return [int(x) for x in re.findall(re.escape(tag) + "started " + name +
                                       r" pid (\d+)", log(ctx))]


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def smtp_ok(port, tls=False):
    cls = smtplib.SMTP_SSL if tls else smtplib.SMTP
    kw = {"context": tls_ctx()} if tls else {}
    with cls("127.0.0.1", port, timeout=10, **kw) as c:
        code, _ = c.ehlo("client.test")
        assert code == 250
        return c.noop()[0] == 250


def pop3_ok(port, tls=False):
    if tls:
        c = poplib.POP3_SSL("127.0.0.1", port, timeout=10,
                            context=tls_ctx())
    else:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        return c.getwelcome().startswith(b"+OK") and "UIDL" in c.capa()
    finally:
        c.quit()


def wait_up(ctx, tag, ports):
    def up():
        if not (started_pids(ctx, tag, "mta-smtpd") and
                started_pids(ctx, tag, "pop3d")):
            return False
        for port in ports:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
            except OSError:
                return False
        return True
    assert wait_for(up, 30), log(ctx)


def test_run_services_as_mail_user(ctx):
    """facteur run binds every listen.* socket itself, then starts
    mta-smtpd and pop3d as the mail user (as root: the `facteur` user;
    otherwise the caller) with those sockets; they answer, TLS included
    (the key is read as the mail user), a killed service comes back on
    the same sockets, and SIGTERM stops everything."""
    ctx.init()
    ports = free_listen(ctx, off=("submission",))
    want = pwd.getpwnam("facteur").pw_uid if AS_ROOT else os.getuid()
    wgid = pwd.getpwnam("facteur").pw_gid if AS_ROOT else os.getgid()
    p = start_run(ctx)
    pids = []
    try:
        tag = f"facteur[{p.pid}]: "
        wait_up(ctx, tag, ports.values())
        smtpd = started_pids(ctx, tag, "mta-smtpd")[0]
        pop3d = started_pids(ctx, tag, "pop3d")[0]
        pids = [smtpd, pop3d]
        for pid in pids:
            uids, gids, groups = proc_ids(pid)
            assert uids == [want] * 4, (pid, uids)
            assert gids == [wgid] * 4, (pid, gids)
            if AS_ROOT:
                assert groups == [wgid], (pid, groups)
        # the supervisor itself stays what it was started as
        assert proc_ids(p.pid)[0][0] == os.getuid()
        # mta-send, when built, runs as the mail user too, with no sockets
        if os.path.exists(ctx.bin("mta-send")):
            assert wait_for(lambda: started_pids(ctx, tag, "mta-send"), 10)
            send = started_pids(ctx, tag, "mta-send")[0]
            try:
                assert proc_ids(send)[0] == [want] * 4, send
                with open(f"/proc/{send}/environ", "rb") as f:
                    assert b"FACTEUR_LISTEN_FDS=" not in f.read()
            except FileNotFoundError:
                pass    # it ended already; its restart is the same
            assert not re.search(r"mta-send\[\d+\]: .*cannot become",
                                 log(ctx)), log(ctx)
        for kind, pid in (("smtp", smtpd), ("smtps", smtpd),
                          ("pop3", pop3d), ("pop3s", pop3d)):
            lst = listening_inodes(ports[kind])
            assert lst, (kind, ports[kind])
            assert lst & socket_inodes(pid), kind
            # and the supervisor holds the same socket for restarts
            assert lst & socket_inodes(p.pid), kind
        # each service holds only its own listeners
        assert not listening_inodes(ports["pop3"]) & socket_inodes(smtpd)
        assert not listening_inodes(ports["smtp"]) & socket_inodes(pop3d)
        assert smtp_ok(ports["smtp"])
        assert smtp_ok(ports["smtps"], tls=True)
        assert pop3_ok(ports["pop3"])
        assert pop3_ok(ports["pop3s"], tls=True)
        # the sockets came through the environment, each service's own
        for pid, want_env in ((smtpd, rb"smtp=\d+ submission= smtps=\d+"),
                              (pop3d, rb"pop3=\d+ pop3s=\d+")):
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = [e for e in f.read().split(b"\0")
                       if e.startswith(b"FACTEUR_LISTEN_FDS=")]
            assert len(env) == 1 and re.fullmatch(
                b"FACTEUR_LISTEN_FDS=" + want_env, env[0]), env
        # a killed service is started again on the sockets it had
        os.kill(smtpd, signal.SIGKILL)
        assert wait_for(lambda: len(started_pids(ctx, tag,
                                                 "mta-smtpd")) == 2, 15), \
            log(ctx)
        smtpd2 = started_pids(ctx, tag, "mta-smtpd")[1]
        pids.append(smtpd2)
        assert wait_for(lambda: listening_inodes(ports["smtp"]) &
                        socket_inodes(smtpd2), 15)
        assert proc_ids(smtpd2)[0] == [want] * 4
        assert smtp_ok(ports["smtp"])
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        stop_run(p)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            "zombie" in open(f"/proc/{pid}/status").read(), pid
    for kind in ports:
        assert not listening_inodes(ports[kind]), kind
    text = log(ctx)
    # mta-send is judged by its own tests: only ours must be clean here
    mine = [l for l in text.splitlines()
            if re.search(r" (facteur|mta-smtpd|pop3d)\[\d+\]: ", l)]
    assert not [l for l in mine if "cannot" in l], text
    assert "Sanitizer" not in text and "runtime error" not in text, text
    assert f"facteur[{p.pid}]: stopped" in text


def test_run_port_taken(ctx):
    """A port that cannot be bound keeps that service down (retried with
    the restart backoff) and the others running."""
    ctx.init()
    ports = free_listen(ctx, off=("submission", "smtps", "pop3s"))
    hold = socket.socket()
    hold.bind(("127.0.0.1", ports["smtp"]))
    hold.listen()
    p = start_run(ctx)
    try:
        tag = f"facteur[{p.pid}]: "
        assert wait_for(lambda: started_pids(ctx, tag, "pop3d") and
                        "restarting mta-smtpd in 1 s" in log(ctx), 20), \
            log(ctx)
        assert re.search(re.escape(tag) + r"cannot start mta-smtpd: cannot "
                         r"listen on 127\.0\.0\.1:\d+ \(listen\.smtp\)",
                         log(ctx)), log(ctx)
        assert not started_pids(ctx, tag, "mta-smtpd")
        assert pop3_ok(ports["pop3"])
        hold.close()
        assert wait_for(lambda: started_pids(ctx, tag, "mta-smtpd"), 15), \
            log(ctx)
        assert wait_for(lambda: smtp_ok_quiet(ports["smtp"]), 15)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        hold.close()
        stop_run(p)


def smtp_ok_quiet(port):
    try:
        return smtp_ok(port)
    except OSError:
        return False


def test_run_refuses_root_mailuser(ctx):
    if not AS_ROOT:
        print("SKIP: needs root")
        return
    ctx.init()
    free_listen(ctx)
    with open(ctx.path("control/mailuser"), "w") as f:
        f.write("root\n")
    p = ctx.run("facteur", "run", check=111, timeout=30)
    assert "uid 0" in p.err, p.err


def test_run_as_another_user(ctx):
    """Started as a user other than root (here the mail user itself, which
    owns the root's content after init as root), facteur run binds the
    same way and starts the services as that user, with no change."""
    if not AS_ROOT:
        return      # test_run_services_as_mail_user is this case then
    ctx.init()
    ports = free_listen(ctx, off=("submission", "smtps", "pop3s"))
    pw = pwd.getpwnam("facteur")
    p = start_run(ctx, user=pw)
    try:
        tag = f"facteur[{p.pid}]: "
        wait_up(ctx, tag, ports.values())
        assert proc_ids(p.pid)[0] == [pw.pw_uid] * 4
        for name, kind in (("mta-smtpd", "smtp"), ("pop3d", "pop3")):
            pid = started_pids(ctx, tag, name)[0]
            assert proc_ids(pid)[0] == [pw.pw_uid] * 4, name
            assert listening_inodes(ports[kind]) & socket_inodes(pid), name
        assert smtp_ok(ports["smtp"])
        assert pop3_ok(ports["pop3"])
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        stop_run(p)
    assert f"facteur[{p.pid}]: stopped" in log(ctx)
