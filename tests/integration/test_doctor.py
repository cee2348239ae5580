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

from helpers import MX, dnsmasq
from vadmin_util import give

ME = "mail.example.test"
DOMAIN = "example.org"
ALIAS = "example.net"
CHECKS = ["layout", "database", "control", "tls", "listen", "mx", "dkim",
          "srs",
          "mailuser", "services", "cdbs", "domains", "cdb-age", "passwords",
          "pending",
          "maildirs", "log", "queue", "relay"]
# a message file name that JSON must escape: a quote, a backslash, a
# control byte
ODD = 'odd"na\\me\x01.msg'


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def build(ctx, *init_args):
    ctx.init(*init_args)
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
    assert re.search(r"files open to group or others below \S+: 1 \(" +
                     re.escape(rel(ctx, path)) + r"\)", md), md
    assert "fixed" not in p.out, p.out
    assert mode(path) == 0o644 and os.stat(path).st_uid == 0


def test_doctor_and_vadmin_check_one_mode_rule(ctx):
    """a read-only message (0400) is no fault for either check; one open
    to the group (0640) is one for both (lib/maildir's maildir_mode_ok;
    doctor used to FAIL 0400, which vadmin check passed)"""
    build(ctx)
    ro = os.path.join(maildir(ctx, "a"), "cur", "1700000000.1.host:2,S")
    grp = os.path.join(maildir(ctx, "b"), "cur", "1700000000.2.host:2,S")
    for path, m in ((ro, 0o400), (grp, 0o600)):
        with open(path, "w") as f:
            f.write("Subject: y\n\nhello\n")
        give(ctx, path)
        os.chmod(path, m)
    assert lines(ctx.run("facteur", "doctor", check=None))["maildirs"] \
        .startswith(("ok ", "warn ")), "0400 reported"
    ctx.run("vadmin", "check", check=0)
    os.chmod(grp, 0o640)
    md = lines(ctx.run("facteur", "doctor", check=1))["maildirs"]
    assert re.search(r"files open to group or others below \S+: 1 \(" +
                     re.escape(rel(ctx, grp)) + r"\)", md), md
    assert rel(ctx, ro) not in md, md
    p = ctx.run("vadmin", "check", check=1)
    assert grp in p.out + p.err and ro not in p.out + p.err, p.out + p.err


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


def test_doctor_fix_domains_mode(ctx):
    """domains/ itself 0755: the layout check names it, and --fix makes it
    0700 as it does below it (the gap of the first slice)"""
    build(ctx)
    os.chmod(ctx.path("domains"), 0o755)
    got = lines(ctx.run("facteur", "doctor", check=1))
    assert got["layout"] == (f"FAIL layout: {ctx.path('domains')} is mode "
                             f"0755; run chmod 700 {ctx.path('domains')}")
    p = ctx.run("facteur", "doctor", "--fix", check=0)
    assert (f"fixed layout: chmod 700 {ctx.path('domains')} (was 0755)"
            in p.out.splitlines()), p.out
    assert lines(p)["layout"] == "ok layout", p.out
    assert mode(ctx.path("domains")) == 0o700
    assert lines(ctx.run("facteur", "doctor", check=0))["layout"] == \
        "ok layout"
    # a link in its place is reported, never followed by --fix
    os.rename(ctx.path("domains"), ctx.path("domains.real"))
    os.symlink("domains.real", ctx.path("domains"))
    os.chmod(ctx.path("domains.real"), 0o755)
    p = ctx.run("facteur", "doctor", "--fix", check=1)
    assert "fixed layout" not in p.out, p.out
    assert mode(ctx.path("domains.real")) == 0o755


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def ca_signed(ctx):
    """control/tls: a pair for ME signed by a CA of the test's own, so not
    self-signed"""
    ca_key, ca = os.path.join(ctx.tmp, "ca.key"), os.path.join(ctx.tmp,
                                                               "ca.pem")
    csr, ext = os.path.join(ctx.tmp, "leaf.csr"), os.path.join(ctx.tmp,
                                                               "leaf.ext")
    key, cert = ctx.path("control/tls/key.pem"), \
        ctx.path("control/tls/cert.pem")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days",
            "60", "-subj", "/CN=Doctor Test CA")
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={ME}")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{ME}\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "60", "-extfile", ext)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    give(ctx, key)
    give(ctx, cert)


