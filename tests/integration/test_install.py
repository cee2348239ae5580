"""test_install - `make install` and the systemd unit.

`make install-files` (what `make install` runs after building) puts the
tested programs into a DESTDIR: every program, the vpopmail-named links,
a man page for each program, the man links and the unit, each with its
mode; `make uninstall` takes them away again. systemd-analyze verifies
the installed unit offline.

systemd cannot start the unit here (PID 1 is not systemd), so the
hardening test reads the unit's [Service] directives and runs `facteur
run` under an emulation of each (sandbox.py: a mount namespace,
setpriv, seccomp filters through libseccomp), failing on any directive
it does not know how to emulate, so that the unit and this test cannot
drift apart. Under that sandbox a message goes in over SMTP and comes out
over POP3, and the supervisor and its services are seen to run with the
sandbox's limits. docs/install.md says what is emulated and how.
"""
import ctypes
import json
import os
import poplib
import re
import signal
import smtplib
import socket
import stat
import shutil
import subprocess

from helpers import MX, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SANDBOX = os.path.join(HERE, "sandbox.py")
PREFIX = "/usr/local"
PROGS = ["facteur", "mta-smtpd", "mta-send", "mta-remote", "mta-inject",
         "sendmail", "mta-qstat", "mta-qread", "mta-rules", "vdeliver",
         "vadmin", "pop3d", "vchkpw"]
VLINKS = ["vadddomain", "vdeldomain", "vadduser", "vdeluser", "vpasswd",
          "vsetuserquota", "valias", "vuserinfo", "vdominfo",
          "vaddaliasdomain", "vmoduser"]
# each page's section (docs/install.md says why)
MAN = {"sendmail": 1, "facteur-control": 5}
UNIT = PREFIX + "/lib/systemd/system/facteur.service"


def install(ctx, target="install-files"):
    dest = os.path.join(ctx.tmp, "dest")
    # not the variables of a `make check` that runs this test
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MANDIR",
                        "UNITDIR")}
    p = subprocess.run(
        ["make", "-C", REPO, "--no-print-directory", target,
         f"DESTDIR={dest}", f"PREFIX={PREFIX}", f"BINDIR={ctx.bindir}"],
        capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return dest


def mode(path):
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid


def unit_directives(path):
    """[(section, key, value)] of a unit file, in order"""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.append((section, k.strip(), v.strip()))
    return out


def test_install_layout(ctx):
    dest = install(ctx)
    bindir = dest + PREFIX + "/bin"
    for p in PROGS:
        kind, perm, uid = mode(os.path.join(bindir, p))
        assert kind == stat.S_IFREG and perm == 0o755, (p, oct(perm))
        assert uid == os.getuid(), p
        assert os.path.getsize(os.path.join(bindir, p)) == \
            os.path.getsize(ctx.bin(p)), p
    for link in VLINKS:
        assert os.readlink(os.path.join(bindir, link)) == "vadmin", link
    assert sorted(os.listdir(bindir)) == sorted(PROGS + VLINKS)
    mandir = dest + PREFIX + "/share/man"
    for page in PROGS + ["facteur-control"]:
        sec = MAN.get(page, 8)
        path = os.path.join(mandir, f"man{sec}", f"{page}.{sec}")
        kind, perm, _ = mode(path)
        assert kind == stat.S_IFREG and perm == 0o644, (path, oct(perm))
        with open(path) as f:
            text = f.read()
        # an mdoc page that names itself in the right section
        assert re.search(rf"^\.Dt {re.escape(page.upper())} {sec}$", text,
                         re.M), path
        assert re.search(rf"^\.Nm {re.escape(page)}\b", text, re.M), path
    for link in VLINKS:
        path = os.path.join(mandir, "man8", link + ".8")
        assert os.readlink(path) == "vadmin.8", link
        # and the page documents the command under that name
        with open(path) as f:
            assert re.search(rf"^\.Nm {link}\b", f.read(), re.M), link
    kind, perm, _ = mode(dest + UNIT)
    assert kind == stat.S_IFREG and perm == 0o644
    d = unit_directives(dest + UNIT)
    execs = [v for s, k, v in d if k == "ExecStart"]
    assert execs == [PREFIX + "/bin/facteur run --root /var/facteur"], execs
    assert ("Install", "WantedBy", "multi-user.target") in d
    assert not [v for s, k, v in d if "@" in v and "@" != v[0]], d
    # and uninstall takes all of it away, leaving only directories
    install(ctx, "uninstall")
    left = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs]
    assert left == [], left


