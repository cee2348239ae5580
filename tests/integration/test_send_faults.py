"""test_send_faults - mta-send under faults (the scheduler issue's list):
kill -9 of the scheduler and of its children while mail moves, remote MX
servers that misbehave, a full disk, clocks that jump (libfaketime),
corrupt queue files of every kind, a 1,000-recipient message, the size of
a bounce, and a mail loop.

Everything is real: mta-send runs as a daemon with the real vdeliver and
mta-remote; remote MX servers are Python sockets on 127.0.0.2-9. Messages
carry an X-Seq header (and a sender naming it) so that every copy in a
Maildir or at an MX can be counted against what mta-inject accepted.
"""
import glob
import os
import pwd
import re
import signal
import struct
import subprocess
import threading
import time

from helpers import (MX, Sender, qf_build, qf_parse, queue_files,
                     wait_for)

AS_ROOT = os.geteuid() == 0
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
DOM = "a.test"


# --- a root, messages, mailboxes ----

def setup(t, users=("u",), domains=(DOM,), **control):
    t.init()
    for d in domains:
        t.run("vadmin", "adddomain", d, "pm-pass", check=0)
    for u in users:
        t.run("vadmin", "adduser", u if "@" in u else f"{u}@{DOM}", "pw",
              check=0)
    control.setdefault("retrybase", "1")
    control.setdefault("timeoutremote", "2")
    control.setdefault("timeoutconnect", "2")
    control.setdefault("me", "mx.a.test")
    control.setdefault("doublebounceto", f"postmaster@{DOM}")
    for k, v in control.items():
        put_control(t, k, v)


def put_control(t, name, value):
    with open(t.path("control", name), "w") as f:
        f.write(f"{value}\n")


def mailuser():
    return pwd.getpwnam("facteur") if AS_ROOT else None


def own(path):
    """give PATH to the mail user, as if mta-send had written it"""
    if AS_ROOT:
        pw = mailuser()
        os.lchown(path, pw.pw_uid, pw.pw_gid)


def body_for(seq, extra=b""):
    return (b"Subject: msg %d\nX-Seq: %d\n\nbody of %d\n" % (seq, seq, seq)
            + extra)


def inject(t, sender, *rcpts, body=None, env=None, check=0):
    return t.run("mta-inject", "-f", sender, *rcpts,
                 input=body if body is not None else b"Subject: x\n\nhi\n",
                 env=env, check=check)


def maildir(t, user, domain=DOM, sub="new"):
    d = t.path("domains", domain, user, "Maildir", sub)
    return sorted(glob.glob(os.path.join(d, "*")))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def seqs_in(files):
    """{seq: copies} of the X-Seq headers in these message files"""
    out = {}
    for p in files:
        m = re.search(rb"^X-Seq: (\d+)$", read(p), re.M)
        if m:
            k = int(m.group(1))
            out[k] = out.get(k, 0) + 1
    return out


# --- mta-send as a daemon (helpers.Sender) ----

def lock_holders(t):
    """the processes with queue/lock open: [(pid, name)]"""
    out, lock = [], t.path("queue", "lock")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == lock:
                    with open(f"/proc/{pid}/comm") as f:
                        out.append((int(pid), f.read().strip()))
        except OSError:
            pass
    return out


def restart(t, env=None):
    """mta-send again after a kill -9, as facteur run would start it: a
    child caught between posix_spawn's clone and its exec can hold the
    queue lock (shared file description) for a moment after its parent
    died, so "queue/lock is held" (exit 111) is retried for a while"""
    for _ in range(20):
        d = Sender(t, env)
        try:
            d.p.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return d
        log = d.log()
        d.logf.close()
        assert d.p.returncode == 111 and "is held" in log, log
        print("note: restart found queue/lock still held (by "
              f"{lock_holders(t)}); retrying")
        time.sleep(0.2)
    raise AssertionError("queue/lock held for 4 s after kill -9")


def deferred(log):
    """the addresses with a deferral in a log"""
    started = {d: a for d, a in re.findall(
        r"starting delivery (\d+): msg \S+ to \S+ (\S+)", log)}
    return {started.get(d) for d in re.findall(
        r"delivery (\d+): deferral: ", log)}


def in_flight(log):
    """(msg id, address) of the deliveries a kill -9 may have caught in
    the middle: started in this log, and either without an outcome or
    of a message not yet finished ("end msg"), since the outcome is
    logged before it is written to the queue"""
    started = {d: (m, a) for d, m, a in re.findall(
        r"starting delivery (\d+): msg (\S+) to \S+ (\S+)", log)}
    ended = set(re.findall(r"end msg (\S+)", log))
    done = set(re.findall(r"delivery (\d+): (?:success|deferral|failure)",
                          log))
    return [(m, a) for d, (m, a) in started.items()
            if d not in done or m not in ended]


# --- remote MX servers (helpers.MX) ----

def routes(t, table):
    """control/smtproutes from {domain: MX}"""
    with open(t.path("control", "smtproutes"), "w") as f:
        for d, mx in table.items():
            f.write(f"{d}:{mx.sock.getsockname()[0]}:{mx.port}\n")


# --- kill -9 while mail moves ----

