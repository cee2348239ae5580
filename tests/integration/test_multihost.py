"""Several hosts, one set of accounts, one Maildir tree (issue 16; SPEC.md
"Several hosts"): roots whose control/accountdb names one private
PostgreSQL (helpers.Postgres, stopped by PID) and whose domains/ is one
shared directory, mounted under each root with `mount --bind` when the
tests run as root (as SPEC.md has it: "one tree on shared storage mounted
under every host's root"), else a symbolic link to it (the one link
lib/maildir follows, ROOT/domains). Each root has its own control/me,
which names its Maildir files.

test_two_roots_share_one_maildir (make check): two roots deliver into one
Maildir at once while both recalculate its maildirsize: nothing lost or
doubled, every name unique and naming its host, maildirsize equal to the
files; POP3 on one root is locked out while the other's session holds the
mailbox, then empties it; an account added on one is usable on the other
within a second (vadmin watch).

slow_three_hosts (make check-slow): three roots under `facteur run` on
127.0.0.2, .3 and .4, mail sent to all three over SMTP, read over POP3
from another, one host killed (kill -9 of its whole tree) mid-run and
restarted: its queue delivered, nothing lost, nothing doubled; an account
changed on one host used on another within a second.
"""
import concurrent.futures
import contextlib
import os
import poplib
import re
import signal
import smtplib
import socket
import subprocess
import time

import helpers
from vadmin_util import put, sha512_hash

D = "multi.test"
PW = "user-Secret-1"
H1 = sha512_hash(PW)
PW2 = "user-Secret-2"
H2 = sha512_hash(PW2, "OtherSlt")


def make_host(t, name, conn):
    """a root NAME (facteur init --dev --hostname NAME.test, so control/me
    is NAME.test) on the account database conn"""
    root = os.path.join(t.tmp, name)
    t.run("facteur", "init", "--root", root, "--dev", "--hostname",
          name + ".test", root=False, check=0)
    t.root = root
    t.no_dns()
    put(t, t.path("control", "passwordscheme"), "sha512crypt\n", 0o644)
    put(t, t.path("control", "accountdb"), conn + "\n", 0o600)
    return root


@contextlib.contextmanager
def shared_domains(t, roots):
    """one domains/ tree for every root: a bind mount as root, else a
    symbolic link; the mounts are undone whatever happens"""
    shared = os.path.join(t.tmp, "shared-domains")
    first = os.path.join(roots[0], "domains")
    st = os.stat(first)
    os.mkdir(shared, st.st_mode & 0o7777)
    os.chown(shared, st.st_uid, st.st_gid)
    mounted = []
    try:
        for root in roots:
            dom = os.path.join(root, "domains")
            if os.geteuid() == 0:
                subprocess.run(["mount", "--bind", shared, dom], check=True)
                mounted.append(dom)
            else:
                os.rmdir(dom)
                os.symlink(shared, dom)
        yield shared
    finally:
        for dom in mounted:
            subprocess.run(["umount", dom], check=False)


def vadmin(t, root, *args, check=0, input=None):
    t.root = root
    return t.run("vadmin", *args, check=check, input=input)


def watch(t, root):
    """vadmin watch on root in the background (facteur run's job), its
    stderr in a file; returns the process"""
    path = os.path.join(t.tmp, "watch-" + os.path.basename(root))
    err = open(path, "ab")
    p = subprocess.Popen([t.bin("vadmin"), "--root", root, "watch"],
                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    err.close()
    p.errpath = path
    return p


def said(p):
    with open(p.errpath, errors="replace") as f:
        return f.read()


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


def vdeliver(t, root, rcpt, body):
    """one delivery through root's tables; the completed process"""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    env.pop("FACTEUR_ROOT", None)
    return subprocess.run([t.bin("vdeliver"), "--root", root, "-f",
                           "s@remote.example", rcpt], input=body,
                          capture_output=True, env=env, timeout=60)


def maildir_files(md):
    """{name: size} of new/ and cur/"""
    out = {}
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(md, sub)):
            out[n] = os.path.getsize(os.path.join(md, sub, n))
    return out


def maildirsize_sum(md):
    """(limits line, bytes, messages) of maildirsize"""
    with open(os.path.join(md, "maildirsize")) as f:
        lines = f.read().split("\n")
    assert lines[-1] == "", lines     # no torn last line
    b = m = 0
    for ln in lines[1:-1]:
        x, y = ln.split()
        b += int(x)
        m += int(y)
    return lines[0], b, m


def tags(md):
    """the Subject tags of the messages in new/ and cur/, in a list"""
    out = []
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(md, sub)):
            with open(os.path.join(md, sub, n), "rb") as f:
                m = re.search(rb"^Subject: (\S+)$", f.read(), re.M)
            out.append(m.group(1).decode() if m else "?" + n)
    return out


