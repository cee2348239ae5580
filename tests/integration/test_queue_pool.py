"""test_queue_pool - spent queue files are written over, not unlinked
(lib/queue.h, docs/queue.md "The pool of spent files").

mta-send keeps the file of a finished small message in queue/pool/; the
next writer (mta-inject here, mta-smtpd the same through lib/queue)
renames it to its queue/tmp/ name and writes the new message over it.
The inode is the same (mta-send's `qp` number), the bytes are only the
new message's, and what is not a spent file of the queue's own is never
written over."""
import os
import re

from helpers import Sender
from test_pop3d import give
from test_send import DOMAIN, inject, maildir, setup, wait_files


def pool(t):
    d = t.path("queue", "pool")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def qp_numbers(log):
    return re.findall(r"info msg \S+ bytes \d+ from <[^>]*> qp (\d+)", log)


def test_spent_file_written_over_and_cut(t):
    setup(t)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        long_body = b"Subject: one\n\n" + b"FIRST-MESSAGE-TAIL " * 1000 + b"\n"
        inject(t, "x@example.org", f"b@{DOMAIN}", body=long_body)
        s.wait_log(r"end msg ", count=1)
        kept = pool(t)
        assert len(kept) == 1, kept
        ino = os.stat(t.path("queue", "pool", kept[0])).st_ino
        inject(t, "x@example.org", f"b@{DOMAIN}",
               body=b"Subject: two\n\nshort\n")
        s.wait_log(r"end msg ", count=2)
        files = wait_files(t, "b", 2)
    finally:
        log = s.stop()
    qp = qp_numbers(log)
    # the second message was written into the first one's inode
    assert qp == [str(ino), str(ino)], (qp, ino, log)
    second = [open(f, "rb").read() for f in files]
    second = [m for m in second if b"Subject: two" in m]
    assert len(second) == 1
    # nothing of the longer first message is left in the second
    assert b"FIRST-MESSAGE-TAIL" not in second[0], second[0][-200:]
    assert second[0].endswith(b"Subject: two\n\nshort\n"), second[0]
    assert os.listdir(t.path("queue", "tmp")) == []
    # the file itself was cut to the new message: no old byte after it
    kept = pool(t)
    assert len(kept) == 1, kept
    data = open(t.path("queue", "pool", kept[0]), "rb").read()
    assert b"FIRST-MESSAGE-TAIL" not in data and len(data) < 1024, len(data)
    assert data.endswith(b"Subject: two\n\nshort\n"), data


def test_big_and_several_recipient_files_unlinked(t):
    """a file over 64 KiB is not kept (the pool would hold disk), nor one
    that had a status file (its outcomes must never be read against
    another message after a crash)"""
    setup(t)
    s = Sender(t)
    try:
        s.wait_log(r"queue check done: ")
        inject(t, "x@example.org", f"b@{DOMAIN}",
               body=b"Subject: big\n\n" + b"x" * (70 * 1024) + b"\n")
        s.wait_log(r"end msg ", count=1)
        assert pool(t) == []
        inject(t, "x@example.org", f"a@{DOMAIN}", f"c@{DOMAIN}")
        s.wait_log(r"end msg ", count=2)
        wait_files(t, "a", 1)
        wait_files(t, "c", 1)
    finally:
        s.stop()
    assert pool(t) == []
    assert os.listdir(t.path("queue", "tmp")) == []


def test_file_not_the_queues_own_is_not_written_over(t):
    """a pool entry with a second link (or another mode) is not one of the
    queue's spent files: the writer drops its name and makes a new file,
    and the other name keeps its bytes"""
    setup(t)
    os.makedirs(t.path("queue", "pool"), mode=0o700, exist_ok=True)
    other = t.path("queue", "quarantine", "keep")
    with open(other, "wb") as f:
        f.write(b"not a spent file\n")
    os.chmod(other, 0o600)
    give(other)     # the mail user's, as a spent file is: only the link differs
    for k in range(64):
        os.link(other, t.path("queue", "pool", str(k)))
    inject(t, "x@example.org", f"b@{DOMAIN}", body=b"Subject: new\n\nhi\n")
    s = Sender(t)
    try:
        s.wait_log(r"end msg ", count=1)
        files = wait_files(t, "b", 1)
    finally:
        log = s.stop()
    assert open(other, "rb").read() == b"not a spent file\n"
    assert open(files[0], "rb").read().endswith(b"Subject: new\n\nhi\n")
    assert qp_numbers(log) != [str(os.stat(other).st_ino)], log
    assert os.listdir(t.path("queue", "tmp")) == []
    assert maildir(t, "b", "tmp") == []