def kill9_run(t, n):
    """n messages, each to a local user, every third one to a remote MX
    too; injected before and while mta-send runs; children killed one by
    one, then mta-send alone, then mta-send with all its children; then a
    restart. Every accepted message must arrive, at most twice (once more
    for each kill that caught that very delivery in flight)."""
    users = [f"u{i}" for i in range(5)]
    # a slow MX must not turn into duplicates here: the test is about kills
    setup(t, users=users, concurrencylocal="10", concurrencyremote="10",
          timeoutremote="20")
    mx = MX("127.0.0.6")
    routes(t, {"r.test": mx})
    accepted, failed = [], []

    def rcpts(i):
        out = [f"{users[i % len(users)]}@{DOM}"]
        if i % 3 == 0:
            out.append(f"x{i}@r.test")
        return out

    def injector(lo, hi):
        for i in range(lo, hi):
            p = t.run("mta-inject", "-f", f"s{i}@sender.test", *rcpts(i),
                      input=body_for(i))
            if p.returncode == 0:
                accepted.append(i)
            else:
                failed.append((i, p.returncode, p.err[-2000:]))

    def inject_parallel(lo, hi, k=3):
        """k injectors at once over interleaved parts of [lo, hi)"""
        th = [threading.Thread(target=lambda j=j: [
            injector(i, i + 1) for i in range(lo + j, hi, k)])
            for j in range(k)]
        for x in th:
            x.start()
        return th

    logs, kills, d, th = [], [], None, []
    try:
        for x in inject_parallel(0, n // 3):
            x.join()
        d = Sender(t)
        th = inject_parallel(n // 3, n)
        # children one at a time: vdeliver and mta-remote killed mid-work
        killed_children = 0
        end = time.monotonic() + 20
        while killed_children < 6 and time.monotonic() < end:
            kids = d.children()
            if kids:
                try:
                    os.kill(kids[-1], signal.SIGKILL)
                    killed_children += 1
                except ProcessLookupError:
                    pass
                time.sleep(0.15)
            else:
                time.sleep(0.01)
        assert killed_children >= 3, d.log()
        # mta-send alone (its children finish on their own)
        wait_for("children", d.children, 10, d)
        d.kill9()
        logs.append(d.log())
        kills.append(in_flight(d.log()))
        d = restart(t)
        d.wait_log(r"starting delivery", count=15)
        wait_for("children", d.children, 10, d)
        # mta-send with every child, at one moment
        d.kill9(group=True)
        logs.append(d.log())
        kills.append(in_flight(d.log()))
        d = restart(t)
        for x in th:
            x.join()
        wait_for("an empty queue", lambda: not queue_files(t), 120, d)
        logs.append(d.stop())
    finally:
        for x in th:
            x.join(timeout=120)
        if d is not None and d.p.poll() is None:
            d.kill9(group=True)
        mx.close()
    assert not failed, f"mta-inject refused {failed}"
    assert len(accepted) == n
    all_log = "\n".join(logs)
    # queue id -> seq, from "info msg ID: ... from <sSEQ@sender.test>"
    ids = {m: int(s) for m, s in re.findall(
        r"info msg (\S+): bytes \d+ from <s(\d+)@sender\.test>", all_log)}
    hits = {}
    for fl in kills:
        for m, addr in fl:
            if m in ids:
                hits[(ids[m], addr)] = hits.get((ids[m], addr), 0) + 1
    # a child killed on its own may have delivered before it died, and
    # so may a delivery that outlived its vdeliver server
    for lg in logs:
        started = {dn: (m, a) for dn, m, a in re.findall(
            r"starting delivery (\d+): msg (\S+) to \S+ (\S+)", lg)}
        for dn in re.findall(r"delivery (\d+): deferral: (?:vdeliver_was_"
                             r"killed|mta-remote_said_nothing|the_vdeliver_"
                             r"server_went_away)", lg):
            m, addr = started.get(dn, (None, None))
            if m in ids:
                hits[(ids[m], addr)] = hits.get((ids[m], addr), 0) + 1
    local = {}
    for u in users:
        for k, v in seqs_in(maildir(t, u)).items():
            local[k] = local.get(k, 0) + v
    remote = mx.seqs()
    lost, dup = [], []
    for i in accepted:
        allow_l = 2 + max(0, hits.get((i, rcpts(i)[0]), 0) - 1)
        if local.get(i, 0) < 1:
            lost.append(("local", i))
        elif local[i] > allow_l:
            dup.append(("local", i, local[i]))
        if i % 3 == 0:
            allow_r = 2 + max(0, hits.get((i, f"x{i}@r.test"), 0) - 1)
            if remote.get(i, 0) < 1:
                lost.append(("remote", i))
            elif remote[i] > allow_r:
                dup.append(("remote", i, remote[i]))
    assert not lost, f"lost: {lost}"
    if dup:
        rev = {v: k for k, v in ids.items()}
        why = []
        for _, i, _ in dup:
            why.append(f"seq {i} = msg {rev.get(i)}, hits "
                       f"{[(k, v) for k, v in hits.items() if k[0] == i]}:")
            for n, lg in enumerate(logs):
                why += [f"  log {n}: {ln}" for ln in lg.splitlines()
                        if rev.get(i, "?") in ln]
            for u in users:
                for f in maildir(t, u):
                    if re.search(rb"^X-Seq: %d$" % i, read(f), re.M):
                        why.append(f"  copy {f} {os.stat(f).st_mtime:.6f}")
        why.append("ids of these seqs: " + repr(
            [(k, v) for k, v in ids.items() if v in [x[1] for x in dup]]))
        raise AssertionError(f"delivered too often: {dup}\n" +
                             "\n".join(why))
    assert not set(local) - set(accepted)
    twice = sum(1 for v in local.values() if v > 1) + \
        sum(1 for v in remote.values() if v > 1)
    print(f"note: kill9 {n} messages: {sum(local.values())} local and "
          f"{sum(remote.values())} remote copies, {twice} delivered twice, "
          f"{killed_children} children killed, in flight at the two "
          f"scheduler kills: {[len(k) for k in kills]}")


def test_kill9_scheduler_and_children_300(t):
    kill9_run(t, 300)


def slow_kill9_scheduler_and_children_1000(t):
    kill9_run(t, 1000)


def test_children_start_with_clean_signals(t):
    """mta-send blocks SIGTERM and SIGCHLD for its signalfd; its delivery
    programs must not inherit that, or the SIGTERM of the stop deadline
    would never reach one that hangs"""
    setup(t, timeoutremote="30")
    mx = MX("127.0.0.7", mode="silent")
    routes(t, {"r.test": mx})
    d = Sender(t)
    try:
        inject(t, "s@sender.test", "x@r.test", check=0)

        def remote_kid():
            for k in d.children():
                try:
                    with open(f"/proc/{k}/comm") as f:
                        if f.read().strip() == "mta-remote":
                            return k
                except OSError:
                    pass
            return None
        wait_for("mta-remote", remote_kid, 10, d)
        with open(f"/proc/{remote_kid()}/status") as f:
            st = f.read()
        blk = int(re.search(r"^SigBlk:\s*(\S+)", st, re.M).group(1), 16)
        ign = int(re.search(r"^SigIgn:\s*(\S+)", st, re.M).group(1), 16)
        assert blk == 0, f"mta-remote starts with signals blocked: {blk:x}"
        assert not ign & (1 << (signal.SIGTERM - 1)), f"{ign:x}"
        assert not ign & (1 << (signal.SIGCHLD - 1)), f"{ign:x}"
        # and so a stop that outlasts the 10 s grace period ends it,
        # well before the 30 s timeout of mta-remote
        t0 = time.monotonic()
        assert d.stop().rstrip().endswith("stopped")
        assert time.monotonic() - t0 < 20
    finally:
        if d.p.poll() is None:
            d.kill9(group=True)
        mx.close()


def test_delivery_program_that_cannot_start_is_a_deferral(t):
    """mta-remote (and, with FACTEUR_VDELIVER_EXEC=1, vdeliver) that
    cannot be executed: each such delivery is logged as started, ends as
    a deferral that says why, frees its slot, and mta-send goes on"""
    import shutil
    setup(t)
    mx = MX("127.0.0.8")
    routes(t, {"r.test": mx})
    own = os.path.join(t.tmp, "bin")
    os.mkdir(own)
    for prog in ("mta-send", "vdeliver", "mta-remote"):
        shutil.copy2(t.bin(prog), own)
    os.chmod(os.path.join(own, "mta-remote"), 0o644)
    os.chmod(os.path.join(own, "vdeliver"), 0o644)
    saved = t.bindir
    t.bindir = own
    try:
        d = Sender(t, env={"FACTEUR_VDELIVER_EXEC": "1"})
    finally:
        t.bindir = saved
    try:
        inject(t, "s@sender.test", "x@r.test", f"u@{DOM}", check=0)
        d.wait_log(r"deferral: cannot_start_mta-remote:_Permission_denied")
        d.wait_log(r"deferral: cannot_start_vdeliver:_Permission_denied")
        d.wait_log(r"status: local 0/10 remote 0/20")
        assert d.p.poll() is None
        # once they can run, the retry delivers
        os.chmod(os.path.join(own, "mta-remote"), 0o755)
        os.chmod(os.path.join(own, "vdeliver"), 0o755)
        d.p.send_signal(signal.SIGALRM)
        wait_for("an empty queue", lambda: not queue_files(t), 30, d)
    finally:
        log = d.stop()
        mx.close()
    assert len(maildir(t, "u")) == 1, log
    assert len(mx.got) == 1, log
    # every start ended once: a deferral that says why, or the success
    started = len(re.findall(r"starting delivery \d+", log))
    refused = len(re.findall(r"deferral: cannot_start_", log))
    assert refused >= 2 and started == refused + 2, log
    assert len(re.findall(r"delivery \d+: success", log)) == 2, log


# --- remote MX servers that misbehave ----

def test_remote_faults_defer_then_deliver(t):
    """an MX that never answers, one that answers a byte a second, one
    that sends a 10 MB reply line, one that closes after DATA: each a
    deferral within timeoutremote (no hang, the other deliveries go on),
    then a retry that delivers once the server behaves"""
    setup(t, concurrencyremote="10")
    faults = {"silent": "127.0.0.2", "slow": "127.0.0.3",
              "huge": "127.0.0.4", "close_after_data": "127.0.0.5"}
    mxs = {mode: MX(ip, mode=mode) for mode, ip in faults.items()}
    try:
        routes(t, {f"{mode.replace('_', '-')}.test": mx
                   for mode, mx in mxs.items()})
        d = Sender(t)
        try:
            t0 = time.monotonic()
            for k, mode in enumerate(mxs):
                inject(t, f"u@{DOM}", f"rcpt@{mode.replace('_', '-')}.test",
                       body=body_for(k))
            # a local delivery meanwhile is not held up
            inject(t, "s@x.test", f"u@{DOM}", body=body_for(99))
            wait_for("the local delivery", lambda: maildir(t, "u"), 10, d)
            want = {f"rcpt@{m.replace('_', '-')}.test" for m in mxs}
            wait_for("a deferral for each faulty MX",
                     lambda: want <= deferred(d.log()), 30, d)
            t_defer = time.monotonic() - t0
            for mx in mxs.values():
                mx.mode = "good"
            wait_for("every MX to get its message",
                     lambda: all(mx.got for mx in mxs.values()), 40, d)
            wait_for("an empty queue", lambda: not queue_files(t), 10, d)
            log = d.stop()
        finally:
            if d.p.poll() is None:
                d.stop()
    finally:
        for mx in mxs.values():
            mx.close()
    # timeoutremote is 2 s: four faulty servers at once cost seconds, and
    # 10 MB of reply were never read whole
    assert t_defer < 15, f"deferrals took {t_defer:.1f} s:\n{log}"
    for k, (mode, mx) in enumerate(mxs.items()):
        assert mx.conns[0][1] == mode, (mode, mx.conns)
        assert [m for _, m in mx.conns].count("good") >= 1, (mode, mx.conns)
        assert mx.seqs() == {k: 1}, (mode, mx.seqs(), mx.conns)
    assert len(re.findall(r"delivery \d+: deferral: ", log)) >= 4, log
    assert len(re.findall(r"delivery \d+: success: ", log)) == 5, log
    assert "failure" not in log, log
    assert "bounce msg" not in log, log
    # a failed attempt or a few (retries 1, 4, 9 s after arrival), then
    # the one that delivered
    for mode, mx in mxs.items():
        assert 2 <= len(mx.conns) <= 6, (mode, mx.conns)


# --- a full disk ----

def test_disk_full_during_delivery_defers_then_delivers(t):
    """a mailbox on a 64 KiB tmpfs: a 300 KB message cannot be written
    (ENOSPC, 4.3.1), is deferred, and arrives whole once the file system
    grows; a small message to another user flows meanwhile"""
    if not AS_ROOT:
        print("note: test_disk_full needs root (mount -t tmpfs); not run")
        return
    setup(t, users=("u", "full"))
    md = t.path("domains", DOM, "full", "Maildir")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700",
                    "tmpfs", md], check=True)
    try:
        for sub in ("cur", "new", "tmp"):
            os.mkdir(os.path.join(md, sub), 0o700)
            own(os.path.join(md, sub))
        own(md)
        line = b"0123456789" * 7 + b"\n"
        big = body_for(1, line * 4000)          # ~ 284 KB
        d = Sender(t)
        try:
            inject(t, "s@x.test", f"full@{DOM}", body=big)
            d.wait_log(r"delivery \d+: deferral: .*4\.3\.1")
            inject(t, "s@x.test", f"u@{DOM}", body=body_for(2))
            wait_for("u's message", lambda: maildir(t, "u"), 10, d)
            assert not maildir(t, "full")
            assert not os.listdir(os.path.join(md, "tmp")), "tmp not cleaned"
            subprocess.run(["mount", "-o", "remount,size=2m", md],
                           check=True)
            got = wait_for("the big message",
                           lambda: maildir(t, "full"), 20, d)
            wait_for("an empty queue", lambda: not queue_files(t), 10, d)
            log = d.stop()
        finally:
            if d.p.poll() is None:
                d.stop()
        assert len(got) == 1
        data = read(got[0])
        assert data.endswith(big), len(data)
        assert seqs_in(maildir(t, "u")) == {2: 1}
        assert len(re.findall(r"delivery \d+: success", log)) == 2, log
        assert "failure" not in log and "bounce" not in log, log
    finally:
        subprocess.run(["umount", "-l", md])