def man_source(page):
    sec = MAN.get(page, 8)
    for d, _, files in os.walk(REPO):
        if f"{page}.{sec}" in files and "/build" not in d and \
                "/.git" not in d:
            with open(os.path.join(d, f"{page}.{sec}")) as f:
                return f.read()
    raise AssertionError(f"no {page}.{sec} in the tree")


def test_man_pages_cover_help(ctx):
    """every option that a program's --help shows is in its man page
    (the vpopmail names in vadmin's), so a new flag without its
    documentation fails here"""
    seen = 0
    for prog in PROGS + VLINKS:
        text = man_source("vadmin" if prog in VLINKS else prog)
        p = ctx.run(prog, "--help", root=False, check=0)
        opts = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", p.out))
        seen += len(opts)
        for o in opts:
            if o.startswith("--"):
                pat = r"Fl \\-" + re.escape(o[2:]) + r"\b"
            elif len(o) == 2:   # one letter, alone or in a group (-bpsx)
                pat = r"Fl [A-Za-z]*" + re.escape(o[1]) + r"[A-Za-z]*\b"
            else:
                pat = r"Fl " + re.escape(o[1:]) + r"\b"
            assert re.search(pat, text), f"{prog}: {o} is not in its page"
    assert seen > 40, seen     # the usage texts were read


def test_install_unit_verifies(ctx):
    """systemd-analyze verify works without a running systemd: the
    unit parses, every directive is known to this systemd, ExecStart
    names an executable (the installed facteur, through a copy of the
    unit that names it inside DESTDIR) and the man pages of
    Documentation= are found (in DESTDIR's man directory)"""
    if not os.path.exists("/usr/bin/systemd-analyze"):
        print("SKIP: no systemd-analyze (package systemd)")
        return
    dest = install(ctx)
    with open(dest + UNIT) as f:
        text = f.read()
    vdir = os.path.join(ctx.tmp, "verify")
    os.mkdir(vdir)
    unit = os.path.join(vdir, "facteur.service")
    with open(unit, "w") as f:
        f.write(text.replace("ExecStart=" + PREFIX, "ExecStart=" + dest +
                             PREFIX))
    env = dict(os.environ, MANPATH=dest + PREFIX + "/share/man")
    p = subprocess.run(["systemd-analyze", "verify", unit], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == "", (
        p.returncode, p.stdout, p.stderr)
    # the same check refuses a unit it cannot read, so it is looking
    with open(unit, "a") as f:
        f.write("ProtectSystem=nonsense\n")
    p = subprocess.run(["systemd-analyze", "verify", unit], env=env,
                       capture_output=True, text=True, timeout=60)
    assert "ProtectSystem" in p.stderr, p.stderr


# --- the sandbox: every [Service] directive, and what makes it real here

# capability(7) numbers, in order (linux/capability.h)
CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
        "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
        "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
        "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
        "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE",
        "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
        "PERFMON", "BPF", "CHECKPOINT_RESTORE"]


def caps_mask(names):
    """the CapBnd bits of /proc/PID/status for CAP_ names"""
    m = 0
    for n in names:
        m |= 1 << CAPS.index(n[4:])
    return m


AF = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}
# capabilities that these directives take out of the bounding set too
IMPLIED_DROPS = {"PrivateDevices": ["CAP_MKNOD", "CAP_SYS_RAWIO"],
                 "ProtectKernelModules": ["CAP_SYS_MODULE"],
                 "ProtectKernelLogs": ["CAP_SYSLOG"]}


