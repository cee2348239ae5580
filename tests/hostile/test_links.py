"""test_links - symbolic and hard links planted in the root, and traversal
names at every entry point (issue 15).

Victims: files in a directory outside the root, mode 0666 in a 0777
directory, so that any process that followed a link, root or the mail
user, could write them; each one and its directory watched with inotify
(an event on a watched inode is seen through any name, a hard link's
too). The whole system (`facteur run`, under strace in the traversal
test) then receives, delivers and serves mail past the links.

Proved, links: 0 events on a symlink's victim (not even an open: no read
through a link either) and 0 writes on a hard link's victim, for links
planted as Maildir tmp/, new/, cur/, maildirsize (symlink and hard
link), pop3.lock, a message in new/, a queue file in queue/new/, an
open-smtp/ grant (a fresh one that a POP3 login touches, an expired one
that root's expiry removes), a drop/ file (to the TLS key, which mta-send
must not mail) and log/current; mail to the other users still delivered,
the linked users' mail deferred, not lost.

Proved, traversal names: SMTP addresses, POP3 user names, vadmin
arguments, sendmail's arguments and control files (me, doublebounceto)
with `..`, `/` and absolute paths are refused or stay names; strace's
log of every process shows 0 successful path writes outside the root,
and no successful path call at all (a read or a stat too) under the
test's directory but in the root, where the names aim; a relative path
is placed by following each process's working directory.
"""
import os
import poplib
import re
import shutil
import socket
import subprocess
import sys
import time

import helpers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_net import (DOMAIN, PW, System, Watch, outside, strace_prefix,
                         strace_paths, strace_writes)

LINKED = ("l1", "l2", "l3", "l4", "l5", "l6", "l7")
VICTIM = b"victim: nobody may write or read me through a link\n"


def mailuser_ids(t):
    st = os.stat(t.path("queue"))
    return st.st_uid, st.st_gid


def victims(t, names):
    """the outside directory and a 0666 victim file for each name"""
    d = os.path.join(t.tmp, "outside")
    os.mkdir(d)
    os.chmod(d, 0o777)
    for n in names:
        p = os.path.join(d, n)
        with open(p, "wb") as f:
            f.write(VICTIM)
        os.chmod(p, 0o666)
    return d


def plant(t, link, target, hard=False):
    """link -> target, owned by the mail user as if it had made it"""
    if os.path.lexists(link):
        if os.path.isdir(link) and not os.path.islink(link):
            shutil.rmtree(link)
        else:
            os.unlink(link)
    if hard:
        os.link(target, link)
    else:
        os.symlink(target, link)
        if os.geteuid() == 0:
            os.lchown(link, *mailuser_ids(t))


def md(t, user, *parts):
    return t.path("domains", DOMAIN, user, "Maildir", *parts)


def send(port, rcpts, subject):
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        return c.sendmail("a@remote.example", rcpts,
                          f"Subject: {subject}\r\n\r\nbody\r\n".encode())


def pop_login(port, user):
    """log in, list, read and delete everything, quit; the error if any"""
    try:
        c = poplib.POP3("127.0.0.1", port, timeout=20)
        c.user(f"{user}@{DOMAIN}")
        c.pass_(PW)
        n = len(c.list()[1])
        for i in range(1, n + 1):
            c.retr(i)
            c.dele(i)
        c.quit()
        return None
    except (poplib.error_proto, OSError) as e:
        return str(e)