# --- clocks that jump ----

def faketime_env(t, offset):
    """libfaketime with an offset read from a file at every call, so that
    the clock of a running mta-send (and of its children) can jump; the
    monotonic clock is left alone, as a real clock change leaves it"""
    assert os.path.exists(FAKETIME), f"libfaketime missing: {FAKETIME}"
    path = os.path.join(t.tmp, "faketime")
    set_clock(path, offset)
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1")
    return path, {
        "LD_PRELOAD": FAKETIME,
        "FAKETIME_TIMESTAMP_FILE": path,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # the sanitizer build wants its runtime first; libfaketime only
        # wraps time calls, so the order does not matter here
        "ASAN_OPTIONS": asan + ":verify_asan_link_order=0",
    }


def set_clock(path, offset):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{offset:+d}\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def test_clock_jumps_back_an_hour_and_forward_a_day(t):
    """mail moves while the clock jumps an hour back; mta-send stops, the
    clock goes back another hour, mta-send starts again; then the clock
    jumps a day forward: deferred remote recipients are still retried on
    schedule (not an hour later), and every message arrives exactly
    once, locally and remotely"""
    setup(t)
    clock, env = faketime_env(t, 0)
    mx = MX("127.0.0.7", mode="tempfail")
    routes(t, {"r.test": mx})
    seq = iter(range(1000))
    sent = []

    def send(k):
        for _ in range(k):
            i = next(seq)
            inject(t, f"s{i}@x.test", f"u@{DOM}", f"x{i}@r.test",
                   body=body_for(i), env=env)
            sent.append(i)

    def refused(i):
        with mx.lock:
            return mx.refused.count(f"x{i}@r.test")

    def retried(before, within):
        """every message sent so far tried again at the MX"""
        wait_for(f"retries at the MX after {before} (seq: tries)",
                 lambda: all(refused(i) > before.get(i, 0) for i in sent),
                 within, d)
        return {i: refused(i) for i in sent}

    d, logs = None, []
    try:
        d = Sender(t, env)
        send(4)
        counts = retried({}, 15)
        # an hour back while mail moves
        set_clock(clock, -3600)
        time.sleep(0.2)
        send(3)
        counts = retried(counts, 15)
        # another hour back while mta-send is down: at its start the
        # queue's retry times are an hour ahead of its clock
        logs.append(d.stop())
        set_clock(clock, -7200)
        d = Sender(t, env)
        send(2)
        counts = retried(counts, 20)
        # a day forward: everything is due at once, nothing expires
        set_clock(clock, 86400)
        send(2)
        counts = retried(counts, 15)
        mx.mode = "good"
        wait_for("every remote recipient",
                 lambda: set(mx.seqs()) == set(sent), 40, d)
        wait_for("every local copy",
                 lambda: set(seqs_in(maildir(t, "u"))) == set(sent), 10, d)
        wait_for("an empty queue", lambda: not queue_files(t), 10, d)
        logs.append(d.stop())
    finally:
        mx.close()
        if d is not None and d.p.poll() is None:
            d.stop()
    log = "\n".join(logs)
    assert seqs_in(maildir(t, "u")) == {i: 1 for i in sent}
    assert mx.seqs() == {i: 1 for i in sent}, mx.seqs()
    assert "failure" not in log and "bounce msg" not in log, log
    # the clock mta-send saw really jumped (libfaketime took effect)
    now = time.time()
    seen = set()
    for stamp in re.findall(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", log,
                           re.M):
        off = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) - \
            time.mktime(time.gmtime(now))
        seen.add(round(off / 3600))
    assert {0, -1, -2, 24} <= seen, sorted(seen)


