#!/usr/bin/env python3
"""sandbox - run a program under an emulation of systemd's sandboxing
directives, for tests/integration/test_install.py, which reads them from
contrib/systemd/facteur.service and translates each into a key of a spec
(JSON, the first argument). systemd cannot start the unit where the
tests run (PID 1 is not systemd), so each directive is rebuilt here with
the kernel's own primitives, as systemd builds it:

  stage 1 (root, every capability): a new mount namespace, the mounts
          (private_tmp, private_devices, protect_home, protect_kernel_*,
          protect_control_groups, protect_system, rw_paths), then exec of
          setpriv(1) for no_new_privs and the capability bounding set;
  stage 2 (what setpriv started): umask, then the seccomp filters
          (address families, system call allow-list, native
          architecture) through libseccomp, then exec of the program.

Every exec keeps the process id, so the caller's Popen pid is the
program's. Not a test module: run.py runs only test_*.py.

    sandbox.py SPEC_JSON            stage 1
    sandbox.py --stage2 SPEC_JSON   stage 2 (run by setpriv)
"""
import ctypes
import ctypes.util
import json
import os
import re
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC = 32, 4096, 8192, 16384
MS_PRIVATE = 1 << 18
FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV,
         "noexec": MS_NOEXEC}

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def check(ret, what):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def mount(src, dst, fstype, flags, data=None):
    check(libc.mount(src and src.encode(), dst.encode(),
                     fstype and fstype.encode(), ctypes.c_ulong(flags),
                     data and data.encode()), f"mount {dst}")


def mounts():
    """(mount point, per-mount flags) of every mount, parents first"""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            w = line.split()
            # mountinfo writes a space, tab, newline or backslash as \\ooo
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), w[4])
            fl = 0
            for o in w[5].split(","):
                fl |= FLAGS.get(o, 0)
            out.append((mp, fl))
    return sorted(out, key=lambda m: m[0].count("/"))


def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def readonly(top, rw=False):
    """every mount at or below top made read-only (or writable again),
    keeping its nosuid/nodev/noexec"""
    for mp, fl in mounts():
        if under(mp, top):
            fl = (fl & ~MS_RDONLY) | (0 if rw else MS_RDONLY)
            try:
                mount(None, mp, None, MS_REMOUNT | MS_BIND | fl)
            except OSError:
                if not os.path.exists(mp):
                    continue    # hidden by a later mount
                raise


def bind_self(path):
    mount(path, path, None, MS_BIND | MS_REC)


def inaccessible(path, stage):
    """systemd's InaccessiblePaths: a directory or file of mode 000"""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC |
              MS_RDONLY, "mode=000")
    else:
        node = os.path.join(stage, "inaccessible")
        if not os.path.exists(node):
            os.close(os.open(node, os.O_CREAT | os.O_WRONLY, 0))
        mount(node, path, None, MS_BIND)
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def private_tmp(keep):
    """PrivateTmp=: empty /tmp and /var/tmp. The test's own directory
    (the installed tree and the root, which stand for /usr/local and
    /var/facteur and are not below /tmp on a real host) is carried
    into the new /tmp at the same path."""
    fd = os.open(keep, os.O_PATH | os.O_DIRECTORY)
    for d in ("/tmp", "/var/tmp"):
        if os.path.isdir(d):
            mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    if under(keep, "/tmp") or under(keep, "/var/tmp"):
        os.makedirs(keep, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", keep, None, MS_BIND | MS_REC)
    os.close(fd)


DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def private_devices(stage):
    """PrivateDevices=: a new /dev with only the pseudo devices, a
    devpts of its own and an empty /dev/shm, built aside and moved"""
    new = os.path.join(stage, "dev")
    os.mkdir(new)
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for n in DEVICES:
        src = "/dev/" + n
        if os.path.exists(src) and stat.S_ISCHR(os.stat(src).st_mode):
            os.close(os.open(os.path.join(new, n), os.O_CREAT, 0o666))
            mount(src, os.path.join(new, n), None, MS_BIND)
    for d in ("pts", "shm"):
        os.mkdir(os.path.join(new, d))
    mount("devpts", os.path.join(new, "pts"), "devpts", MS_NOSUID |
          MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", os.path.join(new, "ptmx"))
    mount("tmpfs", os.path.join(new, "shm"), "tmpfs", MS_NOSUID | MS_NODEV,
          "mode=1777")
    for fd, n in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", os.path.join(new, n))
    os.symlink("/proc/self/fd", os.path.join(new, "fd"))
    mount(new, "/dev", None, MS_MOVE)


def private_proc(spec):
    """ProtectProc=invisible, ProcSubset=pid: a procfs of its own with
    those options (Linux 5.8), in place of /proc"""
    opts = []
    if spec.get("protect_proc"):
        opts.append("hidepid=" + spec["protect_proc"])
    if spec.get("proc_subset"):
        opts.append("subset=" + spec["proc_subset"])
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          ",".join(opts))


def protect_kernel(spec, stage):
    """ProtectKernelModules, ProtectKernelLogs, ProtectKernelTunables,
    ProtectControlGroups"""
    if spec.get("protect_kernel_modules"):
        for d in ("/usr/lib/modules", "/lib/modules"):
            if os.path.isdir(d) and not os.path.islink(d):
                inaccessible(d, stage)
    if spec.get("protect_kernel_logs"):
        for p in ("/proc/kmsg", "/dev/kmsg"):
            inaccessible(p, stage)
    if spec.get("protect_kernel_tunables"):
        for p in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
                  "/proc/bus", "/proc/fs", "/proc/acpi", "/proc/latency_stats",
                  "/proc/timer_list", "/sys"):
            if os.path.exists(p):
                bind_self(p)
                readonly(p)
    if spec.get("protect_control_groups") and os.path.isdir("/sys/fs/cgroup"):
        bind_self("/sys/fs/cgroup")
        readonly("/sys/fs/cgroup")


