"""hostile_net - what the flood, relay-context and TLS tests of issue 15
share: a whole system (`facteur run`) on free loopback ports, the hostile
clients, a well-behaved client to measure against, and peak RSS.

  System(t)        facteur run on a root with example.test and bob@
                   (wrap: argv put before it, strace_prefix()),
                   every listener on its own free port of 127.0.0.1 (and
                   ::1 when v6), short timeouts so that a flood runs in
                   seconds; stopped by its PID (SIGTERM, then SIGKILL).
  Hostile          one attacking session in a thread: it connects from a
                   chosen loopback source address, behaves as its KIND
                   says, and records when the server dropped it.
  normal_*         a client that sends and reads mail as a user would,
                   timing its greeting.
  peak_rss(pids)   VmHWM of processes, read from /proc while they live.

Sources: every loopback address 127.x.y.z reaches a listener on
127.0.0.1 (Linux routes all of 127/8 to lo), so hostile sessions are
spread over many source addresses to stay under maxperip, and the normal
client uses one of its own (127.0.0.2), as a real user behind another
address would.
"""
import os
import poplib
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

from helpers import free_port
from test_smtpd import tls_ctx  # noqa: F401 (the tests take it from here)

DOMAIN = "example.test"
USER = f"bob@{DOMAIN}"
PW = "Secret-pw-1"
KINDS = ("idle", "trickle", "headers", "bigline", "junk", "halftls")
PORTS = ("smtp", "submission", "smtps", "pop3", "pop3s")
TLS_PORTS = ("smtps", "pop3s")
NORMAL_IP = "127.0.0.2"