# --- corrupt queue files ----

def good_file(t, seq, rcpt=None):
    """the bytes of a real queue file for message SEQ (mta-inject makes it
    while no scheduler runs; it is taken out of new/ again)"""
    before = set(os.listdir(t.path("queue", "new")))
    inject(t, f"s{seq}@x.test", rcpt or f"u@{DOM}", body=body_for(seq))
    (name,) = set(os.listdir(t.path("queue", "new"))) - before
    path = t.path("queue", "new", name)
    data = read(path)
    os.unlink(path)
    return name, data


def corrupt_kinds(t, base_seq):
    """{kind: (bytes or a marker, seq whose copy must never arrive)}, made
    from real queue files of messages base_seq.."""
    _, data = good_file(t, base_seq)
    recs, msg = qf_parse(data)
    env = qf_build(recs, b"")[:-9]
    t_rec = [r for r in recs if r[0] == "T"][0]
    f_rec = [r for r in recs if r[0] == "F"][0]
    other = qf_build(recs, body_for(base_seq + 1))
    return {
        "truncated-envelope": env[:len(env) - 7],
        "truncated-message": data[:-5],
        "missing-envelope": msg,                 # a message, no records
        "zero-length": b"",
        "garbage": bytes((i * 151 + 7) % 256 for i in range(700)),
        "unterminated-rcpt": qf_build([t_rec, f_rec], b"")[:-9]
        + b"R" + struct.pack("<I", 500) + b"u@a.test",
        "unknown-record": qf_build(recs[:2] + [("Z", b"zzz")] + recs[2:],
                                   body_for(base_seq + 2)),
        "other-owner": other,
    }


