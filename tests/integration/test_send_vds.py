"""test_send_vds - the vdeliver fork server (vdeliver --server,
vdeliver/server.c, mta/send/vds.c): mta-send runs every local delivery
through one long-lived server that forks a child a delivery instead of
exec'ing vdeliver each time.

  - 50 local deliveries: one server started, mta-send's only child, and
    FACTEUR_VDELIVER_EXEC=1 still delivers the old way with no server;
  - the server killed -9 while 200 messages are delivered: every message
    arrives (at most twice), mta-send starts a new server; servers that
    keep dying send deliveries back to exec for a while;
  - the server's protocol spoken directly from Python over a socketpair:
    bad requests (garbage, no NULs, wrong descriptor counts, too long,
    empty) are logged and answered "TAG -1" or ignored, leak no
    descriptor, and the next good request is delivered ("TAG 0"); a
    child holds neither the socket nor the signalfd; SIGTERM stops the
    children; end of file ends the server;
  - permanent and temporary failures (unknown user, over quota, missing
    Maildir) give the same log lines and bounce through the server as
    by exec.
"""
import array
import os
import re
import signal
import socket
import subprocess
import threading
import time

from helpers import Sender, children, queue_files, quota_lock, wait_for
from test_send_faults import DOM, body_for, maildir, read, seqs_in, setup

STARTED = r"vdeliver server started pid (\d+)"


