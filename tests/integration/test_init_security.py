"""test_init_security - what root's `facteur init` and `facteur run` must
not hand to the mail user or to the services (docs/security.md, hole 4 and
"also seen").

The init race: init runs as root, makes drop/ (writable by every local
user) and later gives the root's files to the mail user. A local user who
plants a file, or a hard link to a file of root's, in drop/ meanwhile must
not see it handed over. A racer runs as `nobody` from before init starts
until it ends, trying both as fast as it can.
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

import test_facteur as tf
from test_sendmail_user import can_switch

NOBODY = 65534

RACER = r"""
import os, sys, time
root, target, stop = sys.argv[1], sys.argv[2], sys.argv[3]
drop = os.path.join(root, "drop")
i = made = 0
while not os.path.exists(stop):
    i += 1
    try:
        os.link(target, os.path.join(drop, "l%d" % i))
        made += 1
    except OSError:
        pass
    try:
        with open(os.path.join(drop, "f%d" % i), "w") as f:
            f.write("x")
        made += 1
    except OSError:
        pass
print(made)
"""


def can_race():
    return can_switch()


class Hardlinks:
    """fs.protected_hardlinks set to 0 for the test where it can be (the
    audit's machine), put back afterwards."""
    PATH = "/proc/sys/fs/protected_hardlinks"

    def __enter__(self):
        self.old = None
        try:
            with open(self.PATH) as f:
                self.old = f.read().strip()
            with open(self.PATH, "w") as f:
                f.write("0")
            self.unprotected = True
        except OSError:
            self.unprotected = False
        return self

    def __exit__(self, *exc):
        if self.old is not None and self.unprotected:
            with open(self.PATH, "w") as f:
                f.write(self.old)


def owned_by_mail_user(root, mail_uid):
    """Every path below root whose owner is the mail user"""
    out = []
    for top, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(top, n)
            if os.lstat(p).st_uid == mail_uid:
                out.append(p)
    return out


def test_init_race_with_planted_files_and_hard_links(ctx):
    """Files and hard links that nobody plants in drop/ while root's init
    runs stay nobody's / root's; the mail user gets only init's own."""
    if not can_race():
        return
    secret = os.path.join(ctx.tmp, "secret")
    with open(secret, "w") as f:
        f.write("root's\n")
    os.chmod(secret, 0o600)
    root = os.path.join(ctx.tmp, "root")
    stop = os.path.join(ctx.tmp, "stop")
    os.mkdir(root, 0o755)     # nobody must be able to reach drop/
    script = os.path.join(ctx.tmp, "racer.py")
    with open(script, "w") as f:
        f.write(RACER)
    os.chmod(ctx.tmp, 0o755)
    with Hardlinks() as hl:
        racer = subprocess.Popen(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
             "--clear-groups", sys.executable, script, root, secret, stop],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.2)
            # init into the existing (empty) directory: drop/ is made at
            # once, the certificate and the database take a while after
            ctx.root = root
            ctx.run("facteur", "init", "--root", root, "--dev", root=False,
                    check=0)
        finally:
            open(stop, "w").close()
            out, err = racer.communicate(timeout=30)
        assert racer.returncode == 0, err
    st = os.stat(secret)
    assert st.st_uid == 0, "root's file was given away: uid %d" % st.st_uid
    mail_uid = pwd.getpwnam("facteur").pw_uid
    for n in os.listdir(os.path.join(root, "drop")):
        p = os.path.join(root, "drop", n)
        assert os.lstat(p).st_uid != mail_uid or n == "trigger", (
            p, "a file planted in drop/ was handed to the mail user")
    # the mail user got what init made, drop/ has its final mode
    assert os.lstat(os.path.join(root, "queue")).st_uid == mail_uid
    assert os.lstat(os.path.join(root, "drop")).st_mode & 0o7777 == 0o1733
    print(f"racer planted {out.decode().strip()} entries (hard links "
          f"{'possible' if hl.unprotected else 'protected'})")


def test_init_skips_what_it_did_not_make(ctx):
    """A directory of another user's where init would make one is refused,
    not adopted and handed over"""
    if not can_race():
        return
    root = os.path.join(ctx.tmp, "root")
    os.mkdir(root, 0o755)
    os.mkdir(os.path.join(root, "queue"), 0o777)
    os.chown(os.path.join(root, "queue"), NOBODY, NOBODY)
    p = ctx.run("facteur", "init", "--root", root, "--dev", root=False)
    assert p.returncode == 111, (p.returncode, p.err)
    assert "queue" in p.err, p.err
    assert os.lstat(os.path.join(root, "queue")).st_uid == NOBODY