class Corruptor:
    """places bad files in the queue, each under an id of its own"""

    def __init__(self, t):
        self.t = t
        self.n = 0x7a000
        self.stage = os.path.join(t.tmp, "stage")
        os.makedirs(self.stage, exist_ok=True)
        self.arrival = int(time.time() * 1e6)

    def new_id(self):
        self.n += 1
        return f"{self.arrival:x}.{self.n:x}"

    def hh(self, qid):
        return f"{int(qid.split('.')[1], 16) & 0xff:02x}"

    def msg_dir(self, qid):
        d = self.t.path("queue", "msg", self.hh(qid))
        if not os.path.isdir(d):
            os.makedirs(d, 0o700)
            own(d)
            own(os.path.dirname(d))
        return d

    def put(self, where, kind, data, name=None):
        """write one bad file into msg/HH/ ("msg") or new/ ("new") the way
        a crash or a hand would leave it; returns its path"""
        qid = name or self.new_id()
        d = self.msg_dir(qid) if where == "msg" else \
            self.t.path("queue", "new")
        dst = os.path.join(d, qid)
        tmp = os.path.join(self.stage, qid)
        if kind == "symlink":
            target = os.path.join(self.stage, "target-" + qid)
            with open(target, "wb") as f:
                f.write(data)
            own(target)
            os.symlink(target, tmp)
        elif kind == "directory":
            os.mkdir(tmp, 0o700)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
        if kind != "other-owner":
            own(tmp)        # as root the file is root's: another user
        os.rename(tmp, dst)
        return dst


def templates(t, base_seq):
    """the bad files' contents, made while no scheduler runs"""
    kinds = corrupt_kinds(t, base_seq)
    if not AS_ROOT:
        kinds.pop("other-owner")
    return kinds, good_file(t, base_seq + 3)[1]