def inject_many(t, lo, hi, users, k=3):
    """messages lo..hi-1 (X-Seq), each to users[i % len], k injectors"""
    bad = []

    def one(j):
        for i in range(lo + j, hi, k):
            p = t.run("mta-inject", "-f", f"s{i}@sender.test",
                      f"{users[i % len(users)]}@{DOM}", input=body_for(i))
            if p.returncode != 0:
                bad.append((i, p.err))
    th = [threading.Thread(target=one, args=(j,)) for j in range(k)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert not bad, bad


def copies(t, users):
    got = {}
    for u in users:
        for k, v in seqs_in(maildir(t, u)).items():
            got[k] = got.get(k, 0) + v
    return got


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


# --- mta-send with the server ----

def test_vds_one_server_for_50_local_deliveries(t):
    users = [f"u{i}" for i in range(5)]
    setup(t, users=users)
    d = Sender(t)
    seen, stop = set(), []

    def watch():
        # mta-send's children while mail flows: by exec, each delivery
        # would be one of them for a few milliseconds
        while not stop:
            seen.update(children(d.p.pid))
            time.sleep(0.0005)
    w = threading.Thread(target=watch)
    w.start()
    try:
        d.wait_log(r"queue check done")
        inject_many(t, 0, 50, users)
        wait_for("50 messages", lambda: sum(copies(t, users).values()) >= 50,
                 60, d)
        wait_for("an empty queue", lambda: not queue_files(t), 20, d)
        pids = [int(p) for p in re.findall(STARTED, d.log())]
        assert len(pids) == 1, d.log()
        srv = pids[0]
        assert cmdline(srv)[:4] == [b"vdeliver", b"--root",
                                    t.root.encode(), b"--server"]
        assert children(d.p.pid) == [srv]
    finally:
        stop.append(1)
        w.join()
        log = d.stop()
    assert copies(t, users) == {i: 1 for i in range(50)}
    assert len(re.findall(r"delivery \d+: success: delivered", log)) == 50
    assert seen == {srv}, (seen, srv)
    # the server ended with mta-send, which reaped it
    assert not os.path.exists(f"/proc/{srv}")
    # deliveries are made by workers that each make many: the Maildir
    # names carry the delivering pid (P<pid>), a handful for 50 messages
    made_by = set()
    for u in users:
        for f in maildir(t, u):
            made_by.update(re.findall(r"P(\d+)",
                                      os.path.basename(f).split(".")[1]))
    assert 1 <= len(made_by) <= 12, made_by


def test_vds_exec_switch_runs_no_server(t):
    users = ["u0", "u1"]
    setup(t, users=users)
    d = Sender(t, env={"FACTEUR_VDELIVER_EXEC": "1"})
    try:
        inject_many(t, 0, 10, users)
        wait_for("10 messages", lambda: sum(copies(t, users).values()) >= 10,
                 30, d)
        wait_for("an empty queue", lambda: not queue_files(t), 20, d)
    finally:
        log = d.stop()
    assert "vdeliver server" not in log, log
    assert copies(t, users) == {i: 1 for i in range(10)}
    assert len(re.findall(r"delivery \d+: success: delivered", log)) == 10


def test_vds_server_killed_mid_flow_200(t):
    users = [f"u{i}" for i in range(5)]
    setup(t, users=users, concurrencylocal="10")
    inject_many(t, 0, 200, users)
    d = Sender(t)
    try:
        d.wait_log(STARTED)
        d.wait_log(r"delivery \d+: success", count=20, timeout=30)
        first = int(re.search(STARTED, d.log()).group(1))
        os.kill(first, signal.SIGKILL)
        d.wait_log(r"vdeliver server pid %d went away" % first, timeout=60)
        why = re.search(r"vdeliver server pid %d went away \((.*?)\):"
                        % first, d.log()).group(1)
        # its end is seen on the socket, when it is reaped, or when the
        # next request finds no reader (EPIPE, or ECONNRESET when the
        # killed server left a request unread)
        assert why in ("killed by signal 9", "it closed its socket",
                       "its socket failed: Connection reset by peer",
                       "cannot send it a request: Broken pipe",
                       "cannot send it a request: Connection reset by "
                       "peer"), why
        wait_for("an empty queue", lambda: not queue_files(t), 90, d)
        assert d.p.poll() is None
        pids = [int(p) for p in re.findall(STARTED, d.log())]
    finally:
        log = d.stop()
    got = copies(t, users)
    assert set(got) == set(range(200)), sorted(set(range(200)) - set(got))
    assert max(got.values()) <= 2, {k: v for k, v in got.items() if v > 2}
    # deliveries went on through a new server, not by exec
    assert len(pids) == 2 and pids[1] != first, log
    assert "exec" not in log, log
    again = re.findall(r"went away \([^)]*\): (\d+) deliver", log)
    twice = sum(1 for v in got.values() if v == 2)
    assert twice <= int(again[0]), (twice, again)
    print(f"note: server killed ({why}) with {again[0]} deliveries "
          f"outstanding; {twice} messages delivered twice")


def test_vds_servers_that_keep_dying_fall_back_to_exec(t):
    users = [f"u{i}" for i in range(3)]
    setup(t, users=users, concurrencylocal="4")
    inject_many(t, 0, 150, users)
    d = Sender(t)
    try:
        for k in range(1, 4):
            d.wait_log(STARTED, count=k)
            pid = int(re.findall(STARTED, d.log())[k - 1])
            os.kill(pid, signal.SIGKILL)
            d.wait_log(r"vdeliver server pid %d went away" % pid)
        d.wait_log(r"warning: the vdeliver server went away 3 times in 10 "
                   r"s; running one vdeliver a delivery \(exec\) for 60 s")
        # mail after the fallback (the first 150 may all be delivered by
        # then, on a fast machine): it goes by exec
        inject_many(t, 150, 160, users)
        wait_for("an empty queue", lambda: not queue_files(t), 90, d)
    finally:
        log = d.stop()
    got = copies(t, users)
    assert set(got) == set(range(160))
    # each kill that caught a delivery in flight may add one copy (its
    # worker may have made it); three kills can catch one message twice
    # when its retry comes before the next kill, as on a loaded machine
    seq = {m: int(x) for m, x in re.findall(
        r"info msg (\S+): bytes \d+ from <s(\d+)@sender\.test>", log)}
    dmsg = dict(re.findall(r"starting delivery (\d+): msg (\S+) to", log))
    hits = {}
    for dn in re.findall(r"delivery (\d+): deferral: the_vdeliver_server_"
                         r"went_away", log):
        k = seq.get(dmsg.get(dn))
        hits[k] = hits.get(k, 0) + 1
    over = [(k, v, hits.get(k, 0)) for k, v in got.items()
            if v > max(2, 1 + hits.get(k, 0))]
    assert not over, over
    print(f"note: 3 server kills caught {sum(hits.values())} deliveries; "
          f"{sum(1 for v in got.values() if v > 1)} messages delivered "
          f"twice, {sum(1 for v in got.values() if v > 2)} three times")
    # no fourth server within the minute: the rest went by exec
    assert len(re.findall(STARTED, log)) == 3, log
    after = log.split("(exec) for 60 s", 1)[1]
    assert len(re.findall(r"delivery \d+: success: delivered",
                          after)) >= 10, log


# --- the outcomes, through the server and by exec ----

def outcomes(log):
    """{address: {(kind, text)}} of the local deliveries in a log"""
    addr = dict(re.findall(r"starting delivery (\d+): msg \S+ to local "
                           r"(\S+)", log))
    out = {}
    for dn, kind, text in re.findall(r"delivery (\d+): (success|deferral|"
                                     r"failure): (.*)", log):
        if dn in addr:
            out.setdefault(addr[dn], set()).add((kind, text))
    return out


def report(data):
    """the per-recipient lines of a bounce"""
    return sorted(re.findall(rb"^(?:Final-Recipient|Action|Status|"
                             rb"Diagnostic-Code): .*$", data, re.M))


def test_vds_failures_same_as_exec(t):
    setup(t, users=("snd", "full", "gone", "ok"))
    t.run("vadmin", "setquota", f"full@{DOM}", "10", check=0)
    subprocess.run(["rm", "-rf", t.path("domains", DOM, "gone", "Maildir")],
                   check=True)
    big = body_for(1, b"x" * 5000 + b"\n")
    results = []
    for env in (None, {"FACTEUR_VDELIVER_EXEC": "1"}):
        d = Sender(t, env=env)
        before = set(maildir(t, "snd"))
        try:
            for who in ("nobody", "full", "gone", "ok"):
                t.run("mta-inject", "-f", f"snd@{DOM}", f"{who}@{DOM}",
                      input=big, check=0)
            wait_for("the bounce", lambda: set(maildir(t, "snd")) - before,
                     20, d)
            d.wait_log(r"deferral: .*4\.2\.2", count=1)
            d.wait_log(r"deferral: .*4\.2\.0", count=1)
            # two: ok@'s message and the bounce to snd@ (which can come
            # first, so that one would not prove ok@ was delivered)
            d.wait_log(r"success: delivered", count=2)
        finally:
            log = d.stop()
        bounce, = set(maildir(t, "snd")) - before
        results.append((log, outcomes(log), report(read(bounce))))
    (slog, s_out, s_rep), (elog, e_out, e_rep) = results
    assert len(re.findall(STARTED, slog)) == 1, slog
    assert "vdeliver server" not in elog, elog
    assert s_out == e_out, (s_out, e_out)
    assert s_out[f"nobody@{DOM}"] == {
        ("failure", "vdeliver:_5.1.1_nobody@a.test_does_not_exist")}
    assert any(k == "deferral" and "4.2.2_the_mailbox_of_full@a.test_is_full"
               in x for k, x in s_out[f"full@{DOM}"])
    assert any(k == "deferral" and "4.2.0_the_mailbox_of_gone@a.test_is_"
               "missing" in x for k, x in s_out[f"gone@{DOM}"])
    assert s_out[f"ok@{DOM}"] == {("success", "delivered")}
    assert s_rep == e_rep and b"Status: 5.1.1" in b"\n".join(s_rep), s_rep


# --- the server's protocol, from Python ----

class Server:
    """vdeliver --server on one end of a socketpair; stderr in a file"""

    def __init__(self, t):
        self.t = t
        self.sock, theirs = socket.socketpair(socket.AF_UNIX,
                                              socket.SOCK_SEQPACKET)
        self.errpath = os.path.join(t.tmp, "server.err")
        self.errf = open(self.errpath, "wb")
        e = dict(os.environ)
        e.pop("FACTEUR_ROOT", None)
        e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1")
        self.p = subprocess.Popen([t.bin("vdeliver"), "--root", t.root,
                                   "--server"], stdin=theirs.fileno(),
                                  stdout=subprocess.DEVNULL,
                                  stderr=self.errf, env=e)
        theirs.close()
        self.sock.settimeout(30)
        self.n = 0

    def err(self):
        return read(self.errpath).decode(errors="replace")

    def message(self, body):
        self.n += 1
        path = os.path.join(self.t.tmp, f"msg{self.n}")
        with open(path, "wb") as f:
            f.write(b"JUNK" + body)
        fd = os.open(path, os.O_RDONLY)
        os.lseek(fd, 4, os.SEEK_SET)     # at the message, as the queue does
        return fd

    def send(self, data, fds):
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                array.array("i", fds))] if fds else []
        self.sock.sendmsg([data], anc)

    def deliver(self, tag, sender, rcpt, body):
        """a good request; returns the read end of the output pipe"""
        fd = self.message(body)
        r, w = os.pipe()
        self.send(b"%d\0%s\0%s\0" % (tag, sender.encode(), rcpt.encode()),
                  [fd, w])
        os.close(fd)
        os.close(w)
        return r

    def reply(self):
        return self.sock.recv(100)

    def fds(self):
        return sorted(os.listdir(f"/proc/{self.p.pid}/fd"))

    def close(self):
        self.sock.close()
        rc = self.p.wait(timeout=30)
        self.errf.close()
        err = self.err()
        assert rc == 0, f"server exit {rc}:\n{err}"
        for bad in ("ERROR: AddressSanitizer", "LeakSanitizer",
                    "runtime error"):
            assert bad not in err, err
        return err


