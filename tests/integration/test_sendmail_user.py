"""test_sendmail_user - sendmail run by an ordinary local user, through
ROOT/drop/ and mta-send (docs/queue.md, "Local submission: ROOT/drop").

The tests run the real sendmail as `nobody` (and other unprivileged uids)
with setpriv, and the real mta-send as the mail user. They need root to
change uid; without it each one says SKIP and checks nothing else."""
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

from helpers import Sender, qf_new, read_queue_file
from test_send import DOMAIN, maildir, setup, wait_files

NOBODY = 65534
OTHER = 54321          # a uid without a passwd entry: "another user"


def can_switch():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP: needs root and setpriv(1) to run sendmail as an "
              "ordinary user")
        return False
    try:
        pwd.getpwuid(NOBODY)
    except KeyError:
        print("SKIP: no user with uid 65534 (nobody)")
        return False
    return True


def as_user(t, uid, argv, input=b"", gid=None):
    """Run argv as uid (no groups); a program name is taken from bin/."""
    if not os.path.isabs(argv[0]) and "/" not in argv[0] and \
            os.path.exists(t.bin(argv[0])):
        argv = [t.bin(argv[0])] + list(argv[1:])
    e = dict(os.environ)
    e.pop("FACTEUR_ROOT", None)
    e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1")
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid if gid else uid}",
           "--clear-groups"] + [str(a) for a in argv]
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(cmd, input=input, capture_output=True, env=e,
                       timeout=60)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    return p


def user_sendmail(t, *args, input, uid=NOBODY):
    return as_user(t, uid, ["sendmail", "--root", t.root, *args],
                   input=input, gid=65534)


def me(t):
    with open(t.path("control", "me")) as f:
        return f.read().strip()


def drop_names(t):
    return sorted(n for n in os.listdir(t.path("drop")) if n != "trigger")


def put(t, name, data, uid=NOBODY, mode=0o644):
    p = t.path("drop", name)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
    os.lchown(p, uid, 65534)
    return p


def test_user_sendmail_is_delivered_with_its_uid(t):
    if not can_switch():
        return
    setup(t, users=("bob",))
    st = os.lstat(t.path("drop"))
    assert stat.S_IMODE(st.st_mode) == 0o1733, oct(st.st_mode)
    assert st.st_uid == os.lstat(t.path("queue")).st_uid
    st = os.lstat(t.path("drop", "trigger"))
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o622
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        msg = (f"To: Bob <bob@{DOMAIN}>\nBcc: hidden@{DOMAIN}\n"
               "Subject: from a user\n\nline one\r\nline two\n")
        p = user_sendmail(t, "-t", "-F", "Nobody Here", input=msg)
        assert p.returncode == 0, p.err
        (f,) = wait_files(t, "bob", 1, timeout=10)
        s.wait_log(r"end msg ")
        log = s.log()
    finally:
        s.stop()
    sender = f"nobody@{me(t)}"
    got = open(f, "rb").read().decode()
    assert got.startswith(f"Return-Path: <{sender}>\n"), got
    assert f"Received: (facteur drop from uid {NOBODY});" in got, got
    assert f'From: "Nobody Here" <{sender}>\n' in got, got
    assert "Bcc:" not in got and "hidden@" not in got, got
    assert got.endswith("\n\nline one\nline two\n"), got
    assert re.search(r"info msg \S+: bytes \d+ from <" + re.escape(sender) +
                     rf"> qp \d+ uid {NOBODY}\n", log), log
    assert re.search(rf"drop {NOBODY}\.\S+ from uid {NOBODY}: queued as msg",
                     log), log
    assert drop_names(t) == [], drop_names(t)
    assert os.listdir(t.path("queue", "quarantine")) == []