def syscall_group(name, seen=None):
    """the system calls of a SystemCallFilter= group, nested groups
    expanded, as this systemd defines them"""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    p = subprocess.run(["systemd-analyze", "syscall-filter", name],
                       capture_output=True, text=True, check=True)
    out = set()
    for line in p.stdout.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        out |= syscall_group(w, seen) if w.startswith("@") else {w}
    return out


def yes(v):
    assert v in ("yes", "true", "1", "no", "false", "0"), v
    return v in ("yes", "true", "1")


def sandbox_spec(directives, root, keep):
    """the spec of sandbox.py for the [Service] directives; an unknown
    directive or value fails the test"""
    spec = {"keep": keep, "env": {}}
    drops = []
    for sec, k, v in directives:
        if sec != "Service":
            continue
        if k in ("Type", "ExecStart", "Restart", "RestartSec"):
            continue    # how it starts and restarts: no sandbox
        if k == "KillMode":
            assert v == "mixed", v  # stop_unit() below signals as mixed
            continue
        if k == "NoNewPrivileges":
            spec["nnp"] = yes(v)
        elif k == "CapabilityBoundingSet":
            spec["bounding"] = v.split()
        elif k == "UMask":
            spec["umask"] = int(v, 8)
        elif k == "ProtectSystem":
            assert v == "strict", v
            spec["protect_system"] = v
        elif k == "ReadWritePaths":
            # the unit's root is /var/facteur; the test's is its own
            spec["rw_paths"] = [root if p == "/var/facteur" else p
                                for p in v.split()]
        elif k == "ProtectHome":
            assert v == "yes", v
            spec["protect_home"] = True
        elif k in ("PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                   "ProtectKernelModules", "ProtectKernelLogs",
                   "ProtectControlGroups"):
            key = re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower()
            spec[key] = yes(v)
            if yes(v):
                drops += IMPLIED_DROPS.get(k, [])
        elif k == "RestrictAddressFamilies":
            assert not v.startswith("~"), v
            spec["families"] = [AF[f] for f in v.split()]
        elif k == "SystemCallFilter":
            assert not v.startswith("~"), v
            calls = set()
            # systemd always allows @default with an allow-list
            for name in v.split() + ["@default"]:
                calls |= syscall_group(name) if name.startswith("@") \
                    else {name}
            spec["syscalls"] = sorted(calls)
        elif k in ("RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
                   "MemoryDenyWriteExecute", "ProtectHostname"):
            key = {"RestrictSUIDSGID": "restrict_suid_sgid"}.get(
                k, re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower())
            spec[key] = yes(v)
        elif k == "RestrictNamespaces":
            assert v == "yes", v    # all of them; a list is not emulated
            spec["restrict_namespaces"] = True
        elif k == "ProtectClock":
            if yes(v):
                spec["clock_calls"] = sorted(syscall_group("@clock"))
                drops += ["CAP_SYS_TIME", "CAP_WAKE_ALARM"]
        elif k == "ProtectProc":
            assert v in ("invisible", "noaccess", "ptraceable"), v
            spec["protect_proc"] = v
        elif k == "ProcSubset":
            assert v == "pid", v
            spec["proc_subset"] = v
        elif k == "PrivateMounts":
            # sandbox.py always works in a mount namespace of its own
            # whose mounts do not propagate back
            assert yes(v), v
        elif k == "SystemCallArchitectures":
            assert v == "native", v
            spec["native"] = True
        else:
            raise AssertionError(f"the unit's {k}={v}: this test does not "
                                 "know how to emulate it; teach "
                                 "sandbox_spec() or leave it out")
    if "bounding" in spec:
        spec["bounding"] = [c for c in spec["bounding"] if c not in drops]
    return spec