def read_all(fd):
    out = b""
    while True:
        b = os.read(fd, 4096)
        if not b:
            os.close(fd)
            return out
        out += b


def test_vds_protocol_bad_requests_then_good(t):
    setup(t, users=("bob",))
    s = Server(t)
    try:
        out = s.deliver(1, "a@b.test", f"bob@{DOM}", body_for(1))
        assert s.reply() == b"1 0\n"
        assert read_all(out) == b""
        assert seqs_in(maildir(t, "bob")) == {1: 1}
        base = s.fds()
        m, (r, w) = s.message(body_for(2)), os.pipe()
        good = b"%d\0a@b.test\0bob@" + DOM.encode() + b"\0"
        # no reply: nothing to answer to
        s.send(b"garbage without any NUL", [])
        s.send(b"garbage without any NUL", [m, w])
        s.send(b"x1\0a@b.test\0bob@a.test\0", [m, w])       # not a tag
        s.send(b"\0a@b.test\0bob@a.test\0", [m, w])         # empty tag
        s.send(b"1" * 30 + b"\0s\0r\0", [m, w])              # tag too long
        s.send(b"", [])                                      # empty
        s.send(b"", [m, w])
        # answered -1: the tag is known
        s.send(good % 10, [])
        s.send(good % 11, [m])
        s.send(good % 12, [m, w, m])
        s.send(good % 13 + b"extra", [m, w])
        s.send(b"14\0a@b.test\0bob@a.test", [m, w])         # no last NUL
        s.send(b"15\0a@b.test", [m, w])
        s.send(b"16\0" + b"x" * 9000 + b"\0bob@a.test\0", [m, w])
        s.send(good % 17, [m, w, m, w, m, w, m, w, m, w, m, w])
        for tag in range(10, 18):
            assert s.reply() == b"%d -1\n" % tag
        os.close(m)
        os.close(w)
        os.close(r)
        # every received descriptor closed again
        assert s.fds() == base, (s.fds(), base)
        assert s.p.poll() is None
        # and the server still works, and logs into a new log/current
        # once the old one is rotated (renamed), as a run would
        cur = t.path("log", "current")
        assert re.search(r"vdeliver\[\d+\]: delivered msg to bob@a\.test",
                         read(cur).decode()), read(cur)
        os.rename(cur, cur + ".rotated")
        out = s.deliver(20, "a@b.test", f"bob@{DOM}", body_for(20))
        assert s.reply() == b"20 0\n"
        assert read_all(out) == b""
        assert re.search(r"vdeliver\[\d+\]: delivered msg to bob@a\.test",
                         read(cur).decode()), read(cur)
        out = s.deliver(21, "a@b.test", f"nobody@{DOM}", body_for(21))
        assert s.reply() == b"21 %d\n" % (100 << 8)
        assert read_all(out) == \
            b"vdeliver: 5.1.1 nobody@a.test does not exist\n"
        # the child checks what the command line checks
        out = s.deliver(22, "a@b.test", "../../etc@a.test", body_for(22))
        assert s.reply() == b"22 %d\n" % (100 << 8)
        assert b"5.1.3" in read_all(out)
        out = s.deliver(23, "a\nb@b.test", f"bob@{DOM}", body_for(23))
        assert s.reply() == b"23 %d\n" % (100 << 8)
        assert b"5.1.7" in read_all(out)
    finally:
        err = s.close()
    assert seqs_in(maildir(t, "bob")) == {1: 1, 20: 1}
    lines = err.splitlines()
    assert len([x for x in lines if "bad request" in x]) == 15, err
    assert all(re.match(r"\S+Z vdeliver\[\d+\]: bad request", x)
               for x in lines), err
    assert "not exactly 2 descriptors; answered -1" in err
    assert "longer than 8192 bytes; answered -1" in err
    assert "more descriptors than it can take; answered -1" in err
    assert "no decimal tag and NUL; ignored" in err


