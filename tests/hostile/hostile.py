"""hostile - the crash-point and write-fault driver of issue 15.

A scenario is one run of a program (its command line, its input) and an
oracle that judges what the run left. The driver first runs it once under
`strace -f` to count its system calls of each name (per process: strace
counts `when=N` per process and per system call), then runs it again
once per (name, N): with `inject=NAME:signal=KILL:when=N` (a crash point:
the process dies on entering its N-th NAME call) or
`inject=NAME:error=ENOSPC|EDQUOT|EIO:when=N` (a write fault: that call
fails). After each run the scenario's oracle says what went wrong, in the
words of docs/security.md's table: lost (accepted, then nowhere), partial
(a truncated or unreadable file where readers look), duplicated (more
copies than the rule allows: one more per kill that caught a delivery in
flight), code (a fault answered with a permanent error or success where a
temporary one was due), crashed (a sanitizer report or a signal nobody
sent), hung (the run outlived its deadline), leaked (a process left
behind), check (`vadmin check` or `mta-send --check` failed afterwards).

Not a test module itself (run.py collects test_*.py only).
"""
import os
import re
import shutil
import signal
import subprocess
import time

import helpers

STRACE = shutil.which("strace")

# the calls that change what is on disk, that read the input or talk to a
# peer, and openat (where a file is made): where a kill can split a change
# or a conversation in two
CRASH_CALLS = ("read", "recvfrom", "recvmsg", "sendto", "sendmsg",
               "connect", "openat", "write", "writev", "pwrite64", "ftruncate",
               "fsync", "fdatasync", "rename", "renameat", "renameat2",
               "link", "linkat", "unlink", "unlinkat", "mkdir", "mkdirat",
               "fchmod", "fchown", "close")
# the calls that can fail with a full disk or a broken one (the issue's
# list: every write, fsync, rename, link and mkdir)
FAULT_CALLS = ("write", "writev", "pwrite64", "fsync", "fdatasync",
               "rename", "renameat", "renameat2", "link", "linkat",
               "mkdir", "mkdirat")
ERRNOS = ("ENOSPC", "EDQUOT", "EIO")
KINDS = ("lost", "partial", "duplicated", "code", "crashed", "hung",
         "leaked", "check")


def skip_reason():
    """why the driver cannot run here, or None"""
    if not STRACE:
        return "strace is not installed (tools/deps.sh test installs it)"
    p = subprocess.run([STRACE, "-qq", "-o", "/dev/null", "-e",
                        "inject=getpid:error=EIO:when=1", "--", "true"],
                       capture_output=True)
    if p.returncode != 0:
        return "strace cannot trace here: " + p.stderr.decode()[-200:]
    return None


def env_for(extra=None):
    """the environment of a traced program: LeakSanitizer stops the world
    with ptrace, which a traced process cannot do, so leaks are checked by
    the integration tests, not here"""
    e = dict(os.environ)
    e.pop("FACTEUR_ROOT", None)
    e["ASAN_OPTIONS"] = "detect_leaks=0"
    if extra:
        e.update(extra)
    return e


class Run:
    """what one traced run did: rc (the program's exit code, -9 if
    killed), out and err (bytes), hit (the injection happened), hung"""

    def __init__(self, rc, out, err, log, hung=False):
        self.rc, self.out, self.err, self.hung = rc, out, err, hung
        self.log = log
        self.hit = ("(INJECTED)" in log or "killed by SIGKILL" in log)
        self.killed = "killed by SIGKILL" in log
        self.text = out.decode(errors="replace")

    def sanitizer(self):
        e = self.err.decode(errors="replace")
        return "Sanitizer" in e or "runtime error" in e


def strace_argv(t, calls, inject=None, follow=True):
    """strace's own command line: trace CALLS (of the children too, when
    follow) into a log, inject one (NAME, ACTION, N) if given"""
    log = os.path.join(t.tmp, "strace.log")
    argv = [STRACE] + (["-f"] if follow else []) + ["-qq", "-o", log, "-e",
            "trace=" + ",".join(calls)]
    if inject:
        name, action, n = inject
        argv += ["-e", f"inject={name}:{action}:when={n}"]
    return argv + ["--"], log