def setpriv_caps(spec):
    return [c[4:].lower() for c in spec["bounding"]]


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def log_text(root):
    try:
        with open(os.path.join(root, "log", "current")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def free_low_port():
    """a free port below 1024, which only CAP_NET_BIND_SERVICE binds: a
    mail port, the only ones below 1024 that facteur run binds for a
    listen line (lib/listen listen_port_ok)"""
    for port in (587, 465, 995, 110, 25):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 1024 on 127.0.0.1")


def listen_on_free_ports(root):
    """smtp on a port below 1024, pop3 on any free port, the rest off"""
    ports = {}
    for kind in ("smtp", "submission", "smtps", "pop3", "pop3s"):
        with open(os.path.join(root, "control", "listen." + kind), "w") as f:
            if kind in ("smtp", "pop3"):
                ports[kind] = free_low_port() if kind == "smtp" \
                    else free_port()
                f.write(f"127.0.0.1:{ports[kind]}\n")
    return ports


def sandbox_ready():
    """why the hardening test cannot run here, or None"""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, setpriv, the mail user)"
    for tool in ("/usr/bin/setpriv", "/usr/bin/systemd-analyze"):
        if not os.path.exists(tool):
            return f"no {tool}"
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return "no libseccomp.so.2 (package libseccomp2)"
    p = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if p.returncode != 0:
        return "cannot make a mount namespace: " + p.stderr.decode()
    return None


def sandboxed(ctx):
    """(DESTDIR, root, sandbox spec of the installed unit), or None
    after a SKIP line when the sandbox cannot be built here"""
    why = sandbox_ready()
    if why:
        print("SKIP: " + why)
        return None
    dest = install(ctx)
    root = ctx.init()
    return dest, root, sandbox_spec(unit_directives(dest + UNIT), root,
                                    ctx.tmp)


def run_sandboxed(ctx, spec, argv, out):
    spec = dict(spec, argv=argv)
    if "bounding" in spec:
        spec["bounding"] = setpriv_caps(spec)
    # LeakSanitizer stops the world with ptrace, which the system call
    # filter refuses; a release build has no sanitizer
    spec["env"] = {"PATH": "/usr/bin:/bin",
                   "ASAN_OPTIONS": "detect_leaks=0"}
    # run from the test's own directory, which the sandbox keeps: a
    # clone under /tmp or /root (a newcomer's 0700 home) is hidden by
    # PrivateTmp and ProtectHome once stage 1 has made its mounts, and
    # stage 2 is this same file
    sandbox = os.path.join(ctx.tmp, "sandbox.py")
    if not os.path.exists(sandbox):
        shutil.copyfile(SANDBOX, sandbox)
    with open(out, "wb") as f:
        return subprocess.Popen(["/usr/bin/python3", sandbox,
                                 json.dumps(spec)],
                                stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)


PROBE = r"""
import ctypes, errno, json, mmap, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def t(fn):
    try:
        return fn() or "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def c(name, *args):
    def call():
        if getattr(libc, name)(*args) < 0:
            raise OSError(ctypes.get_errno(), name)
    return t(call)
def ro(path):
    # read-only or not, asked without writing anything
    return t(lambda: "ro" if os.statvfs(path).f_flag & os.ST_RDONLY
             else "rw")
mode, root, bindir = sys.argv[1:4]
got = {}
if mode == "all":
    got = {
        "etc": ro("/etc"), "bin": ro(bindir), "root": ro(root),
        "tmp": sorted(os.listdir("/tmp")),
        "home": sorted(os.listdir("/root")) if os.path.isdir("/root")
        else [],
        "dev": sorted(os.listdir("/dev")),
        "sysctl": ro("/proc/sys/kernel"),
        "packet": t(lambda: socket.socket(socket.AF_PACKET,
                                          socket.SOCK_RAW).close()),
        "netlink": t(lambda: socket.socket(socket.AF_NETLINK,
                                           socket.SOCK_RAW).close()),
        "umask": os.umask(0o22),
    }
# calls that change only this process, or a file of the test's root
suid = os.path.join(root, "suid")
open(suid, "w").close()
prio = ctypes.c_int(1)
got.update({
    "realtime": c("sched_setscheduler", 0, 1, ctypes.byref(prio)),
    "suid": t(lambda: os.chmod(suid, 0o4755)),
    "unshare": c("unshare", 0x04000000),
    "personality": c("personality", 0x0040000),
    "wx": t(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE |
                              mmap.PROT_EXEC) and None),
})
print(json.dumps(got))
"""