def made_by(files):
    """the pids in the Maildir names (P<pid>) of these files"""
    return {m for f in files
            for m in re.findall(r"P(\d+)", os.path.basename(f).split(".")[1])}


def test_vds_worker_sees_tables_regenerated_between_deliveries(t):
    # a worker keeps the tables open between deliveries (lib/cdbx.h):
    # what vadmin changes between two of them must be what the second
    # one reads, in the same worker
    setup(t, users=("bob", "carol"))
    s = Server(t)
    try:
        out = s.deliver(1, "a@b.test", f"bob@{DOM}", body_for(1))
        assert s.reply() == b"1 0\n", s.err()
        assert read_all(out) == b""
        # the domain's table regenerated: bob now forwards to carol
        t.run("vadmin", "forward", f"bob@{DOM}", f"carol@{DOM}")
        out = s.deliver(2, "a@b.test", f"bob@{DOM}", body_for(2))
        assert s.reply() == b"2 0\n", s.err()
        assert read_all(out) == b""
        assert seqs_in(maildir(t, "carol")) == {2: 1}
        assert seqs_in(maildir(t, "bob")) == {1: 1}
        pids = made_by(maildir(t, "carol"))
        # a new user, and a new domain in assign.cdb
        t.run("vadmin", "adduser", f"dave@{DOM}", "pw")
        t.run("vadmin", "adddomain", "b.test", "pm-pass")
        t.run("vadmin", "adduser", "erin@b.test", "pw")
        out = s.deliver(3, "a@b.test", f"dave@{DOM}", body_for(3))
        assert s.reply() == b"3 0\n", s.err()
        out4 = s.deliver(4, "a@b.test", "erin@b.test", body_for(4))
        assert s.reply() == b"4 0\n", s.err()
        assert read_all(out) == b"" and read_all(out4) == b""
        # and one removed: the forward's destination is gone
        t.run("vadmin", "deluser", f"carol@{DOM}")
        out = s.deliver(5, "a@b.test", f"bob@{DOM}", body_for(5))
        assert s.reply() == b"5 %d\n" % (100 << 8)
        assert b"5.1.1 carol@a.test does not exist" in read_all(out)
    finally:
        s.close()
    assert seqs_in(maildir(t, "bob")) == {1: 1}
    assert seqs_in(maildir(t, "dave")) == {3: 1}
    assert seqs_in(maildir(t, "erin", "b.test")) == {4: 1}
    # one worker made every delivery: the same process read the tables
    # before and after each change
    files = maildir(t, "bob") + maildir(t, "dave") + \
        maildir(t, "erin", "b.test")
    assert len(made_by(files) | pids) == 1, (files, pids)


