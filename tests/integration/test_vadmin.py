"""Integration tests of `vadmin`: every subcommand, success and refusal,
the CDBs it generates, the Maildirs it makes, `check` and `rebuild`, and
the command line (SPEC.md "Programs", "The root", "Administration").

The vpopmail-named links are in test_vpop.py; concurrency, kill -9 and
process listings in test_vadmin_crash.py.
"""
import json
import os
import re
import stat
import time

import helpers
from vadmin_util import (D, add_domain, add_user, all_cdbs, assert_same,
                         assign, cdb_path, check_ok, delivery, err_line,
                         fast_root, fields, give, hash_is_of, listdomains,
                         listusers, mailuser, passwd, prec, put, rcpthosts,
                         refused, sha512_hash, state, tree, urec, userinfo,
                         vadmin)


def maildir(t, local, domain=D):
    return t.path("domains", domain, local, "Maildir")


def assert_private_dir(t, path):
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode), f"{path} is not a directory"
    assert stat.S_IMODE(st.st_mode) == 0o700, (
        f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, want 0700")
    assert st.st_uid == mailuser(t).pw_uid, f"{path} not owned by mail user"


def assert_maildir(t, local, domain=D):
    assert_private_dir(t, t.path("domains", domain, local))
    for sub in ("", "cur", "new", "tmp"):
        assert_private_dir(t, os.path.join(maildir(t, local, domain), sub))


def read(path):
    with open(path) as f:
        return f.read()


# ---------------------------------------------------------------- adddomain

def test_adddomain_makes_domain_and_postmaster(t):
    fast_root(t)
    p = add_domain(t, "Example.TEST", "pm-Secret-1", "--quota", "10M")
    assert p.err == "", p.err
    assert listdomains(t) == [D]
    assert listusers(t) == ["postmaster@" + D]
    # the global tables: the domain is hosted and maps to its directory
    assert assign(t) == {D: (D, "domains/" + D)}
    assert rcpthosts(t) == {D: b""}
    # the delivery table: the postmaster's mailbox, and the default catch-all
    md = f"domains/{D}/postmaster/Maildir"
    assert urec(t, "postmaster") == [md, "10485760", "0", "0"]
    assert delivery(t)[b"*"] == b"bounce"
    # the login table: a hash of the password read on stdin, a CRAM context
    h, cram, flags, md2, qb, qm = prec(t, "postmaster")
    assert h.startswith("$6$") and hash_is_of(h, "pm-Secret-1"), h
    assert re.fullmatch(r"[0-9a-f]{64}", cram), cram
    assert (flags, md2, qb, qm) == ("0", md, "10485760", "0")
    for kind in ("delivery", "passwd"):
        st = os.stat(cdb_path(t, kind, D))
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert st.st_uid == mailuser(t).pw_uid
    assert_private_dir(t, t.path("control", "passwd"))
    assert_private_dir(t, t.path("domains", D))
    assert_maildir(t, "postmaster")
    assert read(os.path.join(maildir(t, "postmaster"), "maildirsize")) == \
        "10485760S\n0 0\n"
    # the domain's quota is the default of its new users
    add_user(t, "u1@" + D)
    assert urec(t, "u1")[1:3] == ["10485760", "0"]
    add_user(t, "u2@" + D, "pw-2", "--quota", "1M")
    assert urec(t, "u2")[1:3] == ["1048576", "0"]
    info = json.loads(vadmin(t, "dominfo", D, "--json").out)
    assert info["default_quota"] == "10485760S" and info["users"] == 3
    check_ok(t)


def test_adddomain_password_on_command_line_and_yescrypt_default(t):
    t.init()  # default scheme: yescrypt
    vadmin(t, "adddomain", D, "pm-Secret-9")
    h = prec(t, "postmaster")[0]
    assert h.startswith("$y$"), h
    assert hash_is_of(h, "pm-Secret-9")
    assert userinfo(t, "postmaster@" + D)["password"] == "yescrypt"


def test_adddomain_duplicate_refused(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "someone@" + D)
    before = state(t)
    for name in (D, "EXAMPLE.Test"):
        refused(t, "adddomain", name, input="x-secret\n",
                want=f"domain {D} already exists")
    assert_same(before, state(t))


def test_adddomain_empty_password_refused(t):
    fast_root(t)
    before = state(t)
    refused(t, "adddomain", D, input="\n", want="empty password")
    refused(t, "adddomain", D, input="", want="empty password")
    assert_same(before, state(t))
    assert not os.path.exists(t.path("domains", D)) or \
        os.listdir(t.path("domains", D)) == [], "a refused domain left files"


def test_adddomain_invalid_names_refused(t):
    fast_root(t)
    add_domain(t, "keep.test")
    before = state(t)
    label63 = "a" * 63
    bad = {
        "a/b.test": "slash",
        "..": "dot",
        "a..b.test": "'..'",
        ".lead.test": "starts with a dot",
        "trail.test.": "ends with a dot",
        "ctl\x01.test": "control byte",
        "del\x7f.test": "control byte",
        "sp ace.test": "space",
        "": "empty",
        (label63 + ".") * 3 + "a" * 62: "longer than 253",   # 254 bytes
        "a" * 64 + ".test": "longer than 63",
        "under_score.test": "letters, digits",
        "lead-.test": "hyphen",
        "a.-lead.test": "hyphen",
        "caf\udce9.test": "well-formed UTF-8",   # the byte 0xe9 alone
    }
    for name, why in bad.items():
        p = refused(t, "adddomain", name, input="pw-Secret\n",
                    want="invalid domain")
        assert why in p.err, f"{name!r}: {p.err!r}"
    # a leading hyphen, after "--" so that it is not taken for an option
    p = t.run("vadmin", "--root", t.root, "adddomain", "--", "-lead.test",
              root=False, input="pw-Secret\n", check=1)
    err_line(p, "vadmin", "hyphen")
    assert_same(before, state(t))
    # the limits are limits: 63-byte labels are fine
    add_domain(t, label63 + ".test")
    assert label63 + ".test" in listdomains(t)
    # a domain in U-labels is its A-labels, however it is spelled after
    add_domain(t, "Caf\u00e9.test")
    assert "xn--caf-dma.test" in listdomains(t)
    add_user(t, "bob@caf\u00e9.test")
    assert "bob@xn--caf-dma.test" in vadmin(t, "listusers",
                                           "xn--caf-dma.test").out


def test_adddomain_longest_valid_name(t):
    # a 253-byte name is valid (RFC 1035); it must either work completely
    # or be refused with nothing changed -- never half-made
    fast_root(t)
    name = ("a" * 63 + ".") * 3 + "a" * 61
    assert len(name) == 253
    before = state(t)
    p = vadmin(t, "adddomain", name, input="pw-Secret\n", check=None)
    if p.returncode == 1:
        err_line(p)
        assert_same(before, state(t))
        return
    assert p.returncode == 0, f"exit {p.returncode}: {p.err}"
    assert name in listdomains(t)
    assert urec(t, "postmaster", name) is not None
    check_ok(t)


def test_adddomain_usage_errors(t):
    fast_root(t)
    refused(t, "adddomain", code=2, want="missing argument")
    refused(t, "adddomain", D, "--quota", code=2, want="needs a value")
    refused(t, "adddomain", D, "--name", "x", code=2, want="unknown option")
    refused(t, "adddomain", D, "--quota", "lots", input="pw-Secret\n",
            want="invalid quota")
    assert listdomains(t) == []


# ---------------------------------------------------------------- deldomain

def test_deldomain_removes_everything(t):
    fast_root(t)
    add_domain(t, "a.test")
    add_domain(t, "b.test")
    add_user(t, "u@a.test")
    vadmin(t, "aliasdomain", "add", "alias-a.test", "a.test")
    vadmin(t, "aliasdomain", "add", "alias-b.test", "b.test")
    vadmin(t, "alias", "add", "info@a.test", "u")
    assert set(assign(t)) == {"a.test", "b.test", "alias-a.test",
                              "alias-b.test"}
    vadmin(t, "deldomain", "A.test")
    assert not os.path.exists(t.path("domains", "a.test"))
    for sub in ("domains", "passwd"):
        left = [n for n in os.listdir(t.path("control", sub))
                if n.startswith(("a.test.", "a.test+", "alias-a.test"))]
        assert left == [], f"control/{sub}: {left}"
    assert set(assign(t)) == {"b.test", "alias-b.test"}
    assert set(rcpthosts(t)) == {"b.test", "alias-b.test"}
    assert listdomains(t) == ["alias-b.test (alias of b.test)", "b.test"]
    assert os.path.exists(cdb_path(t, "delivery", "b.test"))
    refused(t, "deldomain", "a.test", want="does not exist")
    refused(t, "deldomain", "alias-a.test", want="does not exist")
    refused(t, "deldomain", "bad/name", want="invalid domain")
    refused(t, "deldomain", code=2, want="missing argument")
    # deldomain of an alias domain removes only the alias
    vadmin(t, "deldomain", "alias-b.test")
    assert set(assign(t)) == {"b.test"}
    assert os.path.isdir(t.path("domains", "b.test", "postmaster"))
    check_ok(t)
    # the name can be used again
    add_domain(t, "a.test")
    assert listusers(t, "a.test") == ["postmaster@a.test"]


# ---------------------------------------------------------------- adduser

def test_adduser_password_argument_stdin_and_hash(t):
    fast_root(t)
    add_domain(t)
    vadmin(t, "adduser", "arg@" + D, "Arg-Secret-1")
    vadmin(t, "adduser", "stdin@" + D, input="Stdin-Secret-2\n")
    vadmin(t, "adduser", "crlf@" + D, input="Crlf-Secret-3\r\n")
    ready = sha512_hash("Hash-Secret-4", "h4sh5alt")
    vadmin(t, "adduser", "hashed@" + D, "--hash", ready)
    for local, pw in (("arg", "Arg-Secret-1"), ("stdin", "Stdin-Secret-2"),
                      ("crlf", "Crlf-Secret-3")):
        h, cram = prec(t, local)[:2]
        assert h.startswith("$6$") and hash_is_of(h, pw), (local, h)
        assert re.fullmatch(r"[0-9a-f]{64}", cram), (local, cram)
        assert userinfo(t, f"{local}@{D}")["cram_md5"] is True
    assert sorted(listusers(t)) == sorted(
        f"{u}@{D}" for u in ("arg", "stdin", "crlf", "hashed", "postmaster"))
    for u in ("arg", "stdin", "crlf", "hashed"):
        assert_maildir(t, u)
    check_ok(t)
    # a ready hash is stored as given; there is no CRAM-MD5 context for it
    h, cram = prec(t, "hashed")[:2]
    assert h == ready
    assert cram == "", f"--hash stored the CRAM-MD5 context {cram!r}"
    info = userinfo(t, "hashed@" + D)
    assert info["password"] == "sha512crypt" and info["cram_md5"] is False


def test_adduser_quota_and_name(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "jane@" + D, "pw-Secret", "--quota", "5M", "--name",
             'Jane "JD" Doe')
    assert urec(t, "jane") == [f"domains/{D}/jane/Maildir", "5242880", "0",
                               "0"]
    assert prec(t, "jane")[4:] == ["5242880", "0"]
    assert read(os.path.join(maildir(t, "jane"), "maildirsize")) == \
        "5242880S\n0 0\n"
    st = os.stat(os.path.join(maildir(t, "jane"), "maildirsize"))
    assert stat.S_IMODE(st.st_mode) == 0o600
    info = userinfo(t, "jane@" + D)
    assert info["name"] == 'Jane "JD" Doe'
    assert info["quota"] == "5242880S" and info["quota_bytes"] == 5242880
    # no quota: no maildirsize
    add_user(t, "free@" + D)
    assert urec(t, "free")[1:3] == ["0", "0"]
    assert not os.path.exists(os.path.join(maildir(t, "free"), "maildirsize"))
    assert userinfo(t, "free@" + D)["quota"] == "none"


def test_adduser_refusals_change_nothing(t):
    fast_root(t)
    add_domain(t)
    add_domain(t, "real.test")
    vadmin(t, "aliasdomain", "add", "alias.test", "real.test")
    add_user(t, "Bob@" + D)
    assert "bob@" + D in listusers(t)          # folded to lower case
    vadmin(t, "alias", "add", "sales@" + D, "bob")
    before = state(t)
    cases = [
        (("bob@" + D,), "pw-Secret\n", "already exists"),
        (("BOB@" + D.upper(),), "pw-Secret\n", "already exists"),
        (("sales@" + D,), "pw-Secret\n", "is an alias"),
        (("x@missing.test",), "pw-Secret\n", "does not exist"),
        (("x@alias.test",), "pw-Secret\n", "alias of real.test"),
        (("u" * 65 + "@" + D,), "pw-Secret\n", "longer than 64"),
        (("no-at-sign",), "pw-Secret\n", "user@domain"),
        (("a/b@" + D,), "pw-Secret\n", "invalid address"),
        (("..@" + D,), "pw-Secret\n", "invalid address"),
        ((".x@" + D,), "pw-Secret\n", "invalid address"),
        (("c\x01@" + D,), "pw-Secret\n", "invalid address"),
        (("x@bad..test",), "pw-Secret\n", "invalid address"),
        (("empty@" + D,), "\n", "empty password"),
        (("empty@" + D,), "", "empty password"),
        (("ctl@" + D,), "pw\x01x\n", "control byte"),
        (("long@" + D,), "p" * 129 + "\n", "longer than 128"),
        (("q@" + D, "--quota", "12X"), "pw-Secret\n", "invalid quota"),
        (("q@" + D, "--quota", "5M,6M"), "pw-Secret\n", "invalid quota"),
        (("q@" + D, "--quota", ""), "pw-Secret\n", "invalid quota"),
        (("h@" + D, "--hash", "$1$abc$defghijklmnopqrstu"), "", "--hash"),
        (("h@" + D, "--hash", "plain-text-password"), "", "--hash"),
    ]
    for args, stdin, why in cases:
        refused(t, "adduser", *args, input=stdin, want=why)
    refused(t, "adduser", "x@" + D, "pw", "--hash", sha512_hash("x"),
            code=2, want="not both")
    refused(t, "adduser", code=2, want="missing argument")
    refused(t, "adduser", "x@" + D, "pw", "extra", code=2,
            want="too many")
    assert_same(before, state(t))
    # the limits are limits: a 64-byte local part is fine
    add_user(t, "u" * 64 + "@" + D)
    assert_maildir(t, "u" * 64)
    check_ok(t)


def test_names_mail_could_never_reach_are_refused(t):
    """A user, an alias or a destination that no mail could reach or be
    sent on to is refused when it is made, not found out at the first
    message (RCPT refusing it, or a bounce): a local part that begins with
    '-' (every entry refuses it) and, in our domains, one with '%' or '!'
    (SMTP refuses those in a recipient); likewise from an import file.
    Nothing changes; remote local parts keep the other bytes they may."""
    fast_root(t)
    add_domain(t)
    add_user(t, "bob@" + D)
    before = state(t)
    never = "could never receive mail"
    for addr, why in (("-bob@" + D, "begins with '-'"),
                      ("a%b@" + D, "'%' or '!'"),
                      ("x!y@" + D, "'%' or '!'")):
        refused(t, "adduser", "--", addr, input="pw-Secret-1\n",
                want=never)
        refused(t, "alias", "add", "--", addr, "bob", want=never)
        assert why in t.run("vadmin", "adduser", "--", addr,
                            input="pw-Secret-1\n", check=1).err
    for dest in ("-y", "-y@" + D, "a%b", "-y@remote.test"):
        want = "invalid destination"
        refused(t, "alias", "add", "sales@" + D, "--", dest, want=want)
        refused(t, "forward", "bob@" + D, "--", dest, want=want)
        refused(t, "catchall", D, "--", dest, want=want)
    path = os.path.join(t.tmp, "users")
    with open(path, "w") as f:
        f.write(f"c-ok@{D} pw-Secret-1\n-bad@{D} pw-Secret-1\n")
    refused(t, "import", path, want="line 2: invalid address")
    assert_same(before, state(t))
    vadmin(t, "forward", "bob@" + D, "Mixed%Case@remote.test")


def test_password_never_stored_in_clear(t):
    fast_root(t)
    secrets = ["Clear-Domain-Pw-9137", "Clear-Arg-Pw-5521",
               "Clear-Stdin-Pw-2286", "Clear-New-Pw-7730",
               "Clear-Import-Pw-4410"]
    add_domain(t, D, secrets[0])
    vadmin(t, "adduser", "a@" + D, secrets[1])
    vadmin(t, "adduser", "b@" + D, input=secrets[2] + "\n")
    vadmin(t, "passwd", "a@" + D, secrets[3])
    imp = os.path.join(t.tmp, "import.txt")
    with open(imp, "w") as f:
        f.write(f"c@{D} {secrets[4]}\n")
    vadmin(t, "import", imp)
    os.unlink(imp)
    seen = 0
    for dirpath, _, files in os.walk(t.root):
        for n in files:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            seen += 1
            for s in secrets:
                assert s.encode() not in data, f"{s} in clear in {p}"
    assert seen > 10
    assert os.path.exists(t.path("db", "accounts.sqlite"))
    for local, pw in (("postmaster", secrets[0]), ("a", secrets[3]),
                      ("b", secrets[2]), ("c", secrets[4])):
        assert hash_is_of(prec(t, local)[0], pw), local


# ---------------------------------------------------------------- import

def write_lines(t, name, lines):
    path = os.path.join(t.tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o644)
    return path


def test_import_100_users(t):
    fast_root(t)
    add_domain(t)
    add_domain(t, "other.test")
    ready = sha512_hash("Ready-Hash-Pw", "imp0rtSa")
    lines = ["# users moved from the old server", ""]
    for i in range(100):
        dom = D if i % 4 else "other.test"
        if i % 3 == 0:
            secret = ready
        else:
            secret = f"clear-pw-{i}"
        quota = {0: "", 1: " 10M", 2: " 1000000S,500C"}[i % 3]
        lines.append(f"User{i:03d}@{dom} {secret}{quota}")
    path = write_lines(t, "users.txt", lines)
    p = vadmin(t, "import", path)
    assert "imported 100 users" in p.out, p.out
    users = listusers(t) + listusers(t, "other.test")
    assert len(users) == 102, len(users)
    for i in (0, 1, 2, 5, 99):
        dom = D if i % 4 else "other.test"
        local = f"user{i:03d}"
        h, cram = prec(t, local, dom)[:2]
        if i % 3 == 0:
            assert h == ready and cram == ""
        else:
            assert hash_is_of(h, f"clear-pw-{i}") and len(cram) == 64
        want = {0: ["0", "0"], 1: ["10485760", "0"],
                2: ["1000000", "500"]}[i % 3]
        assert urec(t, local, dom)[1:3] == want, (local, urec(t, local, dom))
        assert_maildir(t, local, dom)
        msz = os.path.join(maildir(t, local, dom), "maildirsize")
        if i % 3:
            assert read(msz).splitlines()[0] == {1: "10485760S",
                                                 2: "1000000S,500C"}[i % 3]
        else:
            assert not os.path.exists(msz)
    assert len(passwd(t)) == 76 and len(passwd(t, "other.test")) == 26
    check_ok(t)


def import_refused(t, lines, lineno, why):
    """A refused import: the users and every CDB are as before (the
    directories are the business of test_import_refused_leaves_no_...)."""
    before, cdbs = state(t), all_cdbs(t)
    path = write_lines(t, f"bad{lineno}.txt", lines)
    p = refused(t, "import", path, want=why)
    assert f"line {lineno}" in p.err and "nothing was imported" in p.err, \
        p.err
    assert state(t)[1:] == before[1:], "import added users"
    assert all_cdbs(t) == cdbs, "a CDB changed"


def good_lines(n, start=0):
    return [f"imp{i}@{D} pw-Secret-{i}" for i in range(start, start + n)]


def test_import_from_stdin(t):
    fast_root(t)
    add_domain(t)
    ready = sha512_hash("Stdin-Import-Pw", "st1nSalt")
    data = f"# comment\r\nin1@{D} {ready}\r\n\r\nIN2@{D} clear-Pw-2 2M\r\n"
    p = vadmin(t, "import", "-", input=data)
    assert "imported 2 users" in p.out, p.out
    assert prec(t, "in1")[0] == ready
    assert hash_is_of(prec(t, "in2")[0], "clear-Pw-2")
    assert urec(t, "in2")[1] == "2097152"
    # an empty file imports nobody, and says so
    p = vadmin(t, "import", "-", input="")
    assert "imported 0 users" in p.out
    assert len(listusers(t)) == 3


def test_import_one_bad_line_adds_no_user(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "exists@" + D)
    g = good_lines(40)
    variants = [
        ("imp-x@" + D, "want"),                         # no password
        (f"imp-x@{D} pw extra junk", "want"),          # too many fields
        (f"a/b@{D} pw-Secret", "invalid address"),
        (f"x@missing.test pw-Secret", "does not exist"),
        (f"q@{D} pw-Secret 10Q", "invalid quota"),
        (f"exists@{D} pw-Secret", "already exists"),
    ]
    for bad, why in variants:
        import_refused(t, g[:20] + [bad] + g[20:], 21, why)
    # a missing file is refused too
    refused(t, "import", os.path.join(t.tmp, "no-such-file"),
            want="cannot open")
    check_ok(t)


def test_import_bad_secret_names_the_line(t):
    # a bad hash or password is a bad line like any other: refused, the
    # line named, nothing imported
    fast_root(t)
    add_domain(t)
    g = good_lines(6)
    import_refused(t, g[:3] + [f"h@{D} $1$notourscheme$xxxxxxxxxxxxxxx"] +
                   g[3:], 4, "h")
    import_refused(t, g[:3] + [f"c@{D} bad\x01password"] + g[3:], 4,
                   "control byte")


def test_import_duplicate_line_adds_no_user(t):
    fast_root(t)
    add_domain(t)
    g = good_lines(30)
    import_refused(t, g + [g[4]], 31, "imp4@")
    import_refused(t, g + [g[4].upper().replace("PW-SECRET", "pw")], 31,
                   "imp4@")
    # and the file without the duplicate goes in whole
    vadmin(t, "import", write_lines(t, "ok.txt", g))
    assert len(listusers(t)) == 31


def test_import_refused_leaves_no_directories(t):
    # "nothing changes": a refused import must not leave the Maildirs of
    # the lines before the bad one behind for the admin to clean up
    fast_root(t)
    add_domain(t)
    g = good_lines(10)
    before = tree(t, "domains")
    refused(t, "import", write_lines(t, "bad.txt", g + ["bad-line"]),
            want="line 11")
    left = sorted(set(tree(t, "domains")) - set(before))
    assert left == [], f"refused import left {len(left)} paths: {left[:4]}"
    p = check_ok(t)
    assert "warn:" not in p.out, p.out


# ---------------------------------------------------------------- deluser

def test_deluser(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "gone@" + D)
    add_user(t, "stays@" + D)
    vadmin(t, "forward", "gone@" + D, "x@remote.test")
    msg = os.path.join(maildir(t, "gone"), "new", "1.M1P1.host")
    put(t, msg, "Subject: hi\n\nbody\n")
    assert b"fgone" in delivery(t)
    vadmin(t, "deluser", "Gone@" + D)
    assert not os.path.exists(t.path("domains", D, "gone"))
    assert b"ugone" not in delivery(t) and b"fgone" not in delivery(t)
    assert b"gone" not in passwd(t)
    assert b"ustays" in delivery(t) and b"stays" in passwd(t)
    assert "gone@" + D not in listusers(t)
    refused(t, "deluser", "gone@" + D, want="does not exist")
    refused(t, "deluser", "x@missing.test", want="does not exist")
    refused(t, "deluser", "bad", want="invalid address")
    refused(t, "deluser", code=2, want="missing argument")
    check_ok(t)
    # the address can be used again, with a new empty mailbox
    add_user(t, "gone@" + D)
    assert os.listdir(os.path.join(maildir(t, "gone"), "new")) == []


# ---------------------------------------------------------------- passwd

def test_passwd(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D, "First-Pw-1")
    h1, c1 = prec(t, "u")[:2]
    vadmin(t, "passwd", "u@" + D, "Second-Pw-2")
    h2, c2 = prec(t, "u")[:2]
    assert h2 != h1 and c2 != c1 and hash_is_of(h2, "Second-Pw-2")
    assert not hash_is_of(h2, "First-Pw-1")
    vadmin(t, "passwd", "U@" + D, input="Third-Pw-3\n")
    h3 = prec(t, "u")[0]
    assert h3 != h2 and hash_is_of(h3, "Third-Pw-3")
    before = state(t)
    refused(t, "passwd", "u@" + D, input="\n", want="empty password")
    refused(t, "passwd", "nobody@" + D, "Pw-5", want="does not exist")
    refused(t, "passwd", "u@missing.test", "Pw-5", want="does not exist")
    refused(t, "passwd", "u@" + D, "--hash", "nothash", want="--hash")
    refused(t, "passwd", code=2, want="missing argument")
    assert_same(before, state(t))
    ready = sha512_hash("Fourth-Pw-4", "f0urth")
    vadmin(t, "passwd", "u@" + D, "--hash", ready)
    h, cram = prec(t, "u")[:2]
    assert h == ready
    # the rest of the record is untouched
    assert prec(t, "u")[2:] == ["0", f"domains/{D}/u/Maildir", "0", "0"]
    # the old CRAM-MD5 context (of another password) must be gone
    assert cram == "", f"passwd --hash left the CRAM-MD5 context {cram!r}"
    assert userinfo(t, "u@" + D)["cram_md5"] is False


def test_passwd_refuses_password_and_hash_together(t):
    # as adduser does: a PASSWORD and --hash at once is a usage error, not
    # a silent choice of one of them
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D, "First-Pw-1")
    before = state(t)
    refused(t, "passwd", "u@" + D, "Typed-Pw-2", "--hash",
            sha512_hash("Other-Pw-3"), code=2, want="not both")
    assert_same(before, state(t))