def place_all(t, c, where, tpl):
    """every kind of bad file in msg/HH/ or new/: {path: kind}"""
    kinds, good = tpl
    out = {}
    for kind, data in kinds.items():
        out[c.put(where, kind, data)] = kind
    out[c.put(where, "symlink", good)] = "symlink"
    out[c.put(where, "directory", b"")] = "directory"
    # a status file whose message is gone
    qid = c.new_id()
    d = c.msg_dir(qid) if where == "msg" else t.path("queue", "new")
    p = os.path.join(d, qid + ".s")
    with open(p, "wb") as f:
        f.write(b"T 0 1 2 4.0.0 try again\n")
    own(p)
    out[p] = "missing-message"
    # a name that is no queue id
    p = os.path.join(d, "notanid~")
    with open(p, "wb") as f:
        f.write(good)
    own(p)
    out[p] = "bad-name"
    return out


def test_corrupt_queue_check_and_repair(t):
    """mta-send --check names each bad file once (exit 1); --repair moves
    them to queue/quarantine/ (exit 0); a misplaced good message is put
    in its place and a duplicate id set aside; the good mail then flows"""
    setup(t)
    c = Corruptor(t)
    bad = place_all(t, c, "msg", templates(t, 100))
    bad.update(place_all(t, c, "new", templates(t, 200)))
    # a good message in the wrong msg/HH directory, its own directory not
    # made yet (msg/HH/ is made on first use)
    for _ in range(20):
        name, data = good_file(t, 300)
        if not os.path.exists(t.path("queue", "msg", c.hh(name))):
            break
    wrong = t.path("queue", "msg", "ff" if c.hh(name) != "ff" else "fe")
    os.makedirs(wrong, exist_ok=True)
    own(wrong)
    misplaced = os.path.join(wrong, name)
    with open(misplaced, "wb") as f:
        f.write(data)
    own(misplaced)
    # the same id in new/ and in msg/HH/
    name2, data2 = good_file(t, 301)
    dup_msg = os.path.join(c.msg_dir(name2), name2)
    dup_new = t.path("queue", "new", name2)
    for p in (dup_msg, dup_new):
        with open(p, "wb") as f:
            f.write(data2)
        own(p)
    # garbage status lines beside a good message: ignored, not fatal
    name3, data3 = good_file(t, 302)
    p3 = os.path.join(c.msg_dir(name3), name3)
    with open(p3, "wb") as f:
        f.write(data3)
    with open(p3 + ".s", "wb") as f:
        f.write(b"\x00\xffnot a status line\nD 99 1 x\nT 0")
    own(p3)
    own(p3 + ".s")

    p = t.run("mta-send", "--check", check=1)
    lines = [ln for ln in p.out.splitlines() if ln.startswith("problem ")]
    named = {}
    for ln in lines:
        path = ln[len("problem "):].split(": ")[0]
        named[path] = named.get(path, 0) + 1
    for path, kind in bad.items():
        assert named.get(path) == 1, (kind, path, p.out)
    assert named.get(misplaced) == 1, p.out
    assert named.get(dup_new) == 1, ("duplicate id", p.out)
    assert p3 not in named and p3 + ".s" not in named, p.out
    assert len(lines) == len(bad) + 2, p.out
    for path in bad:
        assert os.path.lexists(path), path        # --check moves nothing

    p = t.run("mta-send", "--check", "--repair", check=0)
    assert f"{len(bad) + 2} problems found and repaired" in p.out, p.out
    quarantined = set(os.listdir(t.path("queue", "quarantine")))
    for path, kind in bad.items():
        assert not os.path.lexists(path), (kind, path)
        assert os.path.basename(path) in quarantined, (kind, path)
    assert not os.path.exists(misplaced)
    assert os.path.exists(os.path.join(c.msg_dir(name), name))
    assert os.path.exists(dup_msg) and not os.path.exists(dup_new)
    # nothing is deleted: the quarantined bytes are the ones placed
    for path, kind in bad.items():
        q = t.path("queue", "quarantine", os.path.basename(path))
        if kind == "symlink":
            assert os.path.islink(q)
        elif kind == "directory":
            assert os.path.isdir(q)
    p = t.run("mta-send", "--check", check=0)
    assert "0 problems found" in p.out, p.out

    d = Sender(t)
    try:
        wait_for("the three good messages", lambda: set(
            seqs_in(maildir(t, "u"))) >= {300, 301, 302}, 20, d)
        wait_for("an empty queue", lambda: not queue_files(t), 10, d)
        log = d.stop()
    finally:
        if d.p.poll() is None:
            d.stop()
    assert seqs_in(maildir(t, "u")) == {300: 1, 301: 1, 302: 1}, \
        seqs_in(maildir(t, "u"))
    assert "quarantine" not in log, log


