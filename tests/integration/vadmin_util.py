"""vadmin_util - what the vadmin integration tests (test_vadmin*.py,
test_vpop.py) share: a root with fast password hashing, the CDB tables as
dictionaries, the checks of one-line errors, and snapshots of the files.

Not a test module itself (run.py only collects test_*.py).
"""
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import warnings

import helpers

D = "example.test"


def mailuser(t):
    """The passwd entry of the root's mail user (control/mailuser)."""
    try:
        with open(t.path("control", "mailuser")) as f:
            name = f.read().strip() or "facteur"
    except FileNotFoundError:
        name = "facteur"
    return pwd.getpwnam(name)


def give(t, path):
    """Hand a file the test made (as root) to the mail user, as vadmin
    would have made it."""
    if os.geteuid() == 0:
        pw = mailuser(t)
        os.lchown(path, pw.pw_uid, pw.pw_gid)


def put(t, path, data, mode=0o600):
    """Write a file inside the root, owned by the mail user."""
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    give(t, path)


def fast_root(t):
    """A new root whose new passwords are hashed with sha512crypt (cheap)."""
    t.init()
    put(t, t.path("control", "passwordscheme"), "sha512crypt\n", 0o644)
    return t.root


def vadmin(t, *args, input=None, check=0, **kw):
    return t.run("vadmin", *args, input=input, check=check, **kw)


def err_line(p, prog="vadmin", want=None, usage=False):
    """The diagnostic: one line starting with 'PROG: ' (plus the usage on
    a usage error); want is a piece of text that line must hold."""
    lines = p.err.splitlines()
    assert lines, f"no message on stderr (exit {p.returncode})"
    assert lines[0].startswith(prog + ": "), f"stderr: {p.err!r}"
    if usage:
        assert "usage:" in p.err, f"no usage on stderr: {p.err!r}"
    else:
        assert len(lines) == 1, f"more than one line on stderr: {p.err!r}"
    if want:
        assert want in lines[0], f"want {want!r} in {lines[0]!r}"
    return lines[0]


def refused(t, *args, prog="vadmin", code=1, input=None, want=None):
    """Run prog and insist on exit code `code` with a proper message."""
    p = t.run(prog, *args, input=input, check=code)
    err_line(p, prog, want, usage=(code == 2))
    return p


def add_domain(t, domain=D, pw="pm-Secret-1", *extra):
    return vadmin(t, "adddomain", domain, *extra, input=pw + "\n")


def add_user(t, addr, pw="user-Secret-1", *extra):
    return vadmin(t, "adduser", addr, *extra, input=pw + "\n")


# --- the generated tables

def file_key(t, sub, domain):
    """The part of a table's file name that names the domain: the domain,
    or for a name too long for a file name (over 200 bytes) its first 180
    bytes, '~' and a hash, found here by listing the directory."""
    if len(domain) <= 200:
        return domain
    head = domain[:180] + "~"
    keys = {re.split(r"[+.]", n[len(head):])[0]
            for n in os.listdir(t.path("control", sub)) if n.startswith(head)}
    assert len(keys) == 1, f"control/{sub}: tables of {domain}: {keys}"
    return head + keys.pop()


def table_files(t, sub, domain):
    """The files of a domain's table in control/SUB, as assign.cdb says."""
    n = shards(t, domain)
    key = file_key(t, sub, domain)
    if n == 1:
        return [t.path("control", sub, key + ".cdb")]
    return [t.path("control", sub, f"{key}+{n}+{i}.cdb") for i in range(n)]


def cdb_path(t, kind, domain=None):
    """The file of a table (a domain's first, or only, shard)."""
    if kind in ("delivery", "passwd"):
        sub = "domains" if kind == "delivery" else "passwd"
        return table_files(t, sub, domain)[0]
    return t.path("control", kind + ".cdb")


def assign_raw(t):
    return helpers.cdb_dict(t.path("control", "assign.cdb"))


def assign(t):
    """{domain: (real domain, directory)} from assign.cdb; the optional
    third field (the shard count of the domain's tables) is checked."""
    out = {}
    for k, v in assign_raw(t).items():
        f = v.split(b"\0")
        assert len(f) in (2, 3), f"assign.cdb {k!r}: {v!r}"
        if len(f) == 3:
            n = int(f[2])
            assert n >= 1 and n & (n - 1) == 0, f"assign.cdb {k!r}: {v!r}"
        out[k.decode()] = (f[0].decode(), f[1].decode())
    return out


def shards(t, domain):
    """How many files a domain's tables are split into (assign.cdb)."""
    v = assign_raw(t).get(domain.encode(), b"")
    f = v.split(b"\0")
    return int(f[2]) if len(f) == 3 else 1


def table(t, sub, domain):
    """A domain's table, every shard of it, as one {key: value}."""
    out = {}
    for path in table_files(t, sub, domain):
        out.update(helpers.cdb_dict(path))
    return out


def delivery(t, domain=D):
    return table(t, "domains", domain)