def protect_system(spec):
    """ProtectSystem=strict: every mount read-only but the API file
    systems (their own directives) and a private /tmp, which systemd
    leaves writable; then ReadWritePaths writable again"""
    if spec.get("protect_system") == "strict":
        keep_rw = ["/dev", "/proc", "/sys"]
        if spec.get("private_tmp"):
            keep_rw += ["/tmp", "/var/tmp"]
        for mp, fl in mounts():
            if any(under(mp, k) for k in keep_rw) and \
                    not under(mp, spec["keep"]):
                continue
            try:
                mount(None, mp, None, MS_REMOUNT | MS_BIND | fl | MS_RDONLY)
            except OSError:
                if os.path.exists(mp):
                    raise
    for p in spec.get("rw_paths", []):
        bind_self(p)
        readonly(p, rw=True)


def exec_setpriv(spec):
    """NoNewPrivileges and CapabilityBoundingSet, by setpriv, which then
    runs stage 2"""
    argv = ["setpriv"]
    if spec.get("nnp"):
        argv.append("--no-new-privs")
    if spec.get("bounding") is not None:
        caps = ",".join("+" + c for c in spec["bounding"])
        argv += ["--bounding-set", "-all" + ("," + caps if caps else ""),
                 "--inh-caps", "-all"]
    # the system's python: the caller's may live in a home, which
    # ProtectHome hides
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else \
        sys.executable
    argv += ["--", py, os.path.abspath(__file__), "--stage2",
             json.dumps(spec)]
    os.execvp("setpriv", argv)


