"""test_review_fixes - smaller holes found by the review of the entry
points after the 2026-12 audit (docs/security.md, "Review of the other
entry points"): each test fails on the code before its fix."""
import os
import subprocess
import time

from test_queue import read_queue_file, queued


def test_sendmail_full_name_cannot_add_headers(t):
    """sendmail -F from a web form: a CR or LF in the name does not start
    a header, and quotes are escaped"""
    t.init()
    t.run("sendmail", "-F", 'Eve\r\nBcc: victim@else.test\n"x\\',
          "bob@b.test", input="Subject: x\n\nhello\n", check=0)
    (f,) = queued(t)
    _, body = read_queue_file(f)
    head = body.decode().split("\n\n", 1)[0]
    assert "\nBcc:" not in head and not head.startswith("Bcc:"), head
    froms = [l for l in head.split("\n") if l.startswith("From: ")]
    assert len(froms) == 1, head
    assert froms[0].startswith('From: "EveBcc: victim@else.test\\"x\\\\" <'), \
        froms[0]


def test_fifo_as_control_file_is_refused_at_once(t):
    """control/ is the mail user's: a FIFO planted as control/mailuser
    (read by root's facteur run and doctor) is an error, not a hang"""
    t.init()
    p = t.path("control", "mailuser")
    os.unlink(p)
    os.mkfifo(p, 0o600)
    t0 = time.monotonic()
    for argv in (["facteur", "run"], ["facteur", "doctor"]):
        r = t.run(*argv, timeout=20)
        assert r.returncode in (1, 111), (argv, r.returncode, r.err)
    assert time.monotonic() - t0 < 15


def test_pop3d_reads_its_key_as_the_mail_user(t):
    """pop3d started as root loads control/tls/key.pem after dropping to
    the mail user: a link the mail user planted there to a key only root
    may read is not loaded"""
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return
    from test_pop3d import setup, env
    setup(t)
    secret = os.path.join(t.tmp, "root-only-key.pem")
    os.rename(t.path("control", "tls", "key.pem"), secret)
    os.chown(secret, 0, 0)
    os.chmod(secret, 0o600)
    os.symlink(secret, t.path("control", "tls", "key.pem"))
    p = subprocess.run([t.bin("pop3d"), "--root", t.root], env=env(),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 111, (p.returncode, err)
    assert "TLS" in err, err
