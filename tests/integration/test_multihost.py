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
from test_store_pg import said, stop, watch  # vadmin watch, as there
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


@helpers.alone     # a second's deadline
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


# --- three hosts under facteur run (make check-slow) ---

class Host:
    """one root under `facteur run`, its SMTP and POP3 listeners on its
    own loopback address; start() again after kill9()"""

    def __init__(self, t, name, ip, conn):
        self.t, self.name, self.ip = t, name, ip
        self.root = make_host(t, name, conn)
        self.smtp = helpers.free_port(ip)
        self.pop3 = helpers.free_port(ip)
        for kind in ("smtp", "submission", "smtps", "pop3", "pop3s"):
            port = {"smtp": self.smtp, "pop3": self.pop3}.get(kind)
            put(t, os.path.join(self.root, "control", "listen." + kind),
                f"{ip}:{port}\n" if port else "", 0o644)
        self.p = None

    def log(self):
        try:
            with open(os.path.join(self.root, "log", "current"),
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self):
        env = dict(os.environ)
        env.pop("FACTEUR_ROOT", None)
        out = open(os.path.join(self.t.tmp, f"run-{self.name}.err"), "ab")
        self.p = subprocess.Popen([self.t.bin("facteur"), "run", "--root",
                                   self.root], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=out, env=env)
        out.close()
        tag = f"facteur[{self.p.pid}]: "

        def up():
            if tag + "started vadmin" not in self.log():
                return False
            try:
                socket.create_connection((self.ip, self.smtp), 1).close()
                socket.create_connection((self.ip, self.pop3), 1).close()
            except OSError:
                return False
            return True
        helpers.wait_for(f"{self.name} up", up, 30)

    def pid_of(self, prog):
        """the newest PID facteur run logged for prog"""
        pids = re.findall(rf"facteur\[{self.p.pid}\]: started {prog} pid "
                          r"(\d+)", self.log())
        return int(pids[-1]) if pids else None

    def tree(self):
        out, todo = [], [self.p.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += helpers.children(pid)
        return out

    def kill9(self):
        """kill -9 of facteur run and every process under it"""
        if self.p is None:
            return
        for pid in self.tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.p.wait(timeout=10)
        self.p = None

    def stop(self):
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()


def send(host, rcpt, tag):
    """one message over SMTP to host: True when it was accepted"""
    try:
        with smtplib.SMTP(host.ip, host.smtp, timeout=20) as c:
            c.ehlo("client.test")
            c.sendmail("s@remote.example", [rcpt],
                       f"From: s@remote.example\r\nTo: {rcpt}\r\n"
                       f"Subject: {tag}\r\n\r\nmessage {tag}\r\n")
        return True
    except (OSError, smtplib.SMTPException):
        return False


def pop_read_all(host, user, pw):
    """every message of user read and deleted over POP3 on host: the list
    of their Subject tags"""
    c = poplib.POP3(host.ip, host.pop3, timeout=30)
    try:
        c.user(user)
        c.pass_(pw)
        n = c.stat()[0]
        out = []
        for i in range(1, n + 1):
            text = b"\n".join(c.retr(i)[1])
            m = re.search(rb"^Subject: (\S+)$", text, re.M)
            out.append(m.group(1).decode() if m else "?")
            c.dele(i)
    finally:
        c.quit()
    return out


def pop_ok(host, user, pw):
    try:
        c = poplib.POP3(host.ip, host.pop3, timeout=10)
    except OSError:
        return False
    try:
        c.user(user)
        c.pass_(pw)
        return True
    except poplib.error_proto:
        return False
    finally:
        with contextlib.suppress(Exception):
            c.quit()


def rcpt_ok(host, rcpt):
    """does host's SMTP accept rcpt at RCPT"""
    with smtplib.SMTP(host.ip, host.smtp, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("s@remote.example")
        return c.rcpt(rcpt)[0] == 250


@helpers.alone     # a second's deadline
def slow_three_hosts(t):
    users = [f"u{i}@{D}" for i in range(3)]
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        hosts = [Host(t, f"h{i + 1}", f"127.0.0.{i + 2}", conn)
                 for i in range(3)]
        with shared_domains(t, [h.root for h in hosts]) as shared:
            try:
                three_hosts_run(t, hosts, users, shared)
            finally:
                for h in hosts:
                    h.stop()


def three_hosts_run(t, hosts, users, shared):
    h1, h2, h3 = hosts
    for h in hosts:
        h.start()
    vadmin(t, h1.root, "adddomain", D, input="pm-Secret-1\n")
    for u in users:
        vadmin(t, h1.root, "adduser", u, "--hash", H1)
    for h in hosts:
        helpers.wait_for(f"the users on {h.name}", lambda: all(
            pop_ok(h, u, PW) for u in users), 10)
    accepted = []
    # mail to all three hosts, round robin; a host that refuses (down)
    # leaves the message to the next, as a client with three MX would
    for i in range(30):
        tag = f"a{i}"
        for k in range(3):
            if send(hosts[(i + k) % 3], users[i % 3], tag):
                accepted.append(tag)
                break
    # h2 mid-run: its scheduler held (SIGSTOP), ten messages accepted
    # into its queue, then kill -9 of its whole tree
    send_pid = h2.pid_of("mta-send")
    assert send_pid, h2.log()
    os.kill(send_pid, signal.SIGSTOP)
    for i in range(10):
        assert send(h2, users[i % 3], f"k{i}")
        accepted.append(f"k{i}")
    h2.kill9()
    t.root = h2.root
    # the messages still in its queue: delivered once after the restart,
    # or twice when the kill fell between a delivery and the queue's
    # record of it (qmail's rule: a crash may repeat, never lose)
    in_queue = set()
    for path in helpers.queue_files(t):
        with open(path, "rb") as f:
            in_queue.update(x.decode() for x in re.findall(
                rb"^Subject: (\S+)\r?$", f.read(), re.M))
    assert {f"k{i}" for i in range(10)} <= in_queue, in_queue
    # while h2 is down the others carry the mail
    for i in range(30, 45):
        tag = f"a{i}"
        for k in range(3):
            if send(hosts[(i + k) % 3], users[i % 3], tag):
                accepted.append(tag)
                break
    assert len(accepted) == 55, accepted
    h2.start()
    # every accepted message delivered once, into the shared Maildirs
    def delivered():
        n = 0
        for u in users:
            md = os.path.join(shared, D, u.split("@")[0], "Maildir")
            n += len(maildir_files(md))
        return n >= len(accepted)
    helpers.wait_for("every message delivered", delivered, 60)
    time.sleep(1)   # a duplicate, if any, would land meanwhile
    got = []
    for i, u in enumerate(users):
        # read on a host other than the one most of its mail came in by
        got += pop_read_all(hosts[(i + 1) % 3], u, PW)
    assert set(got) == set(accepted), sorted(set(accepted) - set(got))
    twice = {x for x in got if got.count(x) > 1}
    assert twice <= in_queue, (twice, in_queue)
    assert max(got.count(x) for x in got) <= 2
    print(f"figure: multihost kill -9: {len(accepted)} accepted, "
          f"{len(in_queue)} in the killed host's queue, {len(twice)} "
          "delivered twice (each was in that queue), 0 lost")
    t.root = h2.root
    assert helpers.queue_files(t) == []
    account_change_crosses_hosts(t, h1, h3)


def account_change_crosses_hosts(t, h1, h3):
    """a password changed on h1 works on h3, a user added on h3 receives
    through h1: each within a second"""
    vadmin(t, h1.root, "passwd", f"u0@{D}", "--hash", H2)
    a = within("the new password on h3", lambda: pop_ok(h3, f"u0@{D}",
                                                        PW2), 1.0)
    assert not pop_ok(h3, f"u0@{D}", PW)
    vadmin(t, h3.root, "adduser", f"new@{D}", "--hash", H1)
    b = within("the new user on h1", lambda: rcpt_ok(h1, f"new@{D}"), 1.0)
    print(f"figure: multihost account change to use on another host: "
          f"passwd {a * 1000:.0f} ms, adduser {b * 1000:.0f} ms "
          "(vadmin's exit to the first success)")
    assert send(h1, f"new@{D}", "n1")
    helpers.wait_for("new's message", lambda: pop_read_all(
        h3, f"new@{D}", PW) == ["n1"], 20)


def test_watch_batch_one_regeneration_a_shard_every_shard_right(t):
    """vadmin watch applies a batch of changes with one regeneration of
    each table however many of its users changed (vwatch.c apply_one):
    a batch touching users of every shard of a 4-shard domain, a user
    removed and one added, leaves the other host's tables the same bytes
    as the first host's"""
    from test_store_pg import dkim_free, tables
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_host(t, "h1", conn)
        b = make_host(t, "h2", conn)
        vadmin(t, a, "adddomain", D, input="pm-Secret-1\n")
        imp = os.path.join(t.tmp, "users")
        with open(imp, "w") as f:
            for i in range(2100):
                f.write(f"u{i}@{D} {H1}\n")
        os.chmod(imp, 0o644)
        vadmin(t, a, "import", imp)
        assert pg.sql(f"SELECT shards FROM domains WHERE name = '{D}'") \
            == [["4"]]
        w = watch(t, b)
        try:
            helpers.wait_for("b's first catch-up", lambda:
                             "every table regenerated" in said(w), 60)
            stop(w)
            for i in range(0, 2100, 150):
                vadmin(t, a, "passwd", f"u{i}@{D}", "--hash", H2)
            vadmin(t, a, "deluser", f"u7@{D}")
            vadmin(t, a, "adduser", f"late@{D}", "--hash", H1)
            assert dkim_free(tables(a)) != dkim_free(tables(b))
            w = watch(t, b)
            helpers.wait_for("b's batch", lambda: "changes applied" in
                             said(w), 30)
            assert dkim_free(tables(b)) == dkim_free(tables(a))
        finally:
            stop(w)