def stage1(spec):
    # PrivateMounts: everything below happens in a namespace of its own
    check(libc.unshare(CLONE_NEWNS | (CLONE_NEWUTS if
                                      spec.get("protect_hostname") else 0)),
          "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("private_tmp"):
        private_tmp(spec["keep"])
    # a staging area in the test's directory, for what is built aside
    stage = os.path.join(spec["keep"], "stage")
    os.makedirs(stage, exist_ok=True)
    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700")
    if spec.get("private_devices"):
        private_devices(stage)
    if spec.get("protect_home"):
        for d in ("/home", "/root", "/run/user"):
            inaccessible(d, stage)
    protect_kernel(spec, stage)
    if spec.get("protect_proc") or spec.get("proc_subset"):
        private_proc(spec)
    protect_system(spec)
    exec_setpriv(spec)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7fff0000
SCMP_CMP_EQ = 4
SCMP_FLTATR_ACT_BADARCH = 2
EAFNOSUPPORT = 97
AF_MAX = 64


EPERM, ENOSYS = 1, 38
SCMP_CMP_GT, SCMP_CMP_NE, SCMP_CMP_MASKED_EQ = 6, 1, 7
S_ISUID, S_ISGID = 0o4000, 0o2000
O_CREAT, O_TMPFILE = 0o100, 0o20200000
PROT_WRITE, PROT_EXEC, SHM_EXEC = 2, 4, 0o100000
# CLONE_NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWCGROUP, NEWTIME
NS_FLAGS = [0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
            0x40000000, 0x02000000, 0x00000080]


def errno_act(e):
    return 0x00050000 | e


def masked(arg, bits):
    return (arg, SCMP_CMP_MASKED_EQ, bits, bits)


def restrictions(spec):
    """[(system call, action, [(arg, op, a, b)...])] of the directives
    that systemd makes into argument filters (src/shared/seccomp-util.c
    for realtime and personality; systemd.exec(5) for the others): the
    call is refused only when its arguments ask for what the directive
    forbids"""
    out = []
    deny = errno_act(EPERM)
    if spec.get("restrict_realtime"):
        # any policy but SCHED_OTHER, SCHED_BATCH and SCHED_IDLE
        for pol in (1, 2, 4, 6):
            out.append(("sched_setscheduler", deny,
                        [(1, SCMP_CMP_EQ, pol, 0)]))
        out.append(("sched_setscheduler", deny, [(1, SCMP_CMP_GT, 6, 0)]))
    if spec.get("restrict_suid_sgid"):
        for bit in (S_ISUID, S_ISGID):
            out += [("chmod", deny, [masked(1, bit)]),
                    ("fchmod", deny, [masked(1, bit)]),
                    ("fchmodat", deny, [masked(2, bit)]),
                    ("creat", deny, [masked(1, bit)])]
            for fl in (O_CREAT, O_TMPFILE):
                out += [("open", deny, [masked(1, fl), masked(2, bit)]),
                        ("openat", deny, [masked(2, fl), masked(3, bit)])]
    if spec.get("restrict_namespaces"):
        out.append(("setns", deny, []))
        out.append(("clone3", errno_act(ENOSYS), []))
        for f in NS_FLAGS:
            out += [("unshare", deny, [masked(0, f)]),
                    ("clone", deny, [masked(0, f)])]
    if spec.get("lock_personality"):
        cur = libc.personality(ctypes.c_ulong(0xffffffff))
        out.append(("personality", deny, [(0, SCMP_CMP_NE, cur, 0)]))
    if spec.get("memory_deny_write_execute"):
        out += [("mmap", deny, [masked(2, PROT_WRITE | PROT_EXEC)]),
                ("mprotect", deny, [masked(2, PROT_EXEC)]),
                ("pkey_mprotect", deny, [masked(2, PROT_EXEC)]),
                ("shmat", deny, [masked(2, SHM_EXEC)])]
    if spec.get("protect_hostname"):
        out += [("sethostname", deny, []), ("setdomainname", deny, [])]
    # ProtectClock: the calls that set the clock (systemd's @clock)
    out += [(name, deny, []) for name in spec.get("clock_calls", [])]
    return out


def seccomp(spec):
    """the filters systemd would load, each its own (the kernel applies
    the strictest answer of all of them)"""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
        ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                     ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    # libseccomp's filters admit only the native architecture; the other
    # ones are allowed unless SystemCallArchitectures=native
    badarch = SCMP_ACT_KILL_PROCESS if spec.get("native") else SCMP_ACT_ALLOW
    filters = []
    fams = spec.get("families")
    if fams is not None:
        ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
        nr = lib.seccomp_syscall_resolve_name(b"socket")
        for fam in range(AF_MAX):
            if fam in fams:
                continue
            cmp = ArgCmp(0, SCMP_CMP_EQ, fam, 0)
            check(lib.seccomp_rule_add_array(
                ctx, 0x00050000 | EAFNOSUPPORT, nr, 1, ctypes.byref(cmp)),
                "seccomp rule socket")
        filters.append(ctx)
    rules = restrictions(spec)
    if rules:
        ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
        for name, action, cmps in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue    # not a system call of this architecture
            arr = (ArgCmp * max(len(cmps), 1))(*[ArgCmp(*c) for c in cmps])
            check(lib.seccomp_rule_add_array(ctx, action, nr, len(cmps),
                                             arr), "seccomp rule " + name)
        filters.append(ctx)
    calls = spec.get("syscalls")
    if calls is not None:
        ctx = lib.seccomp_init(SCMP_ACT_KILL_PROCESS)
        for name in calls:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue    # not a system call of this architecture
            check(lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 0,
                                             None), "seccomp rule " + name)
        filters.append(ctx)
    if spec.get("native") and not filters:
        filters.append(lib.seccomp_init(SCMP_ACT_ALLOW))
    for ctx in filters:
        check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, badarch),
              "seccomp bad arch")
        check(lib.seccomp_load(ctx), "seccomp_load")


def stage2(spec):
    if spec.get("stdin"):
        fd = os.open(spec["stdin"], os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    if spec.get("umask") is not None:
        os.umask(spec["umask"])
    env = dict(spec.get("env", {}))
    seccomp(spec)
    os.execve(spec["argv"][0], spec["argv"], env)


if __name__ == "__main__":
    if sys.argv[1] == "--stage2":
        stage2(json.loads(sys.argv[2]))
    else:
        stage1(json.loads(sys.argv[1]))