# ---------------------------------------------------------------- setquota

def test_setquota(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D)
    msz = os.path.join(maildir(t, "u"), "maildirsize")
    assert not os.path.exists(msz)
    vadmin(t, "setquota", "u@" + D, "50M")
    assert read(msz) == "52428800S\n0 0\n"
    assert urec(t, "u")[1:3] == ["52428800", "0"]
    assert prec(t, "u")[4:] == ["52428800", "0"]
    # usage is counted from the Maildir: a 100-byte message in new/, a
    # message in cur/ whose size is in its name
    put(t, os.path.join(maildir(t, "u"), "new", "1.M1P1.host"), "x" * 100)
    put(t, os.path.join(maildir(t, "u"), "cur", "2.M2P2.host,S=5000:2,S"),
        "y" * 10)
    vadmin(t, "setquota", "u@" + D, "2G")
    assert read(msz) == "2147483648S\n5100 2\n"
    vadmin(t, "setquota", "u@" + D, "1000000S,500C")
    assert read(msz).splitlines()[0] == "1000000S,500C"
    assert urec(t, "u")[1:3] == ["1000000", "500"]
    assert userinfo(t, "u@" + D)["quota"] == "1000000S,500C"
    vadmin(t, "setquota", "u@" + D, "1000000")
    assert read(msz).splitlines()[0] == "1000000S"
    vadmin(t, "setquota", "u@" + D, "NOQUOTA")
    assert not os.path.exists(msz)
    assert urec(t, "u")[1:3] == ["0", "0"]
    assert userinfo(t, "u@" + D)["quota"] == "none"
    vadmin(t, "setquota", "u@" + D, "7K")
    assert read(msz).splitlines()[0] == "7168S"
    before = state(t)
    for bad in ("garbage", "12X", "10M,20M", "1,2,3", "5-M", "M", "",
                "99999999999999999999999"):
        refused(t, "setquota", "u@" + D, bad, want="invalid quota")
    refused(t, "setquota", "nobody@" + D, "5M", want="does not exist")
    refused(t, "setquota", "u@" + D, code=2, want="missing argument")
    assert_same(before, state(t))
    check_ok(t)