def pop_inetd(t, root, lines):
    """a POP3 session over pipes on root: the reply text"""
    env = dict(os.environ, TCPREMOTEIP="127.0.0.1")
    env.pop("FACTEUR_ROOT", None)
    p = subprocess.run([t.bin("pop3d"), "--root", root, "--inetd"],
                       input="".join(x + "\r\n" for x in lines).encode(),
                       capture_output=True, env=env, timeout=60)
    return p.stdout.decode(errors="replace")


def within(what, cond, limit):
    """cond() becomes true: the seconds it took, failing past limit"""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < limit, f"{what}: not within {limit} s"
        time.sleep(0.01)
    return time.monotonic() - t0


def test_two_roots_share_one_maildir(t):
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_host(t, "h1", conn)
        b = make_host(t, "h2", conn)
        with shared_domains(t, [a, b]) as shared:
            w = watch(t, b)
            try:
                helpers.wait_for("b's first catch-up", lambda:
                                 "every table regenerated" in said(w), 30)
                vadmin(t, a, "adddomain", D, input="pm-Secret-1\n")
                vadmin(t, a, "adduser", f"u@{D}", "--hash", H1,
                       "--quota", "10M")
                md = os.path.join(shared, D, "u", "Maildir")
                # made once, in the shared tree, seen under both roots
                assert os.path.isdir(os.path.join(b, "domains", D, "u",
                                                  "Maildir", "new"))
                # the account reaches b within a second (vadmin watch)
                login = [f"USER u@{D}", f"PASS {PW}", "STAT", "QUIT"]
                within("the new user on b", lambda: "+OK logged in" in
                       pop_inetd(t, b, login), 1.0)
                both_deliver(t, a, b, md)
                pop_from_the_other(t, a, b, md)
                assert w.poll() is None, said(w)
            finally:
                stop(w)


def both_deliver(t, a, b, md):
    """60 deliveries, half through each root, 8 at a time, while each
    root recalculates maildirsize (setquota) meanwhile"""
    n = 60
    jobs = [(a if i % 2 else b, b"Subject: m%d\n\nbody %d %s\n" %
             (i, i, b"x" * (i * 37))) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(vdeliver, t, r, f"u@{D}", body)
                for r, body in jobs]
        for i in range(4):
            # a recalculation under the exclusive lock, from either root
            vadmin(t, a if i % 2 else b, "setquota", f"u@{D}",
                   "%dM" % (10 + i))
        for f in futs:
            p = f.result()
            assert p.returncode == 0, p.stderr
    files = maildir_files(md)
    assert sorted(tags(md)) == sorted("m%d" % i for i in range(n))
    hosts = {}
    for name in files:
        m = re.fullmatch(r"\d+\.M\d+P\d+Q\d+V[0-9a-f]+I[0-9a-f]+\."
                         r"(h[12]\.test),S=(\d+)", name)
        assert m, name
        assert int(m.group(2)) == files[name], name
        hosts[m.group(1)] = hosts.get(m.group(1), 0) + 1
    # the host part is each root's control/me
    assert hosts == {"h1.test": n // 2, "h2.test": n // 2}, hosts
    # the appends of both roots and the recalculations between them add
    # up to the files exactly
    limits, b_, m_ = maildirsize_sum(md)
    assert (b_, m_) == (sum(files.values()), n), (limits, b_, m_)
    # and a recalculation finds the same
    vadmin(t, a, "setquota", f"u@{D}", "20M")
    assert maildirsize_sum(md) == ("20971520S", sum(files.values()), n)
    assert os.listdir(os.path.join(md, "tmp")) == []


def pop_from_the_other(t, a, b, md):
    """a session on a holds the mailbox: b's is told [IN-USE]; then b
    reads and deletes everything, and maildirsize follows"""
    env = dict(os.environ, TCPREMOTEIP="127.0.0.1")
    env.pop("FACTEUR_ROOT", None)
    pa = subprocess.Popen([t.bin("pop3d"), "--root", a, "--inetd"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=env)
    try:
        pa.stdin.write(f"USER u@{D}\r\nPASS {PW}\r\n".encode())
        pa.stdin.flush()
        got = b""
        while b"logged in" not in got:
            chunk = os.read(pa.stdout.fileno(), 4096)
            assert chunk, got
            got += chunk
        r = pop_inetd(t, b, [f"USER u@{D}", f"PASS {PW}", "QUIT"])
        assert "[IN-USE]" in r, r
    finally:
        pa.stdin.write(b"QUIT\r\n")
        pa.stdin.close()
        pa.wait(timeout=30)
        pa.stdout.close()
    n = len(maildir_files(md))
    cmds = [f"USER u@{D}", f"PASS {PW}"] + [f"DELE {i}" for i in
                                             range(1, n + 1)] + ["QUIT"]
    r = pop_inetd(t, b, cmds)
    assert f"{n} messages deleted" in r, r
    assert maildir_files(md) == {}
    assert maildirsize_sum(md)[1:] == (0, 0)