def test_links_planted_everywhere_nothing_written_through(t):
    if os.geteuid() != 0:
        print("SKIP: needs root to plant links as the mail user and nobody")
        return
    t.init()
    t.run("vadmin", "adddomain", DOMAIN, input="pm-pw\n", check=0)
    for u in ("ok",) + LINKED:
        t.run("vadmin", "adduser", f"{u}@{DOMAIN}", PW, "--quota", "10M",
              check=0)
    names = ["tmp", "new", "cur", "maildirsize", "hardsize", "pop3.lock",
             "msg", "qf", "grant", "oldgrant"]
    out = victims(t, names)
    v = {n: os.path.join(out, n) for n in names}
    for n in ("tmp", "new", "cur"):
        os.unlink(v[n])
        os.mkdir(v[n])
        os.chmod(v[n], 0o777)
    uid, gid = mailuser_ids(t)
    plant(t, md(t, "l1", "tmp"), v["tmp"])
    plant(t, md(t, "l2", "new"), v["new"])
    plant(t, md(t, "l3", "cur"), v["cur"])
    plant(t, md(t, "l4", "maildirsize"), v["maildirsize"])
    # a hard link needs a victim of the mail user's (protected_hardlinks)
    os.chown(v["hardsize"], uid, gid)
    with open(v["hardsize"], "wb") as f:
        f.write(b"10485760S\n0 0\n")
    plant(t, md(t, "l7", "maildirsize"), v["hardsize"], hard=True)
    plant(t, md(t, "l5", "pop3.lock"), v["pop3.lock"])
    plant(t, md(t, "l6", "new", "1700000000.1.evil"), v["msg"])
    qf = helpers.qf_new("a@remote.example", [f"ok@{DOMAIN}"],
                        b"Subject: through a link\n\nx\n")
    with open(v["qf"], "wb") as f:
        f.write(qf)
    plant(t, t.path("queue", "new", "99999"), v["qf"])
    plant(t, t.path("open-smtp", "127.0.0.1"), v["grant"])
    plant(t, t.path("open-smtp", "192.0.2.99"), v["oldgrant"])
    old = time.time() - 30 * 86400
    os.utime(t.path("open-smtp", "192.0.2.99"), (old, old),
             follow_symlinks=False)
    key = t.path("control", "tls", "key.pem")
    os.symlink(key, t.path("drop", "keylink"))
    os.lchown(t.path("drop", "keylink"), 65534, 65534)
    w = Watch([out] + list(v.values()))
    sysx = System(t, timeout=10, controls=(("retrybase", "1\n"),))
    try:
        send(sysx.ports["smtp"], [f"{u}@{DOMAIN}" for u in ("ok",) + LINKED],
             "linked")
        helpers.wait_for("ok's message",
                         lambda: os.listdir(md(t, "ok", "new")), 30)
        errs = {u: pop_login(sysx.ports["pop3"], u) for u in
                ("l3", "l5", "l6", "ok")}
        time.sleep(3)     # retries of the deferred ones; the expiry pass
        log = sysx.log()
        qread = t.run("mta-qread", check=0).out
    finally:
        stopped = sysx.stop()
    ev = w.events()
    w.close()
    touched = [(os.path.basename(p), name, e) for p, name, e, mask in ev
               if os.path.basename(p) != "hardsize" or mask & 0x2]
    print(f"links: {len(names)} victims, {len(ev)} inotify events, "
          f"POP3 {errs}")
    assert touched == [], touched
    assert open(v["qf"], "rb").read() == qf
    for n in ("maildirsize", "pop3.lock", "msg", "grant", "oldgrant"):
        with open(v[n], "rb") as f:
            assert f.read() == VICTIM, n
    assert open(v["hardsize"], "rb").read() == b"10485760S\n0 0\n"
    for n in ("tmp", "new", "cur"):
        assert os.listdir(v[n]) == [], n
    # the others' mail went through; the linked users' mail is deferred
    # or refused, never lost in silence
    assert errs["ok"] is None, errs
    assert "PRIVATE KEY" not in stopped
    for u in ("l1", "l2"):
        assert f"{u}@{DOMAIN}" in qread or \
            f"failure" in log, (u, qread, log[-3000:])
    # the key never became a message
    for root, _, files in os.walk(t.path("domains")):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                with open(p, "rb") as fh:
                    assert b"PRIVATE KEY" not in fh.read(), p


