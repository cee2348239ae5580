"""test_queue - mta-inject and mta-qstat through a temporary root.

The queue file format is checked with helpers.read_queue_file, a reader
written from docs/queue.md, independent of lib/queue.c.
"""
import os
import signal
import subprocess
import time

from helpers import queued, read_queue_file


def test_inject_and_qstat(t):
    t.init()
    p = t.run("mta-qstat", check=0)
    assert p.out == ("messages in queue: 0\n"
                     "messages in queue but not yet preprocessed: 0\n")
    msg = b"Subject: hello\r\nTo: bob\r\n\r\nline one\r\nline two\n"
    t.run("mta-inject", "-f", "alice@example.test", "bob@example.org",
          "Carol@Example.Net", input=msg, check=0)
    files = queued(t)
    assert len(files) == 1
    name = os.path.basename(files[0])
    recs, body = read_queue_file(files[0])
    kinds = [k for k, _ in recs]
    assert kinds[0] == "T" and "F" in kinds and kinds.count("R") == 2
    assert dict(recs)["F"] == b"alice@example.test"
    assert [v for k, v in recs if k == "R"] == [b"bob@example.org",
                                               b"Carol@Example.Net"]
    # CR LF stored as LF; a Received line naming the invoking uid first
    assert body.startswith(b"Received: (facteur mta-inject ")
    assert f"invoked by uid {os.getuid()})".encode() in body
    assert body.endswith(b"Subject: hello\nTo: bob\n\nline one\nline two\n")
    assert b"\r" not in body
    assert oct(os.stat(files[0]).st_mode & 0o777) == "0o600"
    p = t.run("mta-qstat", check=0)
    assert "messages in queue: 1\n" in p.out
    assert "not yet preprocessed: 1\n" in p.out
    log = open(t.path("log", "current")).read()
    assert f"mta-inject[" in log and f"new msg {name} from " \
        "<alice@example.test> rcpts 2" in log, log


def test_null_sender_and_qualification(t):
    t.init()
    with open(t.path("control", "me"), "w") as f:
        f.write("mx.example.test\n")
    t.run("mta-inject", "-f", "", "postmaster", input=b"x\n", check=0)
    t.run("mta-inject", "-f<>", "<bob@example.org>", input=b"y\n", check=0)
    got = [read_queue_file(f)[0] for f in queued(t)]
    senders = sorted(dict(r)["F"] for r in got)
    rcpts = sorted(dict(r)["R"] for r in got)
    assert senders == [b"", b""], senders
    assert rcpts == [b"bob@example.org", b"postmaster@mx.example.test"]


def test_bad_addresses_queue_nothing(t):
    t.init()
    for args in (["-f", "a@b.test", "x y@z.test"],
                 ["-f", "a@b.test", "ok@z.test", "bad\x01@z.test"],
                 ["-f", "bad sender@b.test", "ok@z.test"],
                 ["-f", "a@b.test", "@z.test"],
                 ["-f", "a@b.test", "user@"],
                 ["-f", "a@b.test", "a" * 2000 + "@z.test"],
                 # one byte past QUEUE_ADDR_MAX: vdeliver would refuse
                 # to write it in Return-Path (it once got in with 1024)
                 ["-f", "a" * 992 + "@b.test", "ok@z.test"]):
        p = t.run("mta-inject", *args, input=b"x\n")
        assert p.returncode == 100, (args, p.returncode, p.err)
        assert p.err.startswith("mta-inject: 5.1.3"), p.err
    assert queued(t) == []
    assert os.listdir(t.path("queue", "tmp")) == []


def test_usage(t):
    t.init()
    p = t.run("mta-inject", "-f", "a@b.test", input=b"x\n")
    assert p.returncode == 2 and "usage:" in p.err
    p = t.run("mta-inject", "bob@b.test", input=b"x\n")
    assert p.returncode == 2 and "sender" in p.err
    p = t.run("mta-inject", "--bogus", input=b"x\n")
    assert p.returncode == 2 and p.err.startswith("mta-inject: unknown")
    p = t.run("mta-inject", "--help", check=0)
    assert p.out.startswith("usage:")
    p = t.run("mta-qstat", "extra")
    assert p.returncode == 2
    assert queued(t) == []


def test_large_message_streamed(t):
    t.init()
    # 20 MiB: over the default databytes, which mta-inject holds
    with open(t.path("control", "databytes"), "w") as f:
        f.write(f"{32 << 20}\n")
    chunk = (b"x" * 998 + b"\r\n") * 1024  # 1 MiB of CR LF lines
    data = b"Subject: big\r\n\r\n" + chunk * 20
    t.run("mta-inject", "-f", "a@b.test", "c@d.test", input=data, check=0,
          timeout=120)
    (f,) = queued(t)
    _, body = read_queue_file(f)
    assert body.endswith(b"x" * 998 + b"\n")
    assert len(body) - body.index(b"Subject: big") == len(data) - (
        data.count(b"\r\n"))


def test_databytes_no_number_is_the_default_at_every_entry(t):
    """a databytes file with no number counts as missing (lib/ctl), for
    mta-inject as for mta-smtpd: 10485760, not a refusal of all mail"""
    t.init()
    with open(t.path("control", "databytes"), "w") as f:
        f.write("10M\n")
    t.run("mta-inject", "-f", "a@b.test", "c@d.test", input=b"x\n",
          check=0)
    p = t.run("mta-inject", "-f", "a@b.test", "c@d.test",
              input=b"Subject: big\n\n" + b"y" * (10 << 20) + b"\n")
    assert p.returncode == 100 and "10485760 bytes" in p.err, p.err
    assert len(queued(t)) == 1


def test_killed_mid_message_leaves_nothing_queued(t):
    t.init()
    argv = [t.bin("mta-inject"), "--root", t.root, "-f", "a@b.test",
            "c@d.test"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    p.stdin.write(b"Subject: half\n\n" + b"y" * 200000)
    p.stdin.flush()
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdin.close()
    assert queued(t) == [], "a half-written message reached queue/new"
    # what is left is at most one file in tmp/, for the start-up check
    assert len(os.listdir(t.path("queue", "tmp"))) <= 1
    assert "messages in queue: 0" in t.run("mta-qstat", check=0).out
