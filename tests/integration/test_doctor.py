"""test_doctor - `facteur doctor`'s table and Maildir checks (domains,
cdb-age, maildirs), `--json` and `--fix`.

Each test builds a root with `facteur init --dev` and vadmin (a domain,
an alias domain, two users, one with a quota), plants faults in it and
looks at what doctor says, in text and in JSON, and at what `--fix`
changes: only modes below domains/ and the generated tables, never what
a symbolic link points at. Files the test makes as root are handed to
the mail user first, as the services would have made them.
"""
import json
import os
import re
import stat
import subprocess
import time

from vadmin_util import give

DOMAIN = "example.org"
ALIAS = "example.net"
CHECKS = ["layout", "database", "control", "tls", "listen", "mx",
          "mailuser", "services", "cdbs", "domains", "cdb-age", "passwords",
          "pending",
          "maildirs", "log", "queue", "relay"]
# a message file name that JSON must escape: a quote, a backslash, a
# control byte
ODD = 'odd"na\\me\x01.msg'


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def build(ctx):
    ctx.init()
    with open(ctx.path("control/passwordscheme"), "w") as f:
        f.write("sha512crypt\n")
    give(ctx, ctx.path("control/passwordscheme"))
    # the mx check must not ask the real DNS about the test domains (an
    # NXDOMAIN would be a FAIL): a resolver port where nothing answers,
    # refused at once on loopback, makes it a warning
    with open(ctx.path("control/resolvers"), "w") as f:
        f.write("127.0.0.1:9\n")
    give(ctx, ctx.path("control/resolvers"))
    ctx.run("vadmin", "adddomain", DOMAIN, "postmaster-pw-1", check=0)
    ctx.run("vadmin", "adduser", f"a@{DOMAIN}", "password-a-1", "--quota",
            "1M", check=0)
    ctx.run("vadmin", "adduser", f"b@{DOMAIN}", "password-b-1", check=0)
    ctx.run("vadmin", "aliasdomain", "add", ALIAS, DOMAIN, check=0)


def maildir(ctx, user):
    return ctx.path("domains", DOMAIN, user, "Maildir")


def lines(p):
    """{check: line} of a text report, every check once, in order"""
    out = [l for l in p.out.splitlines() if not l.startswith("fixed ")]
    assert [re.match(r"(ok|warn|FAIL) ([\w-]+)", l).group(2)
            for l in out] == CHECKS, p.out
    return {re.match(r"\S+ ([\w-]+)", l).group(1): l for l in out}


def report(ctx, *args, check):
    """doctor's JSON report: {check: object}, every check once, in order"""
    p = ctx.run("facteur", "doctor", "--json", *args, check=check)
    arr = json.loads(p.out)
    assert [o["check"] for o in arr] == CHECKS, p.out
    for o in arr:
        assert set(o) == {"check", "status", "message", "fix", "fixed"}, o
        assert o["status"] in ("ok", "warn", "FAIL"), o
        assert (o["status"] == "ok") == (o["message"] == ""), o
    return {o["check"]: o for o in arr}


def cdb_keys(path):
    out = subprocess.run(["cdb", "-l", path], capture_output=True,
                         check=True).stdout.decode()
    return {re.match(r"\+\d+:(.*)$", l).group(1)
            for l in out.splitlines() if l}


def drop_from_cdb(ctx, name, key):
    """rewrite control/NAME without KEY, with tinycdb's cdb tool"""
    path = ctx.path("control", name)
    dump = subprocess.run(["cdb", "-d", path], capture_output=True,
                          check=True).stdout
    kept = b"".join(l + b"\n" for l in dump.split(b"\n")
                    if l and key.encode() not in l) + b"\n"
    subprocess.run(["cdb", "-c", path], input=kept, check=True)
    give(ctx, path)
    assert key not in cdb_keys(path)