def test_setquota_waits_for_deliveries_appending(t):
    """setquota rewrites maildirsize from a scan of the Maildir: it holds
    the exclusive quota lock (flock of the Maildir's quota.lock) from the scan to the
    rename, so it waits while a delivery or a POP3 QUIT holds the shared
    one between its file and its line; the usage counts Maildir++ folders
    as deliveries count them"""
    import fcntl
    import threading
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D)
    md = maildir(t, "u")
    msz = os.path.join(md, "maildirsize")
    put(t, os.path.join(md, "new", "1.M1P1.host"), "x" * 100)
    os.makedirs(os.path.join(md, ".Sent", "cur"))
    put(t, os.path.join(md, ".Sent", "cur", "2.M2P2.host,S=300:2,S"), "y")
    dfd = helpers.quota_lock(md)
    got = {}
    try:
        fcntl.flock(dfd, fcntl.LOCK_SH)     # an append under way
        th = threading.Thread(target=lambda: got.update(
            p=vadmin(t, "setquota", "u@" + D, "50M")))
        th.start()
        time.sleep(1.0)
        assert th.is_alive(), got
        assert not os.path.exists(msz)
    finally:
        fcntl.flock(dfd, fcntl.LOCK_UN)
        os.close(dfd)
    th.join(30)
    assert got["p"].returncode == 0
    assert read(msz) == "52428800S\n400 2\n"