def passwd(t, domain=D):
    return table(t, "passwd", domain)


def rcpthosts(t):
    return {k.decode(): v for k, v in
            helpers.cdb_dict(cdb_path(t, "rcpthosts")).items()}


def fields(v):
    return v.split(b"\0")


def urec(t, local, domain=D):
    """The delivery record of a mailbox: [maildir, qbytes, qmsgs, flags]."""
    v = delivery(t, domain).get(b"u" + local.encode())
    return None if v is None else [x.decode() for x in fields(v)]


def prec(t, local, domain=D):
    """The login record: [hash, cram, flags, maildir, qbytes, qmsgs]."""
    v = passwd(t, domain).get(local.encode())
    return None if v is None else [x.decode() for x in fields(v)]


def all_cdbs(t):
    """{relative path: bytes} of every CDB vadmin generates (not the
    relay rules, which mta-rules compiles)."""
    out = {}
    for sub in ("control", "control/domains", "control/passwd"):
        d = t.path(sub)
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if n.endswith(".cdb") and os.path.isfile(p) and \
                    n != "relayrules.cdb":
                with open(p, "rb") as f:
                    out[f"{sub}/{n}"] = f.read()
    return out


# --- what vadmin shows

def listusers(t, domain=D):
    return vadmin(t, "listusers", domain).out.split()


def listdomains(t):
    return vadmin(t, "listdomains").out.splitlines()


def userinfo(t, addr):
    return json.loads(vadmin(t, "userinfo", addr, "--json").out)


def check_ok(t):
    p = vadmin(t, "check", check=None)
    assert p.returncode == 0 and "problem" not in p.out, (
        f"vadmin check: exit {p.returncode}\n{p.out}{p.err}")
    assert "ok" in p.out, p.out
    return p


# --- passwords

def sha512_hash(pw, salt="TestSalt8"):
    """A $6$ hash made outside Facteur (openssl, else Python's crypt)."""
    if shutil.which("openssl"):
        p = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, pw],
                           capture_output=True, text=True, check=True)
        return p.stdout.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crypt  # Python < 3.13
    return crypt.crypt(pw, "$6$" + salt)


def hash_is_of(h, pw):
    """Whether the crypt hash h is a hash of pw (sha512crypt: recomputed;
    yescrypt: only the form is checked, unless Python's crypt exists)."""
    if h.startswith("$6$") and not h.startswith("$6$rounds="):
        salt = h.split("$")[2]
        return sha512_hash(pw, salt) == h
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
        return crypt.crypt(pw, h) == h
    except ImportError:
        return re.fullmatch(r"\$y\$[./0-9A-Za-z$]+", h) is not None


# --- snapshots, to prove that a refused command changed nothing

def tree(t, *subs):
    """{relative path: (mode, bytes or None)} below the given parts of the
    root, without following links."""
    out = {}
    for sub in subs:
        top = t.path(sub)
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                data = None
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        data = f.read()
                out[os.path.relpath(p, t.root)] = (st.st_mode, data)
    return out


def state(t):
    """The files a change may touch, and what the database lists."""
    doms = listdomains(t)
    users = {}
    for line in doms:
        d = line.split()[0]
        if "(alias of" not in line:
            users[d] = listusers(t, d)
    return (tree(t, "control", "domains"), doms, users)


def assert_same(before, after):
    fb, db_, ub = before
    fa, da, ua = after
    assert db_ == da, f"domains changed: {db_} -> {da}"
    assert ub == ua, f"users changed: {ub} -> {ua}"
    added = sorted(set(fa) - set(fb))
    gone = sorted(set(fb) - set(fa))
    changed = sorted(k for k in set(fa) & set(fb) if fa[k] != fb[k])
    assert not (added or gone or changed), (
        f"files changed: added {added[:5]}, removed {gone[:5]}, "
        f"changed {changed[:5]}")


# --- the database as files: schema versions, buckets, copies

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                          "..", "schema")


def schema_files():
    """[(version, path)] of schema/NNN_*.sql, in order, found by listing
    the directory (so a new migration is covered the day it lands); the
    versions must run 1, 2, 3... as tools/embed.sh numbers them"""
    out = []
    for n in os.listdir(SCHEMA_DIR):
        m = re.fullmatch(r"(\d+)_.*\.sql", n)
        if m:
            out.append((int(m.group(1)), os.path.join(SCHEMA_DIR, n)))
    out.sort()
    assert [v for v, _ in out] == list(range(1, len(out) + 1)), out
    return out


def acct_bucket(local):
    """lib/acct.c acct_bucket: FNV-1a-32 of the local part, folded to 16
    bits (users.bucket)."""
    h = 2166136261
    for c in local.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & 0xFFFF


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mailuser_dir(t, name):
    """A new 0700 directory in the test's temporary directory that the
    mail user owns: vadmin, run as root, writes there as that user."""
    d = os.path.join(t.tmp, name)
    os.mkdir(d, 0o700)
    give(t, d)
    return d