def run_probe(ctx, spec, mode, root, dest):
    """PROBE's findings under the sandbox of spec; mode "all" looks at
    the file system and sockets too, "calls" only makes the calls that
    the argument filters refuse"""
    probe = os.path.join(ctx.tmp, "probe.py")
    with open(probe, "w") as f:
        f.write(PROBE)
    out = os.path.join(ctx.tmp, "probe.out")
    p = run_sandboxed(ctx, spec, ["/usr/bin/python3", probe, mode, root,
                                  dest + PREFIX + "/bin"], out)
    assert p.wait(timeout=60) == 0, (spec, p.returncode, open(out).read())
    return json.loads(open(out).read().splitlines()[-1])


def test_install_sandbox_is_real(ctx):
    """the emulation itself bites: under the unit's directives /etc and
    the installed programs are on read-only mounts, the root on a
    writable one; /tmp is empty but for the test's own directory, home
    is empty, /dev holds only pseudo devices, /proc/sys is gone (or
    read-only), packet sockets are refused while netlink (getifaddrs)
    works, and the calls of the argument filters are refused. Nothing is
    written outside the test's directory, even if the sandbox fails."""
    setup = sandboxed(ctx)
    if not setup:
        return
    dest, root, spec = setup
    got = run_probe(ctx, spec, "all", root, dest)
    assert got["etc"] == "ro" and got["bin"] == "ro", got
    assert got["root"] == "rw", got
    # /tmp holds only the way to the test's own directory, if that is
    # below /tmp at all
    rel = os.path.relpath(ctx.tmp, "/tmp")
    assert got["tmp"] == ([] if rel.startswith("..") else
                          [rel.split("/")[0]]), got
    assert got["home"] == [], got
    assert set(got["dev"]) <= {"null", "zero", "full", "random", "urandom",
                               "tty", "pts", "ptmx", "shm", "fd", "stdin",
                               "stdout", "stderr"}, got
    # read-only, or (ProcSubset=pid) not there at all
    assert got["sysctl"] == ("ENOENT" if spec.get("proc_subset") else
                             "ro"), got
    # and what the argument filters refuse
    # (sethostname and the clock calls are outside @system-service: the
    # system call filter kills a process that makes them)
    for k in ("realtime", "suid", "unshare", "personality", "wx"):
        assert got[k] == "EPERM", (k, got)
    assert got["packet"] == "EAFNOSUPPORT" and got["netlink"] == "ok", got
    assert got["umask"] == spec["umask"], got


# the probe's key for each argument filter of sandbox.py
FILTERS = {"restrict_realtime": "realtime", "restrict_suid_sgid": "suid",
           "restrict_namespaces": "unshare", "lock_personality":
           "personality", "memory_deny_write_execute": "wx"}


def test_install_sandbox_filters_bite(ctx):
    """each argument filter of sandbox.py refuses its call by itself: as
    root with every capability the probe's calls succeed, and with that
    one directive alone the call is refused (under the whole unit some of
    them are refused by the missing capabilities anyway)"""
    setup = sandboxed(ctx)
    if not setup:
        return
    dest, root, spec = setup
    free = run_probe(ctx, {"keep": ctx.tmp}, "calls", root, dest)
    checked = 0
    for key, probe_key in FILTERS.items():
        if free[probe_key] != "ok":
            continue    # refused here even without the filter
        got = run_probe(ctx, {"keep": ctx.tmp, key: True}, "calls", root,
                        dest)
        assert got[probe_key] == "EPERM", key
        checked += 1
    assert checked >= 4, free