# ---------------------------------------------------------------- aliases

def alias_dests(t, local, domain=D):
    v = delivery(t, domain).get(b"a" + local.encode())
    return None if v is None else sorted(x.decode() for x in fields(v))


def test_alias_add_and_del(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "alice@" + D)
    vadmin(t, "alias", "add", "Info@" + D, "alice", "Bob@Other.Test")
    assert alias_dests(t, "info") == ["Bob@other.test", "alice@" + D]
    vadmin(t, "alias", "add", "info@" + D, "carol@x.test")
    assert alias_dests(t, "info") == ["Bob@other.test", "alice@" + D,
                                      "carol@x.test"]
    assert json.loads(vadmin(t, "dominfo", D, "--json").out)["aliases"] == 1
    before = state(t)
    refused(t, "alias", "add", "info@" + D, "alice",
            want="already delivers")
    refused(t, "alias", "add", "alice@" + D, "x@y.test", want="is a mailbox")
    refused(t, "alias", "add", "postmaster@" + D, "x@y.test",
            want="is a mailbox")
    refused(t, "alias", "add", "a@missing.test", "x@y.test",
            want="does not exist")
    refused(t, "alias", "add", "a@" + D, "bad/dest", want="invalid")
    refused(t, "alias", "add", "a@" + D, "x@bad..test", want="invalid")
    refused(t, "alias", "del", "info@" + D, "nobody@x.test",
            want="no destination")
    refused(t, "alias", "del", "nosuch@" + D, want="does not exist")
    refused(t, "alias", "add", "a@" + D, code=2, want="missing argument")
    refused(t, "alias", "frob", code=2, want="alias add")
    refused(t, "alias", code=2)
    assert_same(before, state(t))
    vadmin(t, "alias", "del", "info@" + D, "Bob@Other.test")
    assert alias_dests(t, "info") == ["alice@" + D, "carol@x.test"]
    vadmin(t, "alias", "del", "info@" + D)
    assert alias_dests(t, "info") is None
    refused(t, "alias", "del", "info@" + D, want="does not exist")
    check_ok(t)