def test_links_log_current(t):
    """log/current as a symlink, then as a hard link to a file of the mail
    user's (the mail user owns log/): root's facteur run refuses to start
    each time (exit 111, one line saying why) and writes nothing through"""
    if os.geteuid() != 0:
        print("SKIP: needs root (facteur run as root is what is attacked)")
        return
    t.init()
    out = victims(t, ["log", "hardlog"])
    uid, gid = mailuser_ids(t)
    os.chown(os.path.join(out, "hardlog"), uid, gid)
    w = Watch([out, os.path.join(out, "log"), os.path.join(out, "hardlog")])
    for name, hard, why in (("log", False, b"Too many levels of symbolic"),
                            ("hardlog", True, b"is not a plain file")):
        plant(t, t.path("log", "current"), os.path.join(out, name),
              hard=hard)
        w.events()
        w.got.clear()
        p = subprocess.run([t.bin("facteur"), "run", "--root", t.root],
                           capture_output=True, timeout=30)
        assert p.returncode == 111, (p.returncode, p.stderr)
        assert b"log/current" in p.stderr and why in p.stderr, p.stderr
        # opened to append, found two links, closed: no byte written
        ev = [e for e in w.events() if e[3] & 0x2]
        assert ev == [], ev
        st = os.stat(os.path.join(out, name))
        assert (st.st_mode & 0o7777, st.st_uid) == (
            0o666, uid if hard else os.geteuid()), st
        with open(os.path.join(out, name), "rb") as f:
            assert f.read() == VICTIM
    w.close()


# --- traversal names ---------------------------------------------------------

TRAV = ["../../../outside/x", "/etc/passwd", "a/../../b", "..", "../x",
        "./.", "x/..", ".hidden", "%2e%2e/x", "..%2fx"]
FAST = 1        # make check tries the first name; check-slow all


def smtp_traversal(port, trav):
    """every traversal as RCPT local part, domain and sender; the replies"""
    lines = [b"EHLO trav.example"]
    for x in trav:
        lines += [f"MAIL FROM:<{x}@{DOMAIN}>".encode(),
                  f"RCPT TO:<{x}@{DOMAIN}>".encode(),
                  f"RCPT TO:<bob@{x}>".encode(),
                  f"RCPT TO:<{x}>".encode(), b"RSET"]
    lines += [b"QUIT"]
    with socket.create_connection(("127.0.0.1", port), 30,
                                  source_address=("127.0.0.3", 0)) as s:
        s.sendall(b"\r\n".join(lines) + b"\r\n")
        data = s.makefile("rb").read()
    return data.decode(errors="replace").splitlines()


def pop_traversal(port, trav):
    out = []
    for x in trav:
        for user in (f"{x}@{DOMAIN}", f"bob@{x}", x):
            c = poplib.POP3("127.0.0.1", port, timeout=20)
            try:
                c.user(user)
                c.pass_(PW)
                out.append(("logged in", user))
            except poplib.error_proto:
                pass
            finally:
                try:
                    c.quit()
                except (poplib.error_proto, OSError):
                    pass
    return out


def test_links_traversal_names_nothing_outside_root(t):
    traversal(t, TRAV[:FAST])


def slow_links_traversal_every_name_nothing_outside_root(t):
    traversal(t, TRAV)


def double_bounce_tried(log):
    """a bounce's report (qp) queued to the traversal-named address,
    then dropped as a double bounce that failed"""
    for qp in re.findall(r"bounce msg \S+ qp (\S+)", log):
        to = re.search(r"msg %s to remote \.\./\.\./\.\./outside/dbl@"
                       r"\.\./\.\./outside\n" % re.escape(qp), log)
        if to and f"msg {qp}: a double bounce failed; dropped" in log:
            return True
    return False