def test_vds_requests_left_by_a_dead_mta_send_are_not_run(t):
    """requests still queued in the socket when mta-send dies are not
    delivered: the next mta-send, which knows nothing of them, delivers
    those messages again, so running them would only make copies"""
    setup(t, users=("bob",))
    s = Server(t)
    out = s.deliver(1, "a@b.test", f"bob@{DOM}", body_for(1))
    assert s.reply() == b"1 0\n"
    os.close(out)
    s.p.send_signal(signal.SIGSTOP)
    try:
        for tag in (2, 3, 4):
            os.close(s.deliver(tag, "a@b.test", f"bob@{DOM}",
                               body_for(tag)))
    finally:
        s.sock.close()          # mta-send is gone, requests still queued
        s.p.send_signal(signal.SIGCONT)
    assert s.p.wait(timeout=30) == 0
    s.errf.close()
    err = s.err()
    assert seqs_in(maildir(t, "bob")) == {1: 1}, err
    # the first is read and refused; the server may stop reading there
    assert "request 2 not run: mta-send is gone" in err, err


def test_vds_child_holds_no_server_descriptor_and_sigterm(t):
    setup(t, users=("bob",))
    s = Server(t)
    try:
        # a message on a pipe that stays open: the child waits for it
        mr, mw = os.pipe()
        r, w = os.pipe()
        s.send(b"5\0a@b.test\0bob@a.test\0", [mr, w])
        os.close(mr)
        os.close(w)
        kids = wait_for("the child", lambda: children(s.p.pid), 10)

        def links():
            out = {}
            for fd in os.listdir(f"/proc/{kids[0]}/fd"):
                try:
                    out[fd] = os.readlink(f"/proc/{kids[0]}/fd/{fd}")
                except OSError:
                    pass
            return out
        # once its stdin is the message, the server's are gone or never
        wait_for("the child's stdin", lambda: links().get("0", "")
                 .startswith("pipe:"), 10)
        links = list(links().values())
        # a worker has its own socket to the server, never the server's
        # socket to mta-send nor its signalfd
        theirs = os.readlink(f"/proc/{s.p.pid}/fd/0")
        assert theirs.startswith("socket:"), theirs
        assert theirs not in links, (theirs, links)
        assert not [x for x in links if "signalfd" in x], links
        assert len([x for x in links if x.startswith("socket:")]) <= 1, links
        assert [x for x in links if x.startswith("pipe:")], links
        # a delivery through a pipe finishes once the message ends
        os.write(mw, body_for(5))
        os.close(mw)
        assert s.reply() == b"5 0\n"
        assert read_all(r) == b""
        # SIGTERM (mta-send's stop deadline): the children get it
        mr, mw = os.pipe()
        r, w = os.pipe()
        s.send(b"6\0a@b.test\0bob@a.test\0", [mr, w])
        os.close(mr)
        os.close(w)
        # the worker that made delivery 5 (or a new child) takes it: its
        # stdin becomes the pipe again (it is /dev/null between two)

        def reading():
            for k in children(s.p.pid):
                try:
                    if os.readlink(f"/proc/{k}/fd/0").startswith("pipe:"):
                        return True
                except OSError:
                    pass
            return False
        wait_for("the delivery of 6", reading, 10)
        s.p.send_signal(signal.SIGTERM)
        got = s.reply()
        assert got == b"6 %d\n" % signal.SIGTERM, got
        os.close(mw)
        os.close(r)
        # then nothing more runs, and the server waits for end of file
        out = s.deliver(7, "a@b.test", f"bob@{DOM}", body_for(7))
        assert s.reply() == b"7 -1\n"
        os.close(out)
        assert s.p.poll() is None
    finally:
        err = s.close()
    assert seqs_in(maildir(t, "bob")) == {5: 1}
    assert "stopping 1 delivery (SIGTERM)" in err, err
    assert "request 7 not run: stopping" in err, err