def test_alias_loops_refused(t):
    fast_root(t)
    add_domain(t)
    vadmin(t, "aliasdomain", "add", "alias.test", D)
    vadmin(t, "alias", "add", "a@" + D, "b")
    vadmin(t, "alias", "add", "b@" + D, "c", "out@remote.test")
    before = state(t)
    cdbs = all_cdbs(t)
    for args in (("c@" + D, "a"),                   # a -> b -> c -> a
                 ("b@" + D, "x@remote.test", "a"),  # b -> a -> b
                 ("self@" + D, "self"),            # self -> self
                 ("c@" + D, "a@alias.test")):      # through an alias domain
        p = refused(t, "alias", "add", *args, want="loop")
    assert "a@" + D in p.err
    assert_same(before, state(t))
    assert all_cdbs(t) == cdbs
    assert alias_dests(t, "c") is None and alias_dests(t, "self") is None
    assert alias_dests(t, "b") == ["c@" + D, "out@remote.test"]


def test_alias_loop_search_reaches_each_address_once(t):
    """vadmin's loop search walks breadth-first, each address once: on 40
    layers of two aliases that both lead to the next layer (2^40 ways
    through; the depth-first search it replaces took 13 s a change at 16
    layers, doubling with each) every change is checked, and a loop of 41
    aliases, past that search's 32-deep cut, is refused and named"""
    fast_root(t)
    add_domain(t)
    n = 40
    for i in range(n, 0, -1):
        for x in "ab":
            vadmin(t, "alias", "add", f"{x}{i}@{D}", f"a{i + 1}",
                   f"b{i + 1}", check=0, timeout=30)
    p = refused(t, "alias", "add", f"a{n + 1}@{D}", "a1", want="loop")
    line = p.err.strip()
    assert line.endswith(f" -> a{n + 1}@{D}"), line
    assert f"loop: a{n + 1}@{D} -> a1@{D} -> " in line, line
    assert line.count(" -> ") == n + 1, line
    assert alias_dests(t, f"a{n + 1}") is None


# ---------------------------------------------------------------- forward

def test_forward(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D)
    add_user(t, "v@" + D)
    vadmin(t, "forward", "u@" + D, "X@Remote.Test")
    assert delivery(t)[b"fu"] == b"0\0X@remote.test"  # remote: case kept
    info = userinfo(t, "u@" + D)
    assert info["forward"] == "X@remote.test" and \
        info["forward_keep"] is False
    vadmin(t, "forward", "u@" + D, "x@remote.test", "--keep")
    assert delivery(t)[b"fu"] == b"1\0x@remote.test"
    assert "forward: x@remote.test (keeps a copy)" in \
        vadmin(t, "userinfo", "u@" + D).out
    vadmin(t, "forward", "u@" + D, "v")         # local: expands to @domain
    assert delivery(t)[b"fu"] == b"0\0v@" + D.encode()
    before = state(t)
    refused(t, "forward", "v@" + D, "u", want="loop")          # v -> u -> v
    refused(t, "forward", "u@" + D, "u", want="loop")          # to itself
    refused(t, "forward", "nobody@" + D, "x@y.test", want="does not exist")
    refused(t, "forward", "u@" + D, "bad/dest", want="invalid")
    refused(t, "forward", "u@" + D, code=2, want="missing argument")
    refused(t, "forward", "u@" + D, "--bogus", code=2,
            want="unknown option")
    assert_same(before, state(t))
    # a loop through an alias: al -> v, v forwards to al
    vadmin(t, "alias", "add", "al@" + D, "v")
    refused(t, "forward", "v@" + D, "al", want="loop")
    assert b"fv" not in delivery(t)
    vadmin(t, "forward", "u@" + D, "--remove")
    assert b"fu" not in delivery(t)
    assert userinfo(t, "u@" + D)["forward"] is None
    refused(t, "forward", "u@" + D, "--remove", want="has no forward")
    check_ok(t)


# ---------------------------------------------------------------- catchall

def test_catchall(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "box@" + D)
    vadmin(t, "alias", "add", "sales@" + D, "box")

    def catchall():
        return delivery(t)[b"*"]

    assert catchall() == b"bounce"
    vadmin(t, "catchall", D, "delete")
    assert catchall() == b"delete"
    vadmin(t, "catchall", D, "Someone@Else.Test")
    assert catchall() == b"Someone@else.test"   # remote: case kept
    vadmin(t, "catchall", D, "box")                # a local mailbox name
    assert catchall() == b"box@" + D.encode()
    vadmin(t, "catchall", D, "sales")              # a local alias
    assert catchall() == b"sales@" + D.encode()
    info = json.loads(vadmin(t, "dominfo", D, "--json").out)
    assert info["catchall"] == "sales@" + D
    before = state(t)
    refused(t, "catchall", D, "nosuch", want="does not exist")
    refused(t, "catchall", D, "nosuch@" + D, want="does not exist")
    refused(t, "catchall", "missing.test", "bounce", want="does not exist")
    refused(t, "catchall", D, "bad/x", want="invalid")
    refused(t, "catchall", D, code=2, want="missing argument")
    assert_same(before, state(t))
    vadmin(t, "catchall", D, "bounce")
    assert catchall() == b"bounce"
    check_ok(t)


def test_catchall_through_an_alias_domain_is_the_same_domain(t):
    """A catch-all to a missing name spelled with one of the domain's
    alias domains would catch itself too (vdeliver resolves both to the
    real domain, and bounces): refused as the plain spelling is, nothing
    changed; an existing name there is fine"""
    fast_root(t)
    add_domain(t)
    add_user(t, "box@" + D)
    vadmin(t, "aliasdomain", "add", "alias.test", D)
    before = state(t)
    refused(t, "catchall", D, "nosuch@alias.test", want="does not exist")
    assert_same(before, state(t))
    vadmin(t, "catchall", D, "box@alias.test")
    check_ok(t)


def test_catchall_never_names_a_missing_local_address(t):
    # catchall refuses a local DEST that does not exist ("it would catch
    # itself"); deleting that mailbox or alias afterwards must not make
    # the same state: refuse, or stop pointing the catch-all at it
    fast_root(t)
    add_domain(t)
    add_user(t, "box@" + D)
    add_user(t, "other@" + D)
    vadmin(t, "alias", "add", "sales@" + D, "other")
    for target, delete in (("box", ("deluser", "box@" + D)),
                           ("sales", ("alias", "del", "sales@" + D))):
        vadmin(t, "catchall", D, target)
        p = vadmin(t, *delete, check=None)
        assert p.returncode in (0, 1), (delete, p.returncode, p.err)
        if p.returncode == 1:
            err_line(p, "vadmin", "catch")
            continue
        catch = delivery(t)[b"*"].decode()
        assert catch != f"{target}@{D}", (
            f"after '{' '.join(delete)}' the catch-all still sends mail for "
            f"unknown users to the missing {target}@{D}")
        vadmin(t, "catchall", D, "bounce")
    check_ok(t)


# ---------------------------------------------------------------- aliasdomain