def traversal(t, trav):
    if not shutil.which("strace"):
        print("SKIP: strace(1) is needed for the path log")
        return
    t.init()
    t.run("vadmin", "adddomain", DOMAIN, input="pm-pw\n", check=0)
    t.run("vadmin", "adduser", f"bob@{DOMAIN}", PW, check=0)
    out = os.path.join(t.tmp, "outside")
    os.mkdir(out)
    os.chmod(out, 0o777)
    logs = []
    made = []
    # vadmin, sendmail: each run under strace
    for x in trav:
        for args in (["adddomain", x], ["adduser", f"{x}@{DOMAIN}", PW],
                     ["adduser", f"bob@{x}", PW],
                     ["alias", "add", f"{x}@{DOMAIN}", f"bob@{DOMAIN}"],
                     ["forward", f"bob@{DOMAIN}", x],
                     ["catchall", DOMAIN, x], ["aliasdomain", "add", x,
                                               DOMAIN],
                     ["userinfo", f"{x}@{DOMAIN}"], ["dominfo", x],
                     ["setquota", f"{x}@{DOMAIN}", "1M"]):
            lp = os.path.join(t.tmp, f"st-{len(logs)}.log")
            logs.append(lp)
            p = subprocess.run(strace_prefix(lp) + [
                t.bin("vadmin"), "--root", t.root, *args],
                input=b"pw\n", capture_output=True, timeout=60)
            if p.returncode == 0 and args[0] in ("adddomain", "adduser"):
                made.append(args)
        for args in (["-f", f"{x}@{DOMAIN}", f"bob@{DOMAIN}"],
                     ["--", f"{x}@{DOMAIN}"], ["-f", x, "--", x]):
            lp = os.path.join(t.tmp, f"st-{len(logs)}.log")
            logs.append(lp)
            subprocess.run(strace_prefix(lp) + [
                t.bin("sendmail"), "--root", t.root, *args],
                input=b"Subject: trav\n\nx\n", capture_output=True,
                timeout=60)
    # control files that name things: the system runs with them
    lp = os.path.join(t.tmp, "st-run.log")
    logs.append(lp)
    sysx = System(t, timeout=10, wrap=strace_prefix(lp), controls=(
        ("doublebounceto", "../../../outside/dbl\n"),
        ("me", "../../outside\n")))
    try:
        replies = smtp_traversal(sysx.ports["smtp"], trav)
        pops = pop_traversal(sysx.ports["pop3"], trav)
        # a bounce (sender <>) that fails: its report goes to the
        # traversal-named doublebounceto, qualified with the one in `me`
        lp = os.path.join(t.tmp, f"st-{len(logs)}.log")
        logs.append(lp)
        # (LeakSanitizer cannot run under ptrace)
        subprocess.run(strace_prefix(lp) + [
            t.bin("mta-inject"), "--root", t.root, "-f", "",
            f"nobody@{DOMAIN}"], input=b"Subject: trav\n\nx\n",
            capture_output=True, timeout=60, check=True,
            env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        # queued to the names as an address (the queue holds no path made
        # of them), refused by mta-remote, then dropped: the last stop
        helpers.wait_for("the double bounce tried",
                         lambda: double_bounce_tried(sysx.log()), 30)
    finally:
        sysx.stop()
    writes = []
    for lp in logs:
        writes += strace_writes(lp, cwd=os.getcwd())
    bad = outside(writes, t.root, os.path.join(t.tmp, "run.err"))
    # and no path at all under the test's directory but the root and the
    # run's log: the names aim there (the programs' own reads of /etc and
    # /usr, which every program makes, are outside what this can judge)
    touched = [(c, p) for lp in logs
               for c, p in strace_paths(lp, cwd=os.getcwd())]
    # every relative path placed (the runs start in this process's
    # working directory; strace_paths follows each one's from there)
    unplaced = [(c, p) for c, p in touched if not p.startswith("/")]
    near = [(c, p) for c, p in touched if p.startswith(t.tmp + "/") and
            not p.startswith(t.root + "/") and p != t.root and
            p != os.path.join(t.tmp, "run.err")]
    accepted = [l for l in replies if l.startswith("250 2.1.5")]
    print(f"traversal: {len(trav)} names, {len(logs)} straced runs, "
          f"{len(writes)} path writes, {len(bad)} outside the root; "
          f"{len(touched)} path calls, {len(near)} beside the root, "
          f"{len(unplaced)} not placed; "
          f"RCPT accepted {len(accepted)}; vadmin made {made}")
    assert bad == [], bad[:20]
    assert near == [], near[:20]
    assert unplaced == [], unplaced[:20]
    assert os.listdir(out) == []
    assert pops == [], pops
    assert made == [], made
    # nothing accepted at RCPT but what names bob of the hosted domain
    assert len(accepted) <= 1, accepted