def test_doctor_clean_root(ctx):
    build(ctx)
    p = ctx.run("facteur", "doctor", check=0)
    got = lines(p)
    assert not any(l.startswith("FAIL") for l in got.values()), p.out
    for name in ("domains", "cdb-age", "maildirs"):
        assert got[name] == f"ok {name}", p.out
    js = report(ctx, check=0)
    for name, line in got.items():
        assert js[name]["status"] == line.split()[0], (js[name], line)
    # --fix on a clean root does nothing and says nothing of it
    p = ctx.run("facteur", "doctor", "--fix", check=0)
    assert "fixed" not in p.out, p.out


def plant(ctx):
    """the four faults; the path of each"""
    new_a = os.path.join(maildir(ctx, "a"), "new")
    msg = os.path.join(new_a, "1700000000.1.host")
    odd = os.path.join(new_a, ODD)
    for path in (msg, odd):
        with open(path, "w") as f:
            f.write("Subject: x\n\nhello\n")
        give(ctx, path)
        os.chmod(path, 0o700)                           # (a)
    cur_b = os.path.join(maildir(ctx, "b"), "cur")
    os.chmod(cur_b, 0o755)                              # (b)
    drop_from_cdb(ctx, "rcpthosts.cdb", ALIAS)          # (c)
    outside = os.path.join(ctx.tmp, "outside")
    with open(outside, "w") as f:
        f.write("not mail\n")
    os.chmod(outside, 0o644)
    link = os.path.join(maildir(ctx, "b"), "new", "evil")
    os.symlink(outside, link)                           # (d)
    give(ctx, link)
    return msg, odd, cur_b, outside, link


def rel(ctx, path):
    return os.path.relpath(path, ctx.root)


def test_doctor_planted_faults(ctx):
    build(ctx)
    msg, odd, cur_b, outside, link = plant(ctx)
    p = ctx.run("facteur", "doctor", check=1)
    got = lines(p)
    md = got["maildirs"]
    assert md.startswith("FAIL maildirs: "), p.out
    assert re.search(r"message files with an x bit below \S+: 2 \(", md), md
    assert rel(ctx, msg) in md, md
    # a control byte of a file name is not sent to the terminal
    assert rel(ctx, odd).replace("\x01", "?") in md, md
    assert "\x01" not in p.out, p.out
    assert re.search(r"directories not mode 0700 below \S+: 1 \(" +
                     re.escape(rel(ctx, cur_b)) + r"\)", md), md
    assert re.search(r"symbolic links \(never followed\) below \S+: 1 \(" +
                     re.escape(rel(ctx, link)) + r"\)", md), md
    dom = got["domains"]
    assert dom == (f"FAIL domains: {ALIAS} is not in control/rcpthosts.cdb; "
                   "run vadmin rebuild"), p.out
    for name in CHECKS:
        if name not in ("domains", "maildirs"):
            assert not got[name].startswith("FAIL"), p.out

    js = report(ctx, check=1)
    for name, line in got.items():
        assert js[name]["status"] == line.split()[0], (js[name], line)
    assert js["domains"]["message"] == \
        f"{ALIAS} is not in control/rcpthosts.cdb", js["domains"]
    assert js["domains"]["fix"] == "run vadmin rebuild", js["domains"]
    m = js["maildirs"]["message"]
    # the escaped name comes back whole from json.loads
    assert rel(ctx, odd) in m and rel(ctx, link) in m, m
    assert rel(ctx, cur_b) in m, m
    assert "facteur doctor --fix" in js["maildirs"]["fix"], js["maildirs"]
    # the text line is the JSON message and fix, nothing more or less
    assert got["domains"] == "FAIL domains: " + js["domains"]["message"] + \
        "; " + js["domains"]["fix"]

    p = ctx.run("facteur", "doctor", "--fix", check=1)
    fixed = [l for l in p.out.splitlines() if l.startswith("fixed ")]
    assert f"fixed maildirs: chmod 600 {msg} (was 0700)" in fixed, p.out
    assert f"fixed maildirs: chmod 700 {cur_b} (was 0755)" in fixed, p.out
    assert any(re.fullmatch(r"fixed (cdbs|domains): ran \S+/vadmin --root "
                            + re.escape(ctx.root) + " rebuild", l)
               for l in fixed), p.out
    assert not any("evil" in l for l in fixed), p.out
    assert len(fixed) == 4, p.out
    assert lines(p)["domains"] == "ok domains", p.out

    assert mode(msg) == 0o600 and mode(odd) == 0o600
    assert mode(cur_b) == 0o700
    assert ALIAS in cdb_keys(ctx.path("control/rcpthosts.cdb"))
    # the link stays, and what it points at was not touched
    assert os.path.islink(link) and os.readlink(link) == outside
    assert mode(outside) == 0o644
    with open(outside) as f:
        assert f.read() == "not mail\n"

    p = ctx.run("facteur", "doctor", check=1)
    got = lines(p)
    assert got["domains"] == "ok domains", p.out
    assert got["maildirs"].startswith("FAIL maildirs: symbolic links"), p.out
    assert "x bit" not in got["maildirs"], p.out
    assert "0700" not in got["maildirs"], p.out
    assert [n for n, l in got.items() if l.startswith("FAIL")] == \
        ["maildirs"], p.out
    os.unlink(link)
    ctx.run("facteur", "doctor", check=0)