def test_aliasdomain(t):
    fast_root(t)
    add_domain(t, "real.test")
    add_domain(t, "other.test")
    add_user(t, "u@real.test")
    vadmin(t, "aliasdomain", "add", "Alias.TEST", "real.test")
    a = assign(t)
    assert a["alias.test"] == ("real.test", "domains/real.test")
    assert a["real.test"] == ("real.test", "domains/real.test")
    assert "alias.test" in rcpthosts(t)
    assert not [n for n in os.listdir(t.path("control", "domains"))
                if n.startswith("alias.test")]
    assert "alias.test (alias of real.test)" in listdomains(t)
    info = json.loads(vadmin(t, "dominfo", "real.test", "--json").out)
    assert info["alias_domains"] == ["alias.test"]
    ainfo = json.loads(vadmin(t, "dominfo", "alias.test", "--json").out)
    assert ainfo["alias_of"] == "real.test"
    # the users of the real domain are reachable through the alias
    assert userinfo(t, "u@alias.test")["address"] == "u@real.test"
    assert listusers(t, "alias.test") == listusers(t, "real.test")
    before = state(t)
    refused(t, "aliasdomain", "add", "alias.test", "real.test",
            want="already exists")
    refused(t, "aliasdomain", "add", "other.test", "real.test",
            want="already exists")
    refused(t, "aliasdomain", "add", "x.test", "missing.test",
            want="does not exist")
    refused(t, "aliasdomain", "add", "x.test", "alias.test",
            want="alias of real.test")
    refused(t, "aliasdomain", "add", "real.test", "real.test",
            want="itself")
    refused(t, "aliasdomain", "add", "bad/x", "real.test",
            want="invalid domain")
    refused(t, "aliasdomain", "del", "real.test", want="real domain")
    refused(t, "aliasdomain", "del", "missing.test", want="does not exist")
    refused(t, "aliasdomain", "add", "x.test", code=2)
    refused(t, "aliasdomain", "list", code=2)
    refused(t, "adduser", "v@alias.test", input="pw-Secret\n",
            want="alias of real.test")
    refused(t, "alias", "add", "info@alias.test", "u@real.test",
            want="alias of real.test")
    refused(t, "catchall", "alias.test", "delete",
            want="alias of real.test")
    assert_same(before, state(t))
    vadmin(t, "aliasdomain", "del", "ALIAS.test")
    assert set(assign(t)) == {"real.test", "other.test"}
    assert set(rcpthosts(t)) == {"real.test", "other.test"}
    assert listusers(t, "real.test") == ["postmaster@real.test",
                                         "u@real.test"]
    refused(t, "aliasdomain", "del", "alias.test", want="does not exist")
    check_ok(t)


# ---------------------------------------------------------------- moduser

def test_moduser(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D)

    def flags():
        a, b = urec(t, "u")[3], prec(t, "u")[2]
        assert a == b, f"delivery CDB says {a}, passwd CDB says {b}"
        return int(a)

    assert flags() == 0
    vadmin(t, "moduser", "u@" + D, "--disable", "pop")
    assert flags() == 1
    info = userinfo(t, "u@" + D)
    assert (info["pop"], info["smtp"], info["delivery"]) == (False, True,
                                                              True)
    vadmin(t, "moduser", "u@" + D, "--disable", "smtp")
    assert flags() == 3
    vadmin(t, "moduser", "u@" + D, "--enable", "pop")
    assert flags() == 2
    vadmin(t, "moduser", "u@" + D, "--disable", "delivery")
    assert flags() == 6
    assert "delivery: disabled" in vadmin(t, "userinfo", "u@" + D).out
    vadmin(t, "moduser", "u@" + D, "--enable")
    assert flags() == 0
    vadmin(t, "moduser", "u@" + D, "--disable")           # no service: all
    assert flags() == 7
    lu = json.loads(vadmin(t, "listusers", D, "--json").out)
    mine = [x for x in lu if x["address"] == "u@" + D][0]
    assert (mine["pop"], mine["smtp"], mine["delivery"]) == (False, False,
                                                              False)
    before = state(t)
    # no flag: show what is on (and change nothing)
    p = vadmin(t, "moduser", "u@" + D)
    assert p.out.splitlines() == ["pop: disabled", "smtp: disabled",
                                  "delivery: disabled"], p.out
    assert json.loads(vadmin(t, "moduser", "u@" + D, "--json").out) == {
        "pop": False, "smtp": False, "delivery": False}
    refused(t, "moduser", "u@" + D, "pop", code=2,
            want="--disable or --enable")
    refused(t, "moduser", "u@" + D, "--disable", "--enable", code=2)
    refused(t, "moduser", "u@" + D, "--disable", "imap", code=2,
            want="unknown service")
    refused(t, "moduser", "nobody@" + D, "--disable", want="does not exist")
    assert_same(before, state(t))
    vadmin(t, "moduser", "u@" + D, "--enable", "pop3")
    assert flags() == 6
    check_ok(t)


# ---------------------------------------------------------------- show

def test_userinfo_text_and_json(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "u@" + D, "pw-Secret", "--quota", "1M", "--name", "U Ser")
    put(t, os.path.join(maildir(t, "u"), "new", "1.M1P1.host"), "z" * 300)
    out = vadmin(t, "userinfo", "u@" + D).out
    for line in (f"address: u@{D}", "name: U Ser",
                 f"maildir: {maildir(t, 'u')}", "quota: 1048576S",
                 "usage: 300 bytes, 1 messages", "pop: enabled",
                 "smtp: enabled", "delivery: enabled", "forward: none",
                 "password: sha512crypt", "cram-md5: yes"):
        assert line in out.splitlines(), f"{line!r} not in\n{out}"
    assert re.search(r"^created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", out,
                     re.M), out
    for args in (("userinfo", "u@" + D, "--json"),
                 ("--json", "userinfo", "u@" + D)):
        j = json.loads(vadmin(t, *args).out)
        assert j["address"] == "u@" + D and j["domain"] == D
        assert j["name"] == "U Ser" and j["maildir"] == maildir(t, "u")
        assert j["quota"] == "1048576S" and j["quota_bytes"] == 1048576
        assert j["quota_messages"] == 0
        assert j["usage_bytes"] == 300 and j["usage_messages"] == 1
        assert j["pop"] is True and j["forward"] is None
        assert j["password"] == "sha512crypt" and j["cram_md5"] is True
    refused(t, "userinfo", "nobody@" + D, want="does not exist")
    refused(t, "userinfo", "u@missing.test", want="does not exist")
    refused(t, "userinfo", code=2, want="missing argument")


def test_userinfo_name_cannot_forge_lines(t):
    # the text output is one "key: value" a line; a NAME with a line break
    # must be refused or shown escaped, never add a line of its own
    fast_root(t)
    add_domain(t)
    p = vadmin(t, "adduser", "n@" + D, "pw-Secret", "--name",
               "Evil\npop: disabled", check=None)
    if p.returncode == 1:
        err_line(p)
        assert "n@" + D not in listusers(t)
        return
    assert p.returncode == 0, p.err
    out = vadmin(t, "userinfo", "n@" + D).out.splitlines()
    keys = [line.split(":", 1)[0] for line in out]
    assert keys == ["address", "name", "maildir", "quota", "usage", "pop",
                    "smtp", "delivery", "forward", "password", "cram-md5",
                    "created"], out
    assert "pop: enabled" in out
    assert userinfo(t, "n@" + D)["name"] == "Evil\npop: disabled"