def control(ctx, name, text):
    with open(ctx.path("control", name), "w") as f:
        f.write(text)
    give(ctx, ctx.path("control", name))


def test_doctor_healthy_root(ctx):
    """a root with nothing wrong: a certificate from a CA covering
    control/me, an SMTP server greeting on listen.smtp (the other listen
    files empty: off), both domains' MX naming control/me: every check ok,
    exit 0, not one warning, in text and in JSON; --fix does nothing"""
    build(ctx, "--hostname", ME)
    ca_signed(ctx)
    mx = MX()
    try:
        for k in ("smtp", "submission", "smtps", "pop3", "pop3s"):
            control(ctx, "listen." + k,
                    f"127.0.0.1:{mx.port}\n" if k == "smtp" else "")
        with dnsmasq(ctx, "--local=/example.org/", "--local=/example.net/",
                     f"--mx-host={DOMAIN},{ME},10",
                     f"--mx-host={ALIAS},{ME},10"):
            p = ctx.run("facteur", "doctor", check=0)
            assert all(l == f"ok {n}" for n, l in lines(p).items()), p.out
            assert all(o["status"] == "ok" and o["fixed"] == []
                       for o in report(ctx, check=0).values())
            p = ctx.run("facteur", "doctor", "--fix", check=0)
            assert "fixed" not in p.out, p.out
            assert all(l == f"ok {n}" for n, l in lines(p).items()), p.out
    finally:
        mx.close()


def plant_all(ctx):
    """every fault of issue 14's list at once; the paths --fix changes"""
    import sqlite3
    msg = os.path.join(maildir(ctx, "a"), "new", "1700000000.9.host")
    with open(msg, "w") as f:
        f.write("Subject: x\n\nhello\n")
    give(ctx, msg)
    os.chmod(msg, 0o755)                                # x bit
    os.chmod(maildir(ctx, "b"), 0o755)                  # a 0755 Maildir
    os.chmod(ctx.path("domains"), 0o755)                # and domains/
    drop_from_cdb(ctx, "rcpthosts.cdb", ALIAS)          # not in rcpthosts
    grant = ctx.path("open-smtp", "192.0.2.9")
    open(grant, "w").close()
    give(ctx, grant)
    old = time.time() - 4 * 3600
    os.utime(grant, (old, old))                         # a stale grant
    os.unlink(os.path.join(maildir(ctx, "a"), "maildirsize"))  # quota
    db = sqlite3.connect(ctx.path("db/accounts.sqlite"))
    with db:                        # an alias of a domain that is gone
        db.execute("INSERT INTO domains (name, alias_of, created) VALUES "
                   "('ghost.example', 9999, 0)")
    db.close()
    for name in os.listdir(ctx.path("db")):
        give(ctx, ctx.path("db", name))
    control(ctx, "relayrules", '127.:allow,RELAYCLIENT=""\n'
            ':allow,RELAYCLIENT=""\n')                  # an open relay
    ctx.run("mta-rules", check=0)
    os.utime(ctx.path("control/relayrules"), (old - 60, old - 60))
    for d in ("control", "control/domains", "control/passwd"):
        for n in os.listdir(ctx.path(d)):               # CDBs older than
            if n.endswith(".cdb"):                      # the database
                os.utime(ctx.path(d, n), (old, old))
    return msg, grant