def read_log(log):
    try:
        with open(log, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def spawn(t, argv, calls=CRASH_CALLS, inject=None, env=None, follow=True):
    """start argv under strace, in a process group of its own"""
    pre, log = strace_argv(t, calls, inject, follow)
    p = subprocess.Popen(pre + argv, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env_for(env), start_new_session=True)
    p.strace_log = log
    return p


def finish(p, input=None, timeout=60):
    """feed and wait for a spawned run; one that outlives timeout is
    killed with its whole process group and reported hung"""
    try:
        out, err = p.communicate(input, timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        hung = True
    return Run(p.returncode, out, err, read_log(p.strace_log), hung)


def traced(t, argv, input=b"", calls=CRASH_CALLS, inject=None, env=None,
           timeout=60, follow=True):
    """run argv under strace to its end (finish)"""
    return finish(spawn(t, argv, calls, inject, env, follow), input,
                  timeout)


def counts(log):
    """{name: the most calls of that name one process made} of a log"""
    per = {}
    for m in re.finditer(r"^(?:(\d+) +)?(\w+)\(", log, re.M):
        key = (m.group(1), m.group(2))
        per[key] = per.get(key, 0) + 1
    out = {}
    for (_, name), n in per.items():
        out[name] = max(out.get(name, 0), n)
    return out


def leftovers(t):
    """processes still running with the test's root on their command
    line (servers and children a killed run should not have left)"""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if t.tmp.encode() in cmd and b"strace" not in cmd.split(b"\0")[0]:
            out.append((int(pid), cmd.replace(b"\0", b" ")[:200]))
    return out


class Tally:
    """the counts of one group (a scenario in one mode)"""

    def __init__(self, group):
        self.group = group
        self.runs = self.hits = self.messages = 0
        self.fail = {k: 0 for k in KINDS}
        self.examples = []

    def add(self, where, problems):
        for kind, why in problems:
            self.fail[kind] += 1
            if len(self.examples) < 40:
                self.examples.append(f"{where}: {kind}: {why}")

    def failures(self):
        return sum(self.fail.values())

    def line(self):
        f = " ".join(f"{k} {v}" for k, v in self.fail.items())
        return (f"hostile {self.group}: runs {self.runs} injected "
                f"{self.hits} messages {self.messages} {f}")


def points(n, stride, offset=0):
    """the N to try of a call made n times: every stride-th, from a
    rotating offset, and the last one (a commit is often there)"""
    if n <= 0:
        return []
    got = list(range(1 + offset % stride, n + 1, stride))
    if n not in got:
        got.append(n)
    return got


def actions(mode, errnos, every_errno, i):
    """the injections of one point: a kill, or one errno (the i-th in
    turn, so that a walk spreads the three over its points) or all"""
    if mode == "crash":
        return ["signal=KILL"]
    if every_errno:
        return [f"error={e}" for e in errnos]
    return [f"error={errnos[i % len(errnos)]}"]


def settle(t, timeout=10):
    """until no process of the run is left: a child that outlived its
    killed parent (vdeliver's mta-inject) finishes its work first, and
    only one still there after timeout seconds is a leak"""
    end = time.monotonic() + timeout
    while leftovers(t) and time.monotonic() < end:
        time.sleep(0.02)


def judge_run(t, sc, k, r, inject):
    """the scenario's oracle and the driver's own: sanitizers, a signal
    nobody sent, the deadline, processes left behind"""
    settle(t)
    probs = sc.judge(t, k, r, inject)
    if r.sanitizer():
        probs.append(("crashed", r.err.decode(errors="replace")[-300:]))
    if r.rc is not None and r.rc < 0 and r.rc != -signal.SIGKILL:
        probs.append(("crashed", f"signal {-r.rc}"))
    if r.hung:
        probs.append(("hung", "deadline"))
    left = leftovers(t)
    if left:
        probs.append(("leaked", repr(left)))
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return probs


def walk(t, sc, mode, stride=1, calls=None, errnos=ERRNOS,
         every_errno=False):
    """every crash point (mode "crash") or write fault (mode "fault") of
    scenario sc, every stride-th N of each call; returns the Tally, whose
    line is printed"""
    calls = calls or (CRASH_CALLS if mode == "crash" else FAULT_CALLS)
    tally = Tally(f"{sc.name} {mode}")
    sc.prepare(t)
    base = sc.go(t, 0, None)
    assert not base.hit and base.rc == 0 and not base.hung, (
        f"{sc.name}: the run without faults failed: rc {base.rc}\n"
        f"{base.text[-2000:]}\n{base.err.decode(errors='replace')[-2000:]}")
    bad = judge_run(t, sc, 0, base, None)
    assert not bad, f"{sc.name}: the run without faults: {bad}"
    k = 0
    for ci, name in enumerate(calls):
        for n in points(counts(base.log).get(name, 0), stride, ci):
            for action in actions(mode, errnos, every_errno, k):
                k += 1
                r = sc.go(t, k, (name, action, n))
                tally.runs += 1
                tally.hits += r.hit
                tally.messages += sc.messages
                tally.add(f"{name}:{action}:when={n}",
                          judge_run(t, sc, k, r, (name, action, n)))
    print(tally.line())
    for x in tally.examples:
        print("  " + x)
    return tally


class Scenario:
    """one run and its oracle; subclasses set name, messages (how many
    messages one run carries) and write prepare, argv, judge"""
    name = "?"
    messages = 1
    timeout = 60

    def prepare(self, t):
        pass

    def argv(self, t, k):
        raise NotImplementedError

    def input(self, t, k):
        return b""

    def go(self, t, k, inject):
        return traced(t, self.argv(t, k), self.input(t, k),
                      inject=inject, timeout=self.timeout)

    def judge(self, t, k, run, inject):
        raise NotImplementedError


def temporary_ok(run, inject, codes=(0, 111)):
    """the exit code a fault allows: success or temporary; a kill: -9
    (the program's own signal) or what it did before the kill"""
    if inject is None:
        return run.rc == 0
    if inject[1] == "signal=KILL":
        return run.rc in (-9, 137) + tuple(codes)
    return run.rc in codes


def body(k, size=3000):
    """message k: an X-Seq header to find its copies, a body of size
    bytes whose last line proves it is whole"""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP\n"
    n = max(1, size // len(line))
    return (b"From: s@sender.test\nSubject: hostile %d\nX-Seq: %d\n\n"
            % (k, k) + line * n + b"end of %d\n" % k)


def whole(data, k):
    """data holds message k whole (its last line is there)"""
    return b"X-Seq: %d\n" % k in data and data.rstrip(b"\r\n").endswith(
        b"end of %d" % k)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def queue_copies(t, k):
    """(whole, partial) copies of message k in queue new/ and msg/"""
    good = bad = 0
    for p in helpers.queue_files(t):
        if p.endswith(".s"):
            continue
        data = read(p)
        if b"X-Seq: %d\n" % k not in data:
            continue
        try:
            _, msg = helpers.qf_parse(data)
            ok = whole(msg, k)
        except AssertionError:
            ok = False
        good, bad = good + ok, bad + (not ok)
    return good, bad


def maildir_copies(t, user, domain, k):
    """(whole, partial) copies of message k in a Maildir's new/ and cur/"""
    good = bad = 0
    for sub in ("new", "cur"):
        d = t.path("domains", domain, user, "Maildir", sub)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            data = read(os.path.join(d, name))
            if b"X-Seq: %d\n" % k in data:
                ok = whole(data, k)
                good, bad = good + ok, bad + (not ok)
    return good, bad


def drain(t, timeout=60):
    """mta-send until the queue is empty, then stopped: what a restart
    after a crash does"""
    d = helpers.Sender(t, env={"ASAN_OPTIONS": "detect_leaks=0"})
    try:
        helpers.wait_for("an empty queue", lambda: not helpers.queue_files(t),
                         timeout, d)
    finally:
        if d.p.poll() is None:
            d.stop()


def put_control(t, name, value):
    path = t.path("control", name)
    with open(path, "w") as f:
        f.write(f"{value}\n")
    if os.geteuid() == 0:
        st = os.stat(t.path("control"))
        os.lchown(path, st.st_uid, st.st_gid)


def setup_root(t, users=("u",), domain="a.test"):
    """a root with fast password hashes, one domain and its users, short
    retries (a deferred delivery is tried again within a second)"""
    t.init()
    put_control(t, "passwordscheme", "sha512crypt")
    put_control(t, "retrybase", "1")
    put_control(t, "me", "mx.a.test")
    t.run("vadmin", "adddomain", domain, input="pm-Secret-1\n", check=0)
    for u in users:
        t.run("vadmin", "adduser", f"{u}@{domain}", "Pw-Secret-1", check=0)


def wait_gone(pid, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.02)