def test_vds_server_needs_a_seqpacket_socket(t):
    setup(t, users=("bob",))
    p = t.run("vdeliver", "--server", check=2)
    assert "SOCK_SEQPACKET" in p.err, p.err
    p = t.run("vdeliver", "--server", f"bob@{DOM}", check=2)
    assert "--server takes no recipient" in p.err, p.err


def test_vds_stop_deadline_reaches_a_stuck_delivery(t):
    """mta-send told to stop while a delivery through the server is stuck
    (the Maildir's lock held): after its 10 s grace the server passes
    SIGTERM to the child, the delivery is deferred, both processes exit"""
    import fcntl
    setup(t, users=("q",))
    t.run("vadmin", "setquota", f"q@{DOM}", "1M", check=0)
    md = quota_lock(t.path("domains", DOM, "q", "Maildir"))
    fcntl.flock(md, fcntl.LOCK_EX)
    d = Sender(t)
    try:
        t.run("mta-inject", "-f", "s@x.test", f"q@{DOM}", input=body_for(1),
              check=0)
        d.wait_log(STARTED)
        srv = int(re.search(STARTED, d.log()).group(1))
        kid = wait_for("the delivery", lambda: children(srv), 10, d)[0]
        time.sleep(0.3)
        assert os.path.exists(f"/proc/{kid}"), "the delivery did not wait"
        t0 = time.monotonic()
        d.p.send_signal(signal.SIGTERM)
        rc = d.p.wait(timeout=30)
        took = time.monotonic() - t0
        d.logf.close()
    finally:
        fcntl.flock(md, fcntl.LOCK_UN)
        os.close(md)
        if d.p.poll() is None:
            d.kill9(group=True)
    log = d.log()
    assert rc == 0, log
    d.check_sanitizers()
    assert 9 < took < 15, (took, log)
    assert re.search(r"delivery \d+: deferral: vdeliver_was_killed_by_"
                     r"signal_15", log), log
    assert "stopped" in log
    assert not maildir(t, "q")
    assert not os.path.exists(f"/proc/{srv}")
    assert not os.path.exists(f"/proc/{kid}")
    assert len(queue_files(t)) == 2     # the message and its status