def test_doctor_every_planted_fault(ctx):
    """issue 14's faults planted in one root: doctor finds every one;
    --fix fixes the safe ones (modes, the tables, the stale grant) and
    leaves the others named (a missing maildirsize, an alias domain of a
    missing domain, an open-relay rule), which a second run still names"""
    build(ctx)
    msg, grant = plant_all(ctx)
    got = lines(ctx.run("facteur", "doctor", check=1))
    dom = ctx.path("domains")
    assert got["layout"] == (f"FAIL layout: {dom} is mode 0755; run "
                             f"chmod 700 {dom}"), got
    md = got["maildirs"]
    assert re.search(r"message files with an x bit below \S+: 1 \(" +
                     re.escape(rel(ctx, msg)) + r"\)", md), md
    assert re.search(r"directories not mode 0700 below \S+: 1 \(" +
                     re.escape(rel(ctx, maildir(ctx, "b"))) + r"\)", md), md
    assert re.search(r"users with a quota and no maildirsize below \S+: 1 "
                     r"\(" + re.escape(rel(ctx, maildir(ctx, "a"))) + r"\)",
                     md), md
    assert f"{ALIAS} is not in control/rcpthosts.cdb" in got["domains"], got
    assert "alias domain ghost.example points at no real domain" in \
        got["domains"], got
    assert got["cdb-age"].startswith("warn cdb-age: db/accounts.sqlite "
                                     "changed "), got
    assert "lets every client relay" in got["relay"], got
    assert "1 stale POP-before-SMTP grant in open-smtp/" in got["relay"], got

    p = ctx.run("facteur", "doctor", "--fix", check=1)
    fixed = [l for l in p.out.splitlines() if l.startswith("fixed ")]
    for want in (f"fixed layout: chmod 700 {dom} (was 0755)",
                 f"fixed maildirs: chmod 600 {msg} (was 0755)",
                 f"fixed maildirs: chmod 700 {maildir(ctx, 'b')} (was 0755)",
                 "fixed relay: removed 1 stale POP-before-SMTP grant from "
                 "open-smtp/"):
        assert want in fixed, p.out
    assert any(re.fullmatch(r"fixed (cdbs|domains|cdb-age): ran \S+/vadmin "
                            r"--root \S+ rebuild", l) for l in fixed), p.out
    assert mode(dom) == 0o700 and mode(msg) == 0o600
    assert mode(maildir(ctx, "b")) == 0o700
    assert not os.path.exists(grant)
    assert ALIAS in cdb_keys(ctx.path("control/rcpthosts.cdb"))

    got = lines(ctx.run("facteur", "doctor", check=1))
    assert got["layout"] == "ok layout" and got["cdb-age"] == "ok cdb-age"
    assert got["maildirs"].startswith("warn maildirs: users with a quota "
                                      "and no maildirsize"), got
    assert got["domains"] == ("FAIL domains: alias domain ghost.example "
                              "points at no real domain; remove it with "
                              "vadmin deldomain ghost.example and add it "
                              "again with vadmin aliasdomain"), got
    assert got["relay"].startswith("FAIL relay: control/relayrules rule "
                                   '":allow,RELAYCLIENT=""" lets every '
                                   "client relay"), got
    assert "stale" not in got["relay"], got


def test_doctor_parallel_walk_order(ctx):
    """40 domains with a message file with its x bit each, walked by
    several threads: the count is whole, the three named are the first
    three in the order of domains/ (readdir's, as one walk would name
    them), --fix's lines come in that order too, and two runs agree"""
    build(ctx)
    made = []
    for i in range(40):
        new = ctx.path("domains", f"w{i:02d}.test", "u", "Maildir", "new")
        os.makedirs(new, 0o700)
        msg = os.path.join(new, "1700000000.1.host")
        with open(msg, "w") as f:
            f.write("Subject: x\n\nhello\n")
        os.chmod(msg, 0o700)
        give(ctx, msg)
        for path in (new, os.path.dirname(new),
                     os.path.dirname(os.path.dirname(new)),
                     os.path.dirname(os.path.dirname(os.path.dirname(new)))):
            os.chmod(path, 0o700)
            give(ctx, path)
        made.append(msg)
    order = [d for d in os.listdir(ctx.path("domains")) if d != DOMAIN]
    want = [rel(ctx, ctx.path("domains", d, "u", "Maildir", "new",
                              "1700000000.1.host")) for d in order]
    p = ctx.run("facteur", "doctor", check=1)
    md = lines(p)["maildirs"]
    assert (f"message files with an x bit below {ctx.root}: 40 (" +
            ", ".join(want[:3]) + ", ...)") in md, md
    assert ctx.run("facteur", "doctor", check=1).out == p.out
    p = ctx.run("facteur", "doctor", "--fix", check=0)
    fixed = [l for l in p.out.splitlines() if l.startswith("fixed ")]
    assert fixed == [f"fixed maildirs: chmod 600 {ctx.root}/{w} (was 0700)"
                     for w in want], p.out
    assert all(mode(m) == 0o600 for m in made)