def test_corrupt_queue_files_quarantined_while_mail_flows(t):
    """bad files of every kind in msg/HH/ at start-up and dropped into
    new/ while mta-send runs: each quarantined with a log line, the
    daemon keeps running, good mail before, between and after flows, and
    nothing of a bad file is ever delivered"""
    setup(t)
    c = Corruptor(t)
    at_start = place_all(t, c, "msg", templates(t, 100))
    later = templates(t, 200)
    # the same id in new/ and in msg/HH/: the queued one is delivered once
    name, data = good_file(t, 150)
    dup_msg = os.path.join(c.msg_dir(name), name)
    dup_new = t.path("queue", "new", name)
    for p in (dup_msg, dup_new):
        with open(p, "wb") as f:
            f.write(data)
        own(p)
    at_start[dup_new] = "duplicate-id"
    for i in range(3):
        inject(t, "s@x.test", f"u@{DOM}", body=body_for(i))
    d = Sender(t)
    try:
        wait_for("the first good messages", lambda: set(
            seqs_in(maildir(t, "u"))) >= {0, 1, 2, 150}, 20, d)
        running = place_all(t, c, "new", later)
        for i in range(3, 6):
            inject(t, "s@x.test", f"u@{DOM}", body=body_for(i))
        every = dict(at_start)
        every.update(running)
        # a file in new/ is taken into msg/HH/ first, so its line may
        # name it there: the base name is what identifies it
        def logged(p):
            return re.search(r"quarantine \S*/%s: " % re.escape(
                os.path.basename(p)), d.log())
        try:
            wait_for("a quarantine line for every bad file",
                     lambda: all(logged(p) for p in every), 20, d)
        except AssertionError:
            raise AssertionError("no quarantine line for " + str(
                [(k, p) for p, k in every.items() if not logged(p)]) +
                "\n" + "\n".join(ln for ln in d.log().splitlines()
                                  if "quarantine" in ln or "warning" in ln))
        wait_for("the later good messages", lambda: set(
            seqs_in(maildir(t, "u"))) >= {3, 4, 5}, 20, d)
        # and the queue keeps flowing after all that
        inject(t, "s@x.test", f"u@{DOM}", body=body_for(6))
        wait_for("the last good message",
                 lambda: 6 in seqs_in(maildir(t, "u")), 20, d)
        wait_for("an empty queue", lambda: not queue_files(t), 10, d)
        assert d.p.poll() is None
        log = d.stop()
    finally:
        if d.p.poll() is None:
            d.stop()
    got = seqs_in(maildir(t, "u"))
    # good mail exactly once; nothing of a bad file (seqs 100+, 200+)
    assert got == {i: 1 for i in (0, 1, 2, 3, 4, 5, 6, 150)}, got
    quarantined = set(os.listdir(t.path("queue", "quarantine")))
    for path, kind in every.items():
        assert not os.path.lexists(path), (kind, path)
        assert os.path.basename(path) in quarantined, (kind, path, log)
    assert len(re.findall(r"quarantine \S+: ", log)) == len(every), log


# --- one copy for 1,000 recipients ----

def queue_usage(t):
    """(message files, their bytes, status files' bytes, other files)"""
    msgs, size, ssize, other = [], 0, 0, []
    for sub in ("new", "msg/*", "tmp"):
        for p in glob.glob(t.path("queue", *sub.split("/"), "*")):
            st = os.lstat(p)
            if p.endswith(".s"):
                ssize += st.st_size
            elif os.path.isfile(p):
                msgs.append((p, st.st_nlink))
                size += st.st_size
            else:
                other.append(p)
    return msgs, size, ssize, other


def thousand_run(t, full):
    """one message to 1,000 local recipients is one file in the queue
    from injection to the end (no copy a recipient, no hard links), and
    each recipient gets it once. full=False stops mta-send after 150
    deliveries, checks the queue, and lets a restart go on for a while"""
    setup(t, users=("bucket",), concurrencylocal="20")
    t.run("vadmin", "catchall", DOM, f"bucket@{DOM}", check=0)
    body = body_for(1, (b"y" * 99 + b"\n") * 1000)       # ~100 KB
    rcpts = [f"r{i}@{DOM}" for i in range(1000)]
    inject(t, "s@x.test", *rcpts, body=body)
    msgs, size, _, other = queue_usage(t)
    assert len(msgs) == 1 and not other, (msgs, other)
    one = size
    assert len(body) < one < len(body) + 1000 * 30, (one, len(body))
    worst = (1, one, 0)
    logs = []
    for run in range(1 if full else 2):
        want = 1000 if full else 150 * (run + 1)
        d = Sender(t)
        try:
            end = time.monotonic() + 120
            while time.monotonic() < end:
                msgs, size, ssize, other = queue_usage(t)
                assert not other, other
                assert len(msgs) <= 1, msgs
                assert all(n == 1 for _, n in msgs), msgs
                assert size in (0, one), (size, one)
                worst = max(worst, (len(msgs), size, ssize))
                if len(maildir(t, "bucket")) >= want:
                    break
                assert d.p.poll() is None, d.log()
                time.sleep(0.05)
            if full:
                wait_for("an empty queue", lambda: not queue_files(t), 20,
                         d)
            logs.append(d.stop())
        finally:
            if d.p.poll() is None:
                d.stop()
        msgs, size, ssize, other = queue_usage(t)
        assert (len(msgs), size) == ((0, 0) if full else (1, one)), msgs
    files = maildir(t, "bucket")
    seen = {}
    for p in files:
        m = re.findall(rb"^Delivered-To: (r\d+)@", read(p), re.M)
        assert len(m) == 1, m
        seen[m[0]] = seen.get(m[0], 0) + 1
    # the stop waits for running deliveries: nothing is delivered twice
    assert set(seen.values()) == {1}, [k for k, v in seen.items() if v > 1]
    log = "\n".join(logs)
    assert len(re.findall(r"delivery \d+: success", log)) == len(files)
    if full:
        assert len(files) == 1000 and len(seen) == 1000, len(files)
    else:
        assert len(files) >= 300, len(files)
    # the outcomes file stays small: one line a recipient at most
    assert worst[2] < 1000 * 64, worst
    print(f"note: 1,000 recipients: one queue file of {one} bytes "
          f"(message {len(body)}), status file at most {worst[2]} bytes, "
          f"{len(files)} delivered")