def test_dominfo_listusers_listdomains(t):
    fast_root(t)
    add_domain(t, "b.test", "pw-Secret", "--quota", "2M")
    add_domain(t, "a.test")
    vadmin(t, "aliasdomain", "add", "c.test", "b.test")
    for u in ("zed", "amy", "mid"):
        add_user(t, f"{u}@b.test")
    vadmin(t, "alias", "add", "list@b.test", "amy", "zed")
    vadmin(t, "catchall", "b.test", "delete")
    out = vadmin(t, "dominfo", "b.test").out.splitlines()
    for line in ("domain: b.test", f"directory: {t.path('domains', 'b.test')}",
                 "users: 4", "aliases: 1", "catchall: delete",
                 "default quota: 2097152S", "alias domains: c.test"):
        assert line in out, f"{line!r} not in {out}"
    j = json.loads(vadmin(t, "dominfo", "b.test", "--json").out)
    assert j["domain"] == "b.test" and j["alias_of"] is None
    assert j["users"] == 4 and j["aliases"] == 1
    assert j["catchall"] == "delete" and j["default_quota"] == "2097152S"
    assert j["alias_domains"] == ["c.test"]
    assert j["directory"] == t.path("domains", "b.test")
    every = json.loads(vadmin(t, "dominfo", "--json").out)
    assert [x["domain"] for x in every] == ["a.test", "b.test", "c.test"]
    assert every[2]["alias_of"] == "b.test"
    assert "alias of: b.test" in vadmin(t, "dominfo", "c.test").out
    txt = vadmin(t, "dominfo").out
    assert txt.count("domain: ") == 3
    assert listusers(t, "b.test") == ["amy@b.test", "mid@b.test",
                                      "postmaster@b.test", "zed@b.test"]
    lu = json.loads(vadmin(t, "listusers", "b.test", "--json").out)
    assert [x["address"] for x in lu] == listusers(t, "b.test")
    assert lu[0]["quota"] == "2097152S" and lu[0]["pop"] is True
    assert lu[2]["name"] == "Postmaster"
    assert listdomains(t) == ["a.test", "b.test", "c.test (alias of b.test)"]
    ld = json.loads(vadmin(t, "listdomains", "--json").out)
    assert ld == [{"domain": "a.test", "alias_of": None},
                  {"domain": "b.test", "alias_of": None},
                  {"domain": "c.test", "alias_of": "b.test"}]
    refused(t, "dominfo", "missing.test", want="does not exist")
    refused(t, "listusers", "missing.test", want="does not exist")
    refused(t, "listusers", code=2, want="missing argument")
    refused(t, "listdomains", "extra", code=2, want="too many")


def test_listings_of_an_empty_root(t):
    fast_root(t)
    assert vadmin(t, "listdomains").out == ""
    assert json.loads(vadmin(t, "listdomains", "--json").out) == []
    assert json.loads(vadmin(t, "dominfo", "--json").out) == []


# ---------------------------------------------------------------- rebuild

def populated(t):
    fast_root(t)
    add_domain(t, "a.test", "pw-Secret", "--quota", "3M")
    add_domain(t, "b.test")
    for u in ("one", "two", "three"):
        add_user(t, f"{u}@a.test")
    add_user(t, "solo@b.test")
    vadmin(t, "alias", "add", "all@a.test", "one", "two", "x@remote.test")
    vadmin(t, "forward", "three@a.test", "solo@b.test", "--keep")
    vadmin(t, "catchall", "a.test", "one")
    vadmin(t, "aliasdomain", "add", "alias-a.test", "a.test")
    vadmin(t, "moduser", "two@a.test", "--disable", "smtp")


def test_rebuild_restores_identical_cdbs(t):
    populated(t)
    saved = all_cdbs(t)
    modes = {k: os.stat(t.path(k)).st_mode for k in saved}
    assert {"control/assign.cdb", "control/rcpthosts.cdb",
            "control/domains/a.test.cdb", "control/passwd/a.test.cdb",
            "control/domains/b.test.cdb",
            "control/passwd/b.test.cdb"} == set(saved)
    for rel in ("control/domains/a.test.cdb", "control/passwd/a.test.cdb",
                "control/assign.cdb", "control/rcpthosts.cdb"):
        os.unlink(t.path(rel))
    p = vadmin(t, "check", check=1)
    assert "problem" in p.out
    vadmin(t, "rebuild")
    assert all_cdbs(t) == saved
    assert {k: os.stat(t.path(k)).st_mode for k in saved} == modes
    # a rebuild with nothing missing changes nothing either
    vadmin(t, "rebuild")
    assert all_cdbs(t) == saved
    check_ok(t)
    refused(t, "rebuild", "extra", code=2, want="too many")


def test_cdb_reader_agrees_with_tinycdb(t):
    # the helpers' reader against the cdb command of Debian's tinycdb
    import shutil
    import subprocess
    populated(t)
    if not shutil.which("cdb"):
        raise AssertionError("the cdb command (Debian package tinycdb) is "
                             "missing: apt-get install -y tinycdb")
    path = cdb_path(t, "delivery", "a.test")
    dump = subprocess.run(["cdb", "-d", path], capture_output=True,
                          check=True).stdout
    want = b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v)
                    for k, v in helpers.cdb_records(path)) + b"\n"
    assert dump == want
    q = subprocess.run(["cdb", "-q", path, "uone"], capture_output=True,
                       check=True).stdout
    assert q == delivery(t, "a.test")[b"uone"]
    assert q == b"domains/a.test/one/Maildir\x003145728\x000\x000"


def test_big_domain_tables_are_complete(t):
    # a domain big enough for its tables to be split into several files:
    # together they hold every user, check agrees, rebuild reproduces them,
    # and deldomain removes them all
    from vadmin_util import shards, table_files
    fast_root(t)
    add_domain(t)
    ready = sha512_hash("Big-Pw", "b1gSalt")
    n = 2100
    vadmin(t, "import", write_lines(t, "big.txt", [
        f"big{i:04d}@{D} {ready}" for i in range(n)]))
    want = {f"big{i:04d}" for i in range(n)} | {"postmaster"}
    assert {k.decode() for k in passwd(t)} == want
    assert {k[1:].decode() for k in delivery(t) if k[:1] == b"u"} == want
    files = table_files(t, "domains", D) + table_files(t, "passwd", D)
    assert all(os.path.exists(f) for f in files), files
    if shards(t, D) > 1:
        assert not os.path.exists(t.path("control", "domains", D + ".cdb"))
    # one more user lands in the right file, and the others stay
    add_user(t, "late@" + D, "Late-Pw")
    assert hash_is_of(prec(t, "late")[0], "Late-Pw")
    assert len(passwd(t)) == n + 2
    vadmin(t, "alias", "add", "big-alias@" + D, "big0001")
    assert delivery(t)[b"abig-alias"] == b"big0001@" + D.encode()
    assert all(v == b"bounce" for k, v in
               ((k, v) for f in table_files(t, "domains", D)
                for k, v in helpers.cdb_records(f)) if k == b"*")
    check_ok(t)
    saved = all_cdbs(t)
    for f in table_files(t, "passwd", D)[:1]:
        os.unlink(f)
    check_finds(t, "problem")
    vadmin(t, "rebuild")
    assert all_cdbs(t) == saved
    vadmin(t, "deldomain", D)
    left = [x for x in all_cdbs(t) if os.path.basename(x).startswith(D)]
    assert left == [], left
    check_ok(t)


# ---------------------------------------------------------------- check

def test_check_fresh_root(t):
    t.init()
    p = check_ok(t)
    assert "ok: the files match the database" in p.out


def test_check_populated_root(t):
    populated(t)
    p = check_ok(t)
    assert "ok: the files match the database" in p.out
    refused(t, "check", "--bogus", code=2, want="unknown option")
    refused(t, "check", "extra", code=2, want="too many")


def check_finds(t, *want):
    p = vadmin(t, "check", check=1)
    for w in want:
        assert w in p.out, f"{w!r} not in check output:\n{p.out}"
    assert "problem:" in p.out and "left" in p.out
    return p


def repair_fixes(t, *want):
    p = vadmin(t, "check", "--repair", check=0)
    for w in want:
        assert w in p.out, f"{w!r} not in repair output:\n{p.out}"
    assert "repaired:" in p.out
    check_ok(t)
    return p


def test_check_maildir_mode(t):
    populated(t)
    cur = os.path.join(maildir(t, "one", "a.test"), "cur")
    os.chmod(cur, 0o755)
    check_finds(t, cur, "0755")
    repair_fixes(t, cur)
    assert stat.S_IMODE(os.stat(cur).st_mode) == 0o700
    # the user and domain directories too
    udir = t.path("domains", "a.test", "two")
    os.chmod(udir, 0o750)
    check_finds(t, udir)
    repair_fixes(t)
    assert stat.S_IMODE(os.stat(udir).st_mode) == 0o700
    # and the private directories of the root
    os.chmod(t.path("control", "passwd"), 0o755)
    check_finds(t, t.path("control", "passwd"))
    repair_fixes(t)
    assert stat.S_IMODE(os.stat(t.path("control", "passwd")).st_mode) == \
        0o700