def test_drop_is_not_listable_nor_removable_by_others(t):
    if not can_switch():
        return
    setup(t, users=("bob",))
    p = user_sendmail(t, f"bob@{DOMAIN}", input="Subject: x\n\nsecret\n")
    assert p.returncode == 0, p.err
    (name,) = drop_names(t)
    path = t.path("drop", name)
    st = os.lstat(path)
    assert st.st_uid == NOBODY and stat.S_IMODE(st.st_mode) == 0o644
    assert name.startswith(f"{NOBODY}.") and not name.endswith(".tmp")
    # its envelope says who wrote it
    recs, body = read_queue_file(path)
    env = dict((k, v) for k, v in recs if k != "R")
    assert env["U"] == str(NOBODY).encode() and env["F"] == \
        f"nobody@{me(t)}".encode(), recs
    assert b"secret" in body
    for uid in (NOBODY, OTHER):
        q = as_user(t, uid, ["ls", t.path("drop")])
        assert q.returncode != 0 and "Permission denied" in q.err, q.err
    q = as_user(t, OTHER, ["rm", "-f", path])
    assert q.returncode != 0 and os.path.exists(path), q.err
    q = as_user(t, OTHER, ["mv", path, t.path("drop", "stolen")])
    assert q.returncode != 0 and os.path.exists(path), q.err
    q = as_user(t, OTHER, ["ls", t.path("queue")])
    assert q.returncode != 0, q.out


def test_bad_drop_files_are_refused_and_logged(t):
    if not can_switch():
        return
    setup(t, users=("bob", "eve"), databytes="1000")
    good = qf_new(f"x@{DOMAIN}", [f"eve@{DOMAIN}"], b"Subject: ok\n\nfine\n")
    # a symlink, a hard link, garbage, too big, a forged record
    os.symlink("/etc/passwd", t.path("drop", "link"))
    os.lchown(t.path("drop", "link"), NOBODY, 65534)
    put(t, "hard", good)
    os.link(t.path("drop", "hard"), os.path.join(t.tmp, "hard2"))
    put(t, "garbage", b"FQ1\nthis is not a queue file at all\n")
    put(t, "big", qf_new(f"x@{DOMAIN}", [f"eve@{DOMAIN}"],
                         b"Subject: big\n\n" + b"y" * (1100 * 1024)))
    put(t, "auth", qf_new(f"x@{DOMAIN}", [f"eve@{DOMAIN}"], b"S: a\n\nb\n",
                          extra=[("A", b"postmaster@" + DOMAIN.encode())]))
    put(t, "badaddr", qf_new("x y@z", [f"eve@{DOMAIN}"], b"S: a\n\nb\n"))
    put(t, "secret", good, mode=0o600)
    # a file that claims uid 0: queued, but as its owner's
    put(t, "forged", qf_new(f"x@{DOMAIN}", [f"eve@{DOMAIN}"],
                            b"Subject: forged\n\nhi\n",
                            extra=[("U", b"0")]),
        uid=OTHER)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        p = user_sendmail(t, f"bob@{DOMAIN}", input="Subject: good\n\nok\n")
        assert p.returncode == 0, p.err
        wait_files(t, "bob", 1, timeout=10)
        wait_files(t, "eve", 1, timeout=10)
        s.wait_log(r"quarantine .*/drop/", count=7)
        log = s.log()
    finally:
        s.stop()
    why = {
        "link": f"from uid {NOBODY}: a symbolic link",
        "hard": f"from uid {NOBODY}: a file with more than one link",
        "garbage": f"from uid {NOBODY}: damaged",
        "big": f"from uid {NOBODY}: larger than control/databytes",
        "auth": f"from uid {NOBODY}: a record sendmail never writes",
        "badaddr": f"from uid {NOBODY}: an invalid sender address",
        "secret": f"from uid {NOBODY}: not readable by the mail user",
    }
    for name, w in why.items():
        assert re.search(rf"quarantine \S+/drop/{name}: {re.escape(w)}",
                         log), (name, log)
    quarantined = set(os.listdir(t.path("queue", "quarantine")))
    assert quarantined == set(why), quarantined
    assert drop_names(t) == []
    # the link was moved, never followed: /etc/passwd is untouched
    assert os.path.islink(t.path("queue", "quarantine", "link"))
    assert os.path.exists("/etc/passwd")
    assert re.search(rf"drop forged from uid {OTHER}: queued", log), log
    assert re.search(rf"info msg \S+: bytes \d+ from <x@{DOMAIN}> qp \d+ "
                     rf"uid {OTHER}\n", log), log
    (f,) = maildir(t, "eve")
    got = open(f, "rb").read().decode()
    assert f"Received: (facteur drop from uid {OTHER});" in got, got