def proc_log(root):
    """log/current, never through a link a test planted there"""
    try:
        fd = os.open(os.path.join(root, "log", "current"),
                     os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        return f.read().decode(errors="replace")


class System:
    """facteur run on t's root: every service on free loopback ports"""

    def __init__(self, t, timeout=3, controls=(), v6=False, wrap=(),
                 quarantine_mb=4):
        self.t = t
        if not t.root:
            t.init()
            self.control("me", "mx.example.test\n")
            t.run("vadmin", "adddomain", DOMAIN, input="pm-pw\n", check=0)
            t.run("vadmin", "adduser", USER, PW, check=0)
        self.timeout = timeout
        self.control("timeoutsmtpd", f"{timeout}\n")
        self.control("timeoutpop3", f"{timeout}\n")
        for name, value in controls:
            self.control(name, value)
        self.ports, self.ports6 = {}, {}
        for kind in PORTS:
            self.ports[kind] = free_port()
            lines = f"127.0.0.1:{self.ports[kind]}\n"
            if v6:
                self.ports6[kind] = free_port("::1")
                lines += f"[::1]:{self.ports6[kind]}\n"
            self.control("listen." + kind, lines)
        self.err = open(os.path.join(t.tmp, "run.err"), "wb")
        env = dict(os.environ)
        env.pop("FACTEUR_ROOT", None)
        # a freed block waits in ASan's quarantine (256 MB by default)
        # and would count as resident: a small one keeps VmHWM close to
        # what the release build uses
        env["ASAN_OPTIONS"] = ("detect_leaks=0:quarantine_size_mb=%d"
                               % quarantine_mb)
        self.p = subprocess.Popen([*wrap, t.bin("facteur"), "run", "--root",
                                   t.root], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.err,
                                  env=env, start_new_session=True)
        self.wait_up()

    def control(self, name, value):
        path = self.t.path("control", name)
        with open(path, "w") as f:
            f.write(value)
        if os.geteuid() == 0:
            st = os.stat(self.t.path("control"))
            os.lchown(path, st.st_uid, st.st_gid)

    def wait_up(self):
        end = time.monotonic() + 60
        left = dict(self.ports)
        while left and time.monotonic() < end:
            for kind, port in list(left.items()):
                try:
                    s = socket.create_connection(("127.0.0.1", port), 1)
                    s.close()
                    del left[kind]
                except OSError:
                    pass
            time.sleep(0.1)
        assert not left, f"not listening: {left}\n{self.log()}"
        # the probes' sessions end at once; let the pools settle
        time.sleep(1)

    def log(self):
        return proc_log(self.t.root)

    def pids(self, name):
        """the PIDs of the running processes named NAME under this run"""
        out = []
        for pid in tree(self.p.pid):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == name[:15]:
                        out.append(pid)
            except OSError:
                pass
        return out

    def stop(self):
        """SIGTERM to the supervisor; SIGKILL to its group if it lingers;
        the log must show no sanitizer report"""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
        self.err.close()
        text = self.log()
        with open(os.path.join(self.t.tmp, "run.err"), "rb") as f:
            text += f.read().decode(errors="replace")
        for bad in ("ERROR: AddressSanitizer", "runtime error:",
                    "LeakSanitizer"):
            assert bad not in text, text[-8000:]
        return text


def tree(pid):
    """pid and all its descendants"""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def vm_hwm(pid):
    """VmHWM (peak resident set) of a live process in bytes, or 0"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRSS:
    """samples VmHWM of every process under a PID every 20 ms in a thread
    (a session process's peak is read before it exits): {comm: peak}"""

    def __init__(self, pid):
        self.pid, self.peak = pid, {}
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.loop, daemon=True)
        self.th.start()

    def loop(self):
        while not self.stop_ev.is_set():
            for p in tree(self.pid):
                try:
                    with open(f"/proc/{p}/comm") as f:
                        name = f.read().strip()
                except OSError:
                    continue
                v = vm_hwm(p)
                if v > self.peak.get(name, 0):
                    self.peak[name] = v
            self.stop_ev.wait(0.02)

    def stop(self):
        self.stop_ev.set()
        self.th.join()
        return self.peak


# --- hostile sessions ------------------------------------------------------

# the first bytes of a TLS 1.2 ClientHello record that announces 512
# bytes and sends 11 of them: the server's handshake waits for the rest
HALF_HELLO = bytes.fromhex("160301020001 0001fc 0303 aa")


def source(i):
    """the i-th hostile source address: 127.1.x.y, 10 sessions each"""
    n = i // 10
    return f"127.1.{n // 250}.{n % 250 + 1}"


class Hostile(threading.Thread):
    """one hostile session of KIND against PORT (a System.ports key);
    .dropped: seconds from its last byte sent to the server's close (None
    while open), .greeted: the first line the server sent, .error"""

    def __init__(self, port, service, kind, src, hold=60, addr="127.0.0.1"):
        super().__init__(daemon=True)
        self.port, self.service, self.kind, self.src = port, service, kind, src
        self.addr, self.hold = addr, hold
        self.dropped = self.greeted = self.error = None
        self.last_sent = self.t0 = self.closed_at = None
        self.sent = 0
        self.closing = threading.Event()

    def send(self, s, data):
        s.sendall(data)
        self.sent += len(data)
        self.last_sent = time.monotonic()

    def run(self):
        try:
            s = socket.create_connection((self.addr, self.port), 10,
                                         source_address=(self.src, 0))
        except OSError as e:
            self.error = f"connect: {e}"
            return
        self.last_sent = self.t0 = time.monotonic()
        try:
            self.attack(s)
            self.wait_close(s)
        except (OSError, ssl.SSLError) as e:
            # a reset or a refused handshake is the server closing too
            self.closed_at = time.monotonic()
            self.dropped = self.closed_at - self.last_sent
            self.error = repr(e)
            self.closing.set()
        finally:
            s.close()

    def readline(self, s):
        """one line from the server (for the steps that need a reply)"""
        buf = b""
        while not buf.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                raise ConnectionResetError("closed")
            buf += b
        return buf

    def reply(self, s):
        """a whole (multi-line) SMTP reply or one POP3 line"""
        while True:
            line = self.readline(s)
            if line[3:4] != b"-":
                return line

    def attack(self, s):
        svc, kind = self.service, self.kind
        pop = svc.startswith("pop3")
        if svc in TLS_PORTS:
            if kind == "halftls":
                self.send(s, HALF_HELLO)
                return
            if kind == "idle":
                return          # not even a ClientHello
            s = tls_ctx().wrap_socket(s)
            self.tls = s
        self.greeted = self.readline(s)
        if kind == "idle":
            return
        if kind == "halftls":    # plain ports: STARTTLS / STLS first
            if pop:
                self.send(s, b"STLS\r\n")
            else:
                self.send(s, b"EHLO h\r\n")
                self.reply(s)
                self.send(s, b"STARTTLS\r\n")
            self.reply(s)
            self.send(s, HALF_HELLO)
            return
        if kind == "trickle":
            # one byte a second of a line that never ends (for hold
            # seconds: a server that never drops it must not keep the
            # thread, nor the caller that joins it, for ever)
            while not self.closing.is_set() and \
                    time.monotonic() - self.t0 < self.hold:
                self.send(s, b"N")
                self.closing.wait(1)
            return
        if kind == "bigline":
            self.send(s, b"X" * (1 << 20) + b"\r\n")
            return
        if kind == "junk":
            self.send(s, b"JUNK junk junk\r\n" * 5000)
            return
        # headers: endless header lines (in DATA for SMTP; endless
        # command lines for POP3, which has no DATA) for a few seconds
        if not pop:
            self.send(s, b"EHLO h\r\nMAIL FROM:<h@flood.example>\r\n"
                      b"RCPT TO:<" + USER.encode() + b">\r\nDATA\r\n")
        line = b"X-Flood: " + b"h" * 60 + b"\r\n"
        end = time.monotonic() + 3
        while time.monotonic() < end and not self.closing.is_set():
            self.send(s, line * 200)
            time.sleep(0.01)

    def wait_close(self, s):
        s = getattr(self, "tls", s)
        s.settimeout(self.hold)
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                return          # still open after hold: never dropped
            if not b:
                self.closed_at = time.monotonic()
                self.dropped = self.closed_at - self.last_sent
                self.closing.set()
                return


def flood(sys_, n, kinds=KINDS, services=PORTS, first=0):
    """n hostile sessions at once, spread evenly over kinds x services,
    each from source(i); returns the started threads"""
    out = []
    combos = [(k, s) for k in kinds for s in services]
    for i in range(n):
        kind, svc = combos[i % len(combos)]
        h = Hostile(sys_.ports[svc], svc, kind, source(first + i),
                    hold=sys_.timeout + 20)
        h.start()
        out.append(h)
    return out


# --- the normal client ----------------------------------------------------

def timed_smtp(port, tls=False, src=NORMAL_IP):
    """an SMTP client from src: (client, seconds to the greeting)"""
    t0 = time.monotonic()
    if tls:
        c = smtplib.SMTP_SSL("127.0.0.1", port, timeout=30,
                             context=tls_ctx(), source_address=(src, 0))
    else:
        c = smtplib.SMTP("127.0.0.1", port, timeout=30,
                         source_address=(src, 0))
    return c, time.monotonic() - t0


def normal_send(sys_, tag):
    """one message to bob on 25, one by AUTH on 587 (STARTTLS) and one on
    465; the greeting times"""
    times = []
    c, dt = timed_smtp(sys_.ports["smtp"])
    times.append(dt)
    with c:
        c.sendmail("alice@remote.example", [USER],
                   f"Subject: {tag} mx\r\n\r\nhello\r\n".encode())
    c, dt = timed_smtp(sys_.ports["submission"])
    times.append(dt)
    with c:
        c.starttls(context=tls_ctx())
        c.login(USER, PW)
        c.sendmail(USER, [USER], f"Subject: {tag} sub\r\n\r\nhi\r\n".encode())
    c, dt = timed_smtp(sys_.ports["smtps"], tls=True)
    times.append(dt)
    with c:
        c.login(USER, PW)
        c.sendmail(USER, [USER], f"Subject: {tag} tls\r\n\r\nhi\r\n".encode())
    return times


def normal_read(sys_):
    """(subjects of bob's mailbox, greeting times) by POP3 on 110 (STLS)
    and 995 from 127.0.0.1 (poplib cannot choose its source; no hostile
    session uses that one); the mailbox is read, not emptied"""
    times, subjects = [], []
    for svc in ("pop3", "pop3s"):
        t0 = time.monotonic()
        if svc == "pop3s":
            c = poplib.POP3_SSL("127.0.0.1", sys_.ports[svc], timeout=30,
                                context=tls_ctx())
        else:
            c = poplib.POP3("127.0.0.1", sys_.ports[svc], timeout=30)
        times.append(time.monotonic() - t0)
        try:
            if svc == "pop3":
                c.stls(context=tls_ctx())
            c.user(USER)
            c.pass_(PW)
            n = len(c.list()[1])
            subjects = []
            for i in range(1, n + 1):
                for line in c.top(i, 0)[1]:
                    if line.lower().startswith(b"subject:"):
                        subjects.append(line[8:].strip().decode())
        finally:
            c.quit()
    return subjects, times


# --- what touched a path: inotify and strace ---------------------------------

IN_EVENTS = {0x1: "access", 0x2: "modify", 0x4: "attrib",
             0x8: "close_write", 0x10: "close_nowrite", 0x20: "open",
             0x40: "moved_from", 0x80: "moved_to", 0x100: "create",
             0x200: "delete", 0x400: "delete_self", 0x800: "move_self"}
IN_WRITES = 0x2 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800


class Watch:
    """inotify (through libc, no package) on paths: every event on them
    (a directory's: on its entries too), read with events() as
    [(watched path, entry name, [event names])]. An event on a watched
    file's inode is seen whatever name reached it, a hard link's too."""

    def __init__(self, paths):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, ctypes.get_errno()
        self.wd = {}
        for p in paths:
            wd = self.libc.inotify_add_watch(self.fd, p.encode(), 0xfff)
            assert wd >= 0, (p, ctypes.get_errno())
            self.wd[wd] = p
        self.got = []

    def events(self):
        import struct
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.got
            pos = 0
            while pos + 16 <= len(data):
                wd, mask, _, n = struct.unpack("iIII", data[pos:pos + 16])
                name = data[pos + 16:pos + 16 + n].rstrip(b"\0").decode()
                pos += 16 + n
                self.got.append((self.wd.get(wd, "?"), name,
                                 [v for k, v in IN_EVENTS.items()
                                  if mask & k], mask))

    def close(self):
        os.close(self.fd)


# the system calls that write at a path (strace's %file class, less the
# ones that only read or look)
WRITE_CALLS = ("mkdir", "mkdirat", "rename", "renameat", "renameat2",
               "link", "linkat", "symlink", "symlinkat", "unlink",
               "unlinkat", "rmdir", "chmod", "fchmodat", "chown", "lchown",
               "fchownat", "utime", "utimes", "utimensat", "futimesat",
               "truncate", "mknod", "mknodat", "creat")


def strace_prefix(logpath):
    """argv to put before a program: every process it starts, every
    path system call, file descriptors shown with their paths (-y); the
    process calls and fchdir too, so that strace_paths can follow each
    process's working directory"""
    return ["strace", "-f", "-qq", "-y", "-s", "4096", "-o", logpath,
            "-e", "trace=%file,%process,fchdir"]


def strace_writes(logpath, cwd=None):
    """[(call, absolute path)] of every write-like path call in an strace
    log that did not fail (an open counts when it asks O_WRONLY, O_RDWR,
    O_CREAT or O_TRUNC); see strace_paths"""
    return strace_paths(logpath, writes_only=True, cwd=cwd)


# which quoted arguments of a call are paths it touches: execve's argv,
# readlink's answer and symlink's target are not
FIRST_ONLY = ("execve", "execveat", "readlink", "readlinkat")
LAST_ONLY = ("symlink", "symlinkat")


def strace_lines(logpath):
    """(pid, 'name(args) = result') of an strace -f log, a call that
    strace split around another process's (<unfinished ...>, <...
    resumed>) joined again"""
    import re
    head = re.compile(r"^(\d+) +")
    resumed = re.compile(r"^<\.\.\. (\w+) resumed>(.*)")
    pending = {}
    for raw in open(logpath, errors="replace"):
        raw = raw.rstrip("\n")
        m = head.match(raw)
        pid = int(m.group(1)) if m else 0
        line = raw[m.end():] if m else raw
        if line.endswith("<unfinished ...>"):
            pending[pid] = line[:-len("<unfinished ...>")]
            continue
        r = resumed.match(line)
        if r:
            line = pending.pop(pid, r.group(1) + "(") + r.group(2)
        yield pid, line


def strace_paths(logpath, writes_only=False, cwd=None):
    """[(call, path)] of every path call in an strace log (strace_prefix)
    that did not fail: reads, stats and access checks too, or with
    writes_only only the write-like ones. A path relative to a
    descriptor is joined to the path strace -y shows for it (AT_FDCWD's
    too); one relative to the working directory is joined to the one
    followed from cwd (the first process's), chdir, fchdir, AT_FDCWD's
    path and a child's parent; it stays relative where that is unknown.
    An open's own path is the one its new descriptor shows."""
    import re
    call = re.compile(r"^(\w+)\((.*)")
    arg = re.compile(r'(?:(\d+|AT_FDCWD)<([^>]*)>, )?"((?:[^"\\]|\\.)*)"')
    born = re.compile(r"^(?:clone3?|fork|vfork)\(.*\) += (\d+)$")
    parent = {}
    for pid, line in strace_lines(logpath):
        m = born.match(line)
        if m:
            parent[int(m.group(1))] = pid
    cwds, out = {}, []
    for pid, line in strace_lines(logpath):
        m = call.match(line)
        if not m:
            continue
        if pid not in cwds:     # the first process starts in cwd; a
            # child in its parent's directory; one attached to, unknown
            cwds[pid] = cwds.get(parent.get(pid), None if cwds else cwd)
        name, args = m.group(1), m.group(2)
        if re.search(r"\) += -1 ", line):
            continue
        here = re.search(r"AT_FDCWD<([^>]*)>", args)
        if here:
            cwds[pid] = here.group(1)
        if name == "fchdir":
            d = re.match(r"\d+<(/[^>]*)>", args)
            cwds[pid] = d.group(1) if d else None
            continue
        found = arg.findall(args)
        if name in FIRST_ONLY:
            found = found[:1]
        elif name in LAST_ONLY:
            found = found[-1:]
        paths = []
        for _, dirpath, path in found:
            if not path or (dirpath and not dirpath.startswith("/")):
                continue        # fstat of a descriptor, a pipe's, a socket's
            base = dirpath or cwds[pid]
            if not path.startswith("/") and base:
                path = os.path.join(base, path)
            paths.append(os.path.normpath(path))
        if name == "chdir" and paths and paths[0].startswith("/"):
            cwds[pid] = paths[0]
        if name in ("open", "openat", "openat2"):
            write = re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", args)
            got = re.search(r"\) += \d+<([^>]*)>$", line)
            if got:
                paths = [got.group(1)]
        else:
            write = name in WRITE_CALLS
        if writes_only and not write:
            continue
        out += [(name, p) for p in paths]
    return out


def outside(writes, *allowed):
    """the writes whose absolute path is under none of allowed (and not
    a device, /proc or the TLS session cache of nobody)"""
    base = ("/dev/", "/proc/")
    return [(c, p) for c, p in writes if p.startswith("/") and
            not p.startswith(base) and
            not any(p == a or p.startswith(a.rstrip("/") + "/")
                    for a in allowed)]