def test_doctor_maildir_structure(ctx):
    """a Maildir without new/, a quota user without maildirsize: named,
    with vadmin's repair as the fix, and not "fixed" by doctor"""
    build(ctx)
    os.rmdir(os.path.join(maildir(ctx, "b"), "new"))
    os.unlink(os.path.join(maildir(ctx, "a"), "maildirsize"))
    p = ctx.run("facteur", "doctor", "--fix", check=1)
    assert "fixed" not in p.out, p.out
    md = lines(p)["maildirs"]
    assert re.search(r"Maildirs without cur/, new/ or tmp/ below \S+: 1 \(" +
                     re.escape(rel(ctx, maildir(ctx, "b"))) + r"\); run "
                     r"vadmin check --repair", md), md
    assert re.search(r"users with a quota and no maildirsize below \S+: 1 \(" +
                     re.escape(rel(ctx, maildir(ctx, "a"))) + r"\)", md), md
    assert not os.path.exists(os.path.join(maildir(ctx, "b"), "new"))
    ctx.run("vadmin", "check", "--repair", check=0)
    ctx.run("facteur", "doctor", check=0)


def test_doctor_cdb_age(ctx):
    """tables older than the database (changed by hand since) and a
    relayrules.cdb older than relayrules: a warning; --fix --json runs
    vadmin rebuild and mta-rules and says so in its JSON"""
    build(ctx)
    old = time.time() - 7200
    for d in ("control", "control/domains", "control/passwd"):
        for n in os.listdir(ctx.path(d)):
            if n.endswith(".cdb"):
                os.utime(ctx.path(d, n), (old, old))
    os.utime(ctx.path("control/relayrules"), None)
    p = ctx.run("facteur", "doctor", check=0)
    line = lines(p)["cdb-age"]
    assert line.startswith("warn cdb-age: db/accounts.sqlite changed "), line
    assert "run vadmin rebuild" in line, line
    assert ("control/relayrules.cdb is older than control/relayrules; "
            "run mta-rules") in line, line
    js = report(ctx, "--fix", check=0)
    age = js["cdb-age"]
    assert age["status"] == "ok", age
    assert len(age["fixed"]) == 2, age
    assert re.fullmatch(r"ran \S+/vadmin --root \S+ rebuild", age["fixed"][0])
    assert re.fullmatch(r"ran \S+/mta-rules --root \S+", age["fixed"][1])
    assert os.stat(ctx.path("control/assign.cdb")).st_mtime > old + 3600
    p = ctx.run("facteur", "doctor", check=0)
    assert lines(p)["cdb-age"] == "ok cdb-age", p.out