def test_user_mail_waits_for_mta_send(t):
    if not can_switch():
        return
    setup(t, users=("bob",))
    p = user_sendmail(t, f"bob@{DOMAIN}", input="Subject: later\n\nwait\n")
    assert p.returncode == 0, p.err
    assert len(drop_names(t)) == 1 and maildir(t, "bob") == []
    # an unfinished submission: an old one is removed at start, a fresh
    # one (its writer may still be at work) is left alone
    old = put(t, f"{NOBODY}.1.2.3.dead.tmp", b"FQ1\n")
    os.utime(old, (time.time() - 40 * 3600,) * 2)
    fresh = put(t, f"{NOBODY}.4.5.6.beef.tmp", b"FQ1\n")
    s = Sender(t)
    try:
        (f,) = wait_files(t, "bob", 1, timeout=10)
        s.wait_log(r"end msg ")
        log = s.log()
    finally:
        s.stop()
    assert b"\n\nwait\n" in open(f, "rb").read()
    assert not os.path.exists(old) and os.path.exists(fresh)
    assert re.search(rf"removed \S+dead\.tmp: an unfinished local submission"
                     rf" from uid {NOBODY}", log), log
    assert drop_names(t) == [os.path.basename(fresh)]


def test_user_refusals(t):
    if not can_switch():
        return
    setup(t, users=("bob",), databytes="500")
    p = user_sendmail(t, "-bs", input="QUIT\r\n")
    assert p.returncode == 111 and "-bs" in p.err and "SMTP" in p.err, p.err
    p = user_sendmail(t, f"bob@{DOMAIN}",
                      input="Subject: big\n\n" + "z" * 2000 + "\n")
    assert p.returncode == 100 and "databytes" in p.err, p.err
    p = user_sendmail(t, "bad address@x.test", input="S: x\n\ny\n")
    assert p.returncode == 100, p.err
    p = user_sendmail(t, "-t", input="Subject: nobody to\n\ny\n")
    assert p.returncode == 100 and "no recipients" in p.err, p.err
    assert drop_names(t) == []
    # -f names any sender, as Postfix lets a local user do; the uid stays
    p = user_sendmail(t, "-f", "app@site.test", f"bob@{DOMAIN}",
                      input="Subject: f\n\ny\n")
    assert p.returncode == 0, p.err
    (name,) = drop_names(t)
    recs, _ = read_queue_file(t.path("drop", name))
    env = dict((k, v) for k, v in recs if k != "R")
    assert env["F"] == b"app@site.test" and env["U"] == b"65534"
    # root and the mail user still go through mta-inject, straight into
    # the queue
    t.run("sendmail", f"bob@{DOMAIN}", input="Subject: r\n\nroot\n", check=0)
    assert len(os.listdir(t.path("queue", "new"))) == 1
    assert len(drop_names(t)) == 1


def test_doctor_checks_drop(t):
    t.init()
    p = t.run("facteur", "doctor")
    assert "ok layout" in p.out.splitlines(), p.out
    os.chmod(t.path("drop"), 0o1777)
    p = t.run("facteur", "doctor")
    assert re.search(r"FAIL layout: .*drop is mode 1777; run chmod 1733",
                     p.out), p.out
    os.chmod(t.path("drop"), 0o1733)
    os.unlink(t.path("drop", "trigger"))
    p = t.run("facteur", "doctor")
    assert re.search(r"warn layout: .*drop/trigger is missing", p.out), p.out