def test_thousand_local_recipients_one_copy_in_queue(t):
    thousand_run(t, full=False)


def slow_thousand_local_recipients_all_delivered(t):
    thousand_run(t, full=True)


# --- the size of a bounce ----

def test_bounce_returns_headers_and_first_50000_bytes(t):
    """a 400 KB message that fails comes back with its whole header and
    at most 50,000 bytes of its body, cut at a line end"""
    setup(t, users=("s",))
    head = b"".join(b"X-Header-%02d: value %02d\n" % (i, i) for i in range(40))
    head += b"Subject: big original\nX-Seq: 7\n"
    lines = b"".join(b"line %06d " % i + b"z" * 68 + b"\n"
                     for i in range(5000))            # 400,000 bytes
    inject(t, f"s@{DOM}", f"nobody@{DOM}", body=head + b"\n" + lines)
    d = Sender(t)
    try:
        (b,) = wait_for("the bounce", lambda: maildir(t, "s"), 20, d)
        wait_for("an empty queue", lambda: not queue_files(t), 10, d)
        log = d.stop()
    finally:
        if d.p.poll() is None:
            d.stop()
    assert len(re.findall(r"bounce msg ", log)) == 1, log
    data = read(b)
    part = data.split(b"Content-Type: message/rfc822\n\n", 1)[1]
    orig = part.rsplit(b"\n--", 1)[0]
    ohead, obody = orig.split(b"\n\n", 1)
    assert ohead.endswith(head.rstrip(b"\n")), ohead[-300:]
    assert len(obody) <= 50000, len(obody)
    assert len(obody) > 50000 - 100, len(obody)     # cut at a line end
    assert lines.startswith(obody), obody[-200:]
    assert b"line 004999" not in data
    assert len(data) < len(head) + 50000 + 8000, len(data)
    assert b"Status: 5.1.1" in data


# --- mail loops ----

def test_loop_between_two_hosted_domains_one_bounce(t):
    """a.test's catch-all sends to q@b.test, b.test's back to p@a.test
    (vadmin refuses such a loop made of forwards, not of catch-alls): the
    loop is seen at the first delivery (5.4.6) and the sender gets one
    bounce"""
    setup(t, users=("s", "x", "y@b.test"), domains=(DOM, "b.test"))
    t.run("vadmin", "catchall", DOM, "q@b.test", check=0)
    t.run("vadmin", "catchall", "b.test", f"p@{DOM}", check=0)
    inject(t, f"s@{DOM}", f"zz@{DOM}", body=body_for(1))
    d = Sender(t)
    try:
        wait_for("the bounce", lambda: maildir(t, "s"), 20, d)
        wait_for("an empty queue", lambda: not queue_files(t), 10, d)
        time.sleep(1)
        log = d.stop()
    finally:
        if d.p.poll() is None:
            d.stop()
    assert len(maildir(t, "s")) == 1
    assert b"5.4.6" in read(maildir(t, "s")[0])
    assert len(re.findall(r"bounce msg ", log)) == 1, log
    assert len(re.findall(r"new msg ", log)) == 2, log   # mail and bounce
    assert not maildir(t, "x") and not maildir(t, "y", "b.test")


def test_loop_through_a_relay_stops_at_100_hops(t):
    """a.test's catch-all sends to a remote list at loop.test, which
    sends every message back to a new address at a.test, keeping the
    header: no address repeats, so the loop runs until the message
    carries more than 100 Received: lines (each round adds two: the
    forward's mta-inject and the relay's), which mta-inject refuses
    (5.4.6), well before 100 Delivered-To lines; then it stops with one
    bounce to the sender"""
    setup(t, users=("s",), domains=(DOM,))
    t.run("vadmin", "catchall", DOM, "list@loop.test", check=0)
    mx = MX("127.0.0.8")
    routes(t, {"loop.test": mx})
    hops = []
    stop = threading.Event()

    def relay():
        done = 0
        while not stop.is_set():
            with mx.lock:
                todo = mx.got[done:]
            for sender, _, data in todo:
                done += 1
                hops.append(done)
                msg = data.replace(b"\r\n", b"\n")
                msg = re.sub(rb"(?m)^\.\.", b".", msg)
                inject(t, sender.strip("<>"), f"h{done}@{DOM}", body=msg)
            time.sleep(0.02)

    th = threading.Thread(target=relay, daemon=True)
    th.start()
    try:
        inject(t, f"s@{DOM}", f"h0@{DOM}", body=body_for(1))
        d = Sender(t)
        try:
            wait_for("the bounce", lambda: maildir(t, "s"), 80, d)
            time.sleep(1.5)
            wait_for("an empty queue", lambda: not queue_files(t), 10, d)
            log = d.stop()
        finally:
            if d.p.poll() is None:
                d.stop()
    finally:
        stop.set()
        th.join(timeout=10)
        mx.close()
    assert 49 <= len(hops) <= 51, len(hops)
    print(f"note: the relayed loop ran {len(hops)} hops before its bounce")
    (b,) = maildir(t, "s")
    assert b"5.4.6" in read(b), read(b)[:2000]
    assert len(re.findall(r"bounce msg ", log)) == 1, log