def test_install_unit_hardening(ctx):
    """facteur run, installed, under every directive of the unit: it
    binds, starts its services as the mail user, carries a message in
    over SMTP and out over POP3, runs with the unit's limits, logs no
    failure, and stops on SIGTERM to it alone (KillMode=mixed)"""
    setup = sandboxed(ctx)
    if not setup:
        return
    dest, root, spec = setup
    ports = listen_on_free_ports(root)
    ctx.run("vadmin", "adddomain", "example.test", "pm-pw", check=0)
    ctx.run("vadmin", "adduser", "alice@example.test", "alice-pw", check=0)
    # facteur run makes the log file itself, and gives it to the mail
    # user (CAP_CHOWN), as after each rotation
    logf = os.path.join(root, "log", "current")
    mailuid = os.stat(os.path.join(root, "log")).st_uid
    os.unlink(logf)
    execstart = [v for s, k, v in unit_directives(dest + UNIT)
                 if k == "ExecStart"][0].split()
    assert execstart[-1] == "/var/facteur"
    argv = [dest + execstart[0]] + execstart[1:-1] + [root]
    out = os.path.join(ctx.tmp, "run.out")
    p = run_sandboxed(ctx, spec, argv, out)
    try:
        def up():
            assert p.poll() is None, open(out).read()
            for port in ports.values():
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                except OSError:
                    return False
            return "started mta-send" in log_text(root)
        assert wait_for("facteur run", up, 30)
        st = status(p.pid)
        assert st["Name"] == "facteur", st["Name"]
        assert st["NoNewPrivs"] == "1", st
        assert int(st["CapBnd"], 16) == caps_mask(spec["bounding"]), st
        assert st["Seccomp"] == "2", st
        assert os.stat(logf).st_uid == mailuid != 0
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as c:
            c.ehlo("client.test")
            c.sendmail("bob@elsewhere.test", ["alice@example.test"],
                       b"Subject: under the unit\r\n\r\nsandboxed mail\r\n")
        got = []

        def fetched():
            c = poplib.POP3("127.0.0.1", ports["pop3"], timeout=30)
            try:
                c.user("alice@example.test")
                c.pass_("alice-pw")
                n, _ = c.stat()
                if n:
                    got.append(b"\n".join(c.retr(1)[1]))
                return n > 0
            finally:
                c.quit()
        assert wait_for("the message in alice's mailbox", fetched, 30), \
            log_text(root)
        assert b"sandboxed mail" in got[0], got
        # every service runs as the mail user under the same limits
        pids = [int(x) for x in re.findall(r"started \S+ pid (\d+)",
                                           log_text(root))]
        assert len(pids) >= 3, log_text(root)
        for pid in pids:
            try:
                s = status(pid)
            except FileNotFoundError:
                continue
            assert s["NoNewPrivs"] == "1" and s["Seccomp"] == "2", s
            assert int(s["CapEff"], 16) == 0, s
            assert s["Uid"].split()[0] != "0", s
        # KillMode=mixed: SIGTERM to the main process only
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0, open(out).read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    text = log_text(root)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            "zombie" in open(f"/proc/{pid}/status").read(), pid
    assert "delivery 1: success" in text, text
    bad = [l for l in text.splitlines()
           if re.search(r"cannot|Sanitizer|runtime error|signal 31", l)]
    assert bad == [], text
    assert f"facteur[{p.pid}]: stopped" in text, text


def test_install_remote_under_unit(ctx):
    """mta-remote under the unit's directives delivers to an address
    literal: its loop check lists this host's interface addresses
    (getifaddrs, over netlink: AF_NETLINK in RestrictAddressFamilies)"""
    setup = sandboxed(ctx)
    if not setup:
        return
    dest, root, spec = setup
    mx = MX()
    try:
        with open(os.path.join(root, "control", "remoteport"), "w") as f:
            f.write(f"{mx.port}\n")
        msg = os.path.join(ctx.tmp, "msg")
        with open(msg, "w") as f:
            f.write("Subject: out\n\nto a literal\n")
        out = os.path.join(ctx.tmp, "remote.out")
        argv = [dest + PREFIX + "/bin/mta-remote", "--root", root, "--",
                "[127.0.0.1]", "bob@example.test", "carol@[127.0.0.1]"]
        # mta-remote reads the message on stdin: a shell inside the
        # sandbox would need more system calls, so the file is given
        # by the sandbox as standard input
        spec = dict(spec, stdin=msg)
        p = run_sandboxed(ctx, spec, argv, out)
        assert p.wait(timeout=60) == 0, open(out).read()
        text = open(out).read()
        assert text.startswith("D "), text
        assert wait_for("the message at the MX", lambda: mx.got, 10)
        assert b"to a literal" in mx.got[0][2], mx.got
    finally:
        mx.close()
