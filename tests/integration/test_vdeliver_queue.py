"""test_vdeliver_queue - vdeliver hands remote destinations to the real
mta-inject (not a fake): the message lands in queue/new with the original
envelope sender rewritten to an SRS0 address of control/me, <> kept."""
import os

from helpers import queued, read_queue_file


def test_forward_and_alias_to_remote_reach_the_queue(t):
    t.init()
    t.run("vadmin", "adddomain", "example.test", input="pm-pass\n", check=0)
    t.run("vadmin", "adduser", "bob@example.test", "bob-pass", check=0)
    t.run("vadmin", "forward", "bob@example.test", "Carol@Remote.test",
          "--keep", check=0)
    t.run("vadmin", "alias", "add", "team@example.test", "bob",
          "dave@other.test", check=0)
    msg = b"Subject: fwd\n\nhello\n"
    t.run("vdeliver", "-f", "alice@sender.test", "bob@example.test",
          input=msg, check=0)
    files = queued(t)
    assert len(files) == 1, files
    recs, body = read_queue_file(files[0])
    with open(t.path("control", "me"), "rb") as f:
        me = f.read().strip()
    sender = dict(recs)["F"]
    assert sender.startswith(b"SRS0=") and sender.endswith(
        b"=sender.test=alice@" + me), sender
    # the local part keeps its case, the domain is folded (vadmin)
    assert [v for k, v in recs if k == "R"] == [b"Carol@remote.test"]
    assert body.endswith(msg)
    new = t.path("domains", "example.test", "bob", "Maildir", "new")
    assert len(os.listdir(new)) == 1      # --keep: a local copy too
    # an alias with a local and a remote destination
    t.run("vdeliver", "-f", "", "team@example.test", input=msg, check=0)
    files = queued(t)
    got = [read_queue_file(f)[0] for f in files]
    rcpts = sorted(v for recs in got for k, v in recs if k == "R")
    # the first message's forward, then the alias's two remote hops
    # (dave directly, Carol through bob's forward), sender <> kept
    assert rcpts == [b"Carol@remote.test", b"Carol@remote.test",
                     b"dave@other.test"], rcpts
    assert sorted(dict(r)["F"] for r in got)[0] == b""
    assert len(os.listdir(new)) == 2      # bob's copy of the alias mail