def test_run_refuses_a_hard_linked_log(ctx):
    """log/ is the mail user's: a log/current that is a hard link to a file
    of root's is refused by root's facteur run, which never appends to it"""
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return
    ctx.init()
    tf.free_listen(ctx)
    secret = os.path.join(ctx.tmp, "secret")
    with open(secret, "w") as f:
        f.write("root's\n")
    cur = ctx.path("log", "current")
    if os.path.exists(cur):
        os.unlink(cur)
    os.link(secret, cur)
    p = ctx.run("facteur", "run", check=111, timeout=30)
    assert "log/current" in p.err and "one link" in p.err, p.err
    with open(secret) as f:
        assert f.read() == "root's\n"


def test_run_closes_inherited_descriptors(ctx):
    """A descriptor that facteur run's caller left open reaches no
    service"""
    ctx.init()
    ports = tf.free_listen(ctx, off=("submission", "smtps", "pop3s"))
    leak = socket.socket()
    leak.bind(("127.0.0.1", 0))
    leak.listen()
    leak_port = leak.getsockname()[1]
    env = dict(os.environ)
    env.pop("FACTEUR_ROOT", None)
    p = subprocess.Popen([ctx.bin("facteur"), "run", "--root", ctx.root],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env,
                         pass_fds=[leak.fileno()])
    try:
        tag = f"facteur[{p.pid}]: "
        tf.wait_up(ctx, tag, ports.values())
        inodes = tf.listening_inodes(leak_port)
        assert inodes
        pids = [p.pid] + tf.started_pids(ctx, tag, "mta-smtpd") + \
            tf.started_pids(ctx, tag, "pop3d")
        assert len(pids) == 3, pids
        for pid in pids:
            assert not inodes & tf.socket_inodes(pid), (
                pid, "holds the descriptor its caller left open")
    finally:
        tf.stop_run(p)
        leak.close()


def test_mailuser_must_own_the_queue(ctx):
    """control/mailuser is the mail user's to write: naming another
    account (here nobody, who does not own queue/) makes no program
    started as root become that account"""
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return
    ctx.init()
    tf.free_listen(ctx)
    with open(ctx.path("control", "mailuser"), "w") as f:
        f.write("nobody\n")
    p = ctx.run("facteur", "run", check=111, timeout=30)
    assert "does not own queue/" in p.err, p.err
    p = ctx.run("vadmin", "listdomains", check=111)
    assert "does not own queue/" in p.err, p.err
    p = ctx.run("mta-qstat", check=111)
    assert "does not own queue/" in p.err, p.err
    p = ctx.run("facteur", "doctor")
    assert p.returncode == 1
    assert "FAIL" in p.out and "does not own queue/" in p.out, p.out


def test_doctor_never_opens_the_database_as_root(ctx):
    """With control/mailuser naming nobody usable, root's doctor runs its
    checks as nobody: a hard link to a file of root's planted (by the mail
    user) as db/accounts.sqlite-shm is not rewritten or given away"""
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return
    ctx.init()
    secret = os.path.join(ctx.tmp, "secret")
    with open(secret, "w") as f:
        f.write("root's\n")
    os.chmod(secret, 0o600)
    with open(ctx.path("control", "mailuser"), "w") as f:
        f.write("no-such-user-x\n")
    shm = ctx.path("db", "accounts.sqlite-shm")
    if os.path.lexists(shm):
        os.unlink(shm)
    os.link(secret, shm)
    p = ctx.run("facteur", "doctor")
    assert p.returncode == 1, (p.returncode, p.out, p.err)
    assert "does not exist" in p.out, p.out
    st = os.stat(secret)
    assert st.st_uid == 0 and st.st_size == 7, (st.st_uid, st.st_size)
    with open(secret) as f:
        assert f.read() == "root's\n"


def test_run_says_why_a_service_cannot_start(ctx):
    """Started as root from a directory the mail user cannot reach (a
    0700 home), each service's exec fails as the mail user: the log says
    which program, as whom and why, not only "exited status 127" """
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return
    ctx.init()
    ports = tf.free_listen(ctx, off=("submission", "smtps", "pop3s",
                                     "pop3"))
    home = os.path.join(ctx.tmp, "home")
    os.mkdir(home, 0o700)
    bindir = os.path.join(home, "bin")
    os.mkdir(bindir, 0o755)
    for prog in ("facteur", "mta-smtpd"):
        shutil.copy(ctx.bin(prog), os.path.join(bindir, prog))
    p = tf.start_run(ctx, os.path.join(bindir, "facteur"))
    try:
        want = (f"cannot execute {bindir}/mta-smtpd as facteur: "
                f"Permission denied")
        assert tf.wait_for(lambda: want in tf.log(ctx), 15), tf.log(ctx)
    finally:
        tf.stop_run(p)
    assert ports