def test_check_x_bit_on_a_message(t):
    populated(t)
    msg = os.path.join(maildir(t, "one", "a.test"), "cur", "1.M1P1.host:2,")
    put(t, msg, "Subject: x\n\nx\n", 0o700)
    check_finds(t, msg, "x bit")
    repair_fixes(t, msg)
    assert stat.S_IMODE(os.stat(msg).st_mode) == 0o600
    grp = os.path.join(maildir(t, "two", "a.test"), "new", "2.M2P2.host")
    put(t, grp, "Subject: y\n\ny\n", 0o640)
    check_finds(t, grp)
    repair_fixes(t, grp)
    assert stat.S_IMODE(os.stat(grp).st_mode) == 0o600


def test_check_missing_maildir_subdirectory(t):
    populated(t)
    new = os.path.join(maildir(t, "solo", "b.test"), "new")
    os.rmdir(new)
    check_finds(t, "not a complete Maildir")
    repair_fixes(t)
    assert_private_dir(t, new)
    # a missing maildirsize of a user with a quota
    msz = os.path.join(maildir(t, "one", "a.test"), "maildirsize")
    os.unlink(msz)
    check_finds(t, msz)
    repair_fixes(t)
    assert read(msz).splitlines()[0] == "3145728S"


def test_check_missing_mailbox_directory(t):
    # a whole mailbox removed by hand: reported, and --repair makes it anew
    # (with its maildirsize, since the user has a quota)
    import shutil
    populated(t)
    shutil.rmtree(t.path("domains", "a.test", "two"))
    check_finds(t, "not a complete Maildir")
    repair_fixes(t)
    assert_maildir(t, "two", "a.test")
    msz = os.path.join(maildir(t, "two", "a.test"), "maildirsize")
    assert read(msz).splitlines()[0] == "3145728S"


def test_check_tampered_cdbs(t):
    populated(t)
    saved = all_cdbs(t)
    # a delivery table with other content
    path = cdb_path(t, "delivery", "a.test")
    recs = helpers.cdb_records(path)
    forged = [(k, v) for k, v in recs if k != b"utwo"] + \
        [(b"aevil", b"attacker@remote.test")]
    tmp = path + ".forged"
    helpers.cdb_write(tmp, forged)
    os.chmod(tmp, 0o600)
    give(t, tmp)
    os.rename(tmp, path)
    check_finds(t, "a.test do not match")
    repair_fixes(t)
    assert all_cdbs(t) == saved
    # a login table whose hash was swapped: same keys, other value
    path = cdb_path(t, "passwd", "a.test")
    recs = [(k, (sha512_hash("intruder").encode() + v[v.index(b"\0"):])
             if k == b"one" else v) for k, v in helpers.cdb_records(path)]
    helpers.cdb_write(path, recs)
    check_finds(t, "a.test do not match")
    repair_fixes(t)
    assert all_cdbs(t) == saved
    # assign.cdb with one more domain, rcpthosts.cdb truncated
    path = cdb_path(t, "assign")
    helpers.cdb_write(path, helpers.cdb_records(path) +
                      [(b"evil.test", b"a.test\0domains/a.test")])
    with open(cdb_path(t, "rcpthosts"), "r+b") as f:
        f.truncate(100)
    check_finds(t, "assign.cdb does not match", "rcpthosts.cdb does not match")
    repair_fixes(t)
    assert all_cdbs(t) == saved
    # a table of no domain and a temporary file left by a crash
    stale = cdb_path(t, "delivery", "gone.test")
    helpers.cdb_write(stale, [(b"*", b"bounce")])
    tmpf = cdb_path(t, "passwd", "a.test") + ".tmp.123.456"
    put(t, tmpf, "half")
    check_finds(t, "gone.test.cdb belongs to no domain",
                "leftover temporary file")
    repair_fixes(t)
    assert not os.path.exists(stale) and not os.path.exists(tmpf)
    assert all_cdbs(t) == saved


def test_check_reports_symlinks(t):
    populated(t)
    link = os.path.join(maildir(t, "one", "a.test"), "cur", "evil")
    os.symlink("/etc/passwd", link)
    check_finds(t, link, "symbolic link")
    # --repair leaves it (it is not safe to guess) and says so
    p = vadmin(t, "check", "--repair", check=1)
    assert "problem:" in p.out and link in p.out
    assert os.path.islink(link)
    os.unlink(link)
    # a symlink in place of a whole Maildir
    md = maildir(t, "solo", "b.test")
    os.rename(md, md + ".real")
    os.symlink(md + ".real", md)
    check_finds(t, "symbolic link")
    os.unlink(md)
    os.rename(md + ".real", md)
    check_ok(t)


def test_check_warns_about_unknown_directories(t):
    populated(t)
    stray = t.path("domains", "a.test", "stray")
    os.mkdir(stray, 0o700)
    give(t, stray)
    p = check_ok(t)
    assert f"warn: {stray} belongs to no user" in p.out, p.out
    assert os.path.isdir(stray)          # never deleted: it may hold mail
    vadmin(t, "check", "--repair")
    assert os.path.isdir(stray)


# ---------------------------------------------------------------- command line

def test_help(t):
    t.init()
    for args in (("--help",), ("-h",), ("adduser", "--help")):
        p = t.run("vadmin", *args, check=0)
        assert p.out.startswith("usage: vadmin"), p.out
        assert "adddomain" in p.out and "check [--repair]" in p.out


def test_usage_errors(t):
    fast_root(t)
    add_domain(t)
    before = state(t)
    for args, why in ((("frobnicate",), "unknown command 'frobnicate'"),
                      ((), "no command given"),
                      (("--bogus",), "--bogus"),
                      (("listdomains", "--bogus"), "unknown option --bogus"),
                      (("adduser", "u@" + D, "pw", "--keep"),
                       "unknown option --keep"),
                      (("deluser", "a@" + D, "b@" + D), "too many")):
        p = t.run("vadmin", *args, check=2)
        line = err_line(p, "vadmin", why, usage=True)
        assert p.err.count("\n") > 3, "no usage after the error line"
        assert "usage: vadmin" in p.err and line != ""
        assert p.out == ""
    assert_same(before, state(t))


def test_root_option_and_environment(t):
    fast_root(t)
    add_domain(t)
    want = D + "\n"
    # --root after the subcommand (what t.run does), before it, as --root=
    assert t.run("vadmin", "listdomains", check=0).out == want
    assert t.run("vadmin", "--root", t.root, "listdomains", root=False,
                 check=0).out == want
    assert t.run("vadmin", f"--root={t.root}", "listdomains", root=False,
                 check=0).out == want
    # the environment, and the flag winning over it
    assert t.run("vadmin", "listdomains", root=False, check=0,
                 env={"FACTEUR_ROOT": t.root}).out == want
    other = os.path.join(t.tmp, "not-a-root")
    os.mkdir(other)
    assert t.run("vadmin", "listdomains", check=0,
                 env={"FACTEUR_ROOT": other}).out == want
    p = t.run("vadmin", "listdomains", root=False, check=111,
              env={"FACTEUR_ROOT": other})
    err_line(p, "vadmin", "not a Facteur root")
    # a change made through FACTEUR_ROOT lands in that root
    t.run("vadmin", "adduser", "env@" + D, "pw-Secret", root=False, check=0,
          env={"FACTEUR_ROOT": t.root})
    assert "env@" + D in listusers(t)
    p = t.run("vadmin", "listdomains", "--root", root=False, check=2)
    err_line(p, "vadmin", "--root", usage=True)


def test_log_records_changes(t):
    fast_root(t)
    add_domain(t)
    add_user(t, "logged@" + D, "Log-Secret-77")
    log = read(t.path("log", "current"))
    assert "adduser logged@" + D in log, log
    assert "Log-Secret-77" not in log