def test_doctor_bad_alias_domain(ctx):
    """an alias domain whose real domain is itself an alias (made by
    hand in the database): named, with the vadmin commands to redo it"""
    import sqlite3
    build(ctx)
    db = sqlite3.connect(ctx.path("db/accounts.sqlite"))
    with db:
        db.execute("INSERT INTO domains (name, alias_of, created) SELECT "
                   "'example.com', id, 0 FROM domains WHERE name = ?",
                   (ALIAS,))
    db.close()
    p = ctx.run("facteur", "doctor", check=1)
    dom = lines(p)["domains"]
    assert dom == ("FAIL domains: alias domain example.com points at no "
                   "real domain; remove it with vadmin deldomain example.com "
                   "and add it again with vadmin aliasdomain"), p.out


def test_doctor_foreign_owner(ctx):
    """as root: a file below domains/ that is root's is named, and --fix
    (which runs as the mail user and changes only its own files) leaves
    it as it is"""
    if os.geteuid() != 0:
        print("SKIP: needs root (a file of another user)")
        return
    build(ctx)
    path = os.path.join(maildir(ctx, "b"), "cur", "1700000000.2.host:2,S")
    with open(path, "w") as f:
        f.write("Subject: y\n\nroot's\n")
    os.chmod(path, 0o644)
    p = ctx.run("facteur", "doctor", "--fix", check=1)
    md = lines(p)["maildirs"]
    assert re.search(r"entries not the mail user's below \S+: 1 \(" +
                     re.escape(rel(ctx, path)) + r"\)", md), md
    assert re.search(r"files not mode 0600 below \S+: 1 \(" +
                     re.escape(rel(ctx, path)) + r"\)", md), md
    assert "fixed" not in p.out, p.out
    assert mode(path) == 0o644 and os.stat(path).st_uid == 0


def test_doctor_maildir_outside_domains(ctx):
    """a user whose maildir (in the database) climbs out of domains/ is
    not looked at there, but named as a Maildir that is missing"""
    import sqlite3
    build(ctx)
    os.makedirs(os.path.join(ctx.tmp, "x", "cur"))
    os.makedirs(os.path.join(ctx.tmp, "x", "new"))
    os.makedirs(os.path.join(ctx.tmp, "x", "tmp"))
    db = sqlite3.connect(ctx.path("db/accounts.sqlite"))
    with db:
        db.execute("UPDATE users SET maildir = 'domains/../../x' WHERE "
                   "local = 'b'")
    db.close()
    p = ctx.run("facteur", "doctor", check=1)
    md = lines(p)["maildirs"]
    assert re.fullmatch(r"FAIL maildirs: Maildirs without cur/, new/ or "
                        r"tmp/ below \S+: 1 \(domains/\.\./\.\./x\); run "
                        r"vadmin check --repair", md), md


def test_doctor_md5_crypt_hashes_counted(ctx):
    """SPEC.md: MD5-crypt hashes (kept from vpopmail) still log in, and
    doctor warns with their count; other hashes are not counted"""
    import sqlite3
    build(ctx)
    assert lines(ctx.run("facteur", "doctor", check=0))["passwords"] == \
        "ok passwords"
    db = sqlite3.connect(ctx.path("db/accounts.sqlite"))
    with db:
        db.execute("UPDATE users SET hash = '$1$saltsalt$yL4Dq0IavwLR7Nq9U"
                   "WbeA1' WHERE local = 'a'")
    db.close()
    for name in os.listdir(ctx.path("db")):     # -wal, -shm made by us
        give(ctx, ctx.path("db", name))
    line = lines(ctx.run("facteur", "doctor", check=0))["passwords"]
    assert line.startswith("warn passwords: 1 user has an MD5-crypt ($1$) "
                           "password hash"), line
    assert "vadmin passwd USER@DOMAIN" in line, line
    js = report(ctx, check=0)["passwords"]
    assert js["status"] == "warn" and "vadmin passwd" in js["fix"], js
