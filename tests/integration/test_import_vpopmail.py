"""vadmin import-vpopmail: a vpopmail tree built from vpopmail's documented
layout (vpoptree.py) with the awkward cases, imported into a root, then
used through the real programs: pop3d logins with the old passwords,
vdeliver routing of aliases, forwards, catch-alls and alias domains.
"""
import json
import os
import re
import subprocess

from vadmin_util import check_ok, fast_root, mailuser, userinfo, vadmin
from vpoptree import OLD_HOME, Tree, crypt_hash, message

E = "example.test"
H = "hashed.test"
X = "del.test"
PW = {"alice": "alice-Old-1", "bob": "bob-Old-2", "carol": "carol-Clear-3",
      "dave": "dave-Old-4", "erin": "erin-Old-5", "frank": "frank-Old-6",
      "ivan": "ivan-Old-7", "postmaster": "pm-Old-8", "xavier": "xav-Old-9"}


def build(t):
    """The tree of every awkward case; returns (tree, assign, valias)."""
    tr = Tree(os.path.join(t.tmp, "old"))
    e = tr.domain(E, catchall=f"{OLD_HOME}/domains/{E}/alice")
    h = tr.domain(H, bucket="0")
    x = tr.domain(X, catchall="delete")
    md5 = lambda u: crypt_hash(PW[u], "$1$", u[:8].ljust(8, "s"))
    sha = lambda u: crypt_hash(PW[u], "$6$", u + "Salt")
    tr.user(e, "postmaster", md5("postmaster"), clear=PW["postmaster"])
    # MD5-crypt with vpopmail's clear-text field; no quota
    tr.user(e, "alice", md5("alice"), clear=PW["alice"],
            msgs=[message(1), message(2)], cur=[message(3)])
    # SHA-512-crypt, no eighth field; 2G written as bytes, its maildirsize
    tr.user(e, "bob", sha("bob"), quota="2147483648", msgs=[message(4)],
            maildirsize=f"2147483648S\n{len(message(4))} 1\n")
    # clear text only; a quota in vpopmail's NS,MC form and a maildirsize
    # whose limits are stale (recounted)
    tr.user(e, "carol", "", clear=PW["carol"], quota="52428800S,1000C",
            msgs=[message(5)], maildirsize="10485760S\n0 0\n")
    # a hashed user directory; NO_POP and NO_IMAP
    tr.user(e, "dave", md5("dave"), gid=0x02 | 0x08, sub="0",
            msgs=[message(6)], quota="5MB")
    # forwards with a copy kept
    ed = tr.user(e, "erin", md5("erin"), msgs=[message(7)])
    tr.write(ed, ".qmail", "&erin@elsewhere.example\n./Maildir/\n")
    # a program line and a forward without a copy
    fd = tr.user(e, "frank", sha("frank"))
    tr.write(fd, ".qmail", "|/usr/bin/autorespond 86400 3 msg .\n"
             "Frank@Remote.example\n")
    # DES and no clear text: login off
    tr.user(e, "gail", "abJnggxhB/yWI", msgs=[message(8)])
    # bad lines; a name twice (the first line wins: alice logs in with
    # her first password)
    tr.vpasswd_line(e, "short:x:1")
    tr.vpasswd_line(e, f"Alice:{md5('bob')}:1:0:dup:{OLD_HOME}/domains/{E}"
                    "/alice:NOQUOTA")
    tr.user(e, "evil", md5("alice"),
            dirfield=f"{OLD_HOME}/domains/{E}/../../../../etc",
            make_dir=False)
    tr.user(e, "outside", md5("alice"), dirfield="/etc/evil", make_dir=False)
    # a Maildir that is a symbolic link to mail outside the tree
    sd = tr.user(e, "sym", md5("alice"), make_dir=False)
    outside = os.path.join(t.tmp, "outside-maildir")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(outside, d))
    tr.write(os.path.join(outside, "new"), "1.2.secret", b"secret\n")
    os.makedirs(sd)
    os.symlink(outside, os.path.join(sd, "Maildir"))
    # aliases: two destinations, one a Maildir path; '.' written ':'
    tr.qmail(e, "info", f"&alice@{E}\n{OLD_HOME}/domains/{E}/0/dave/Maildir/\n")
    tr.qmail(e, "first.last", f"bob@{E}\n")
    tr.qmail(e, "prog", "|/usr/bin/ezmlm-send /home/vpopmail/lists/x\n")
    tr.qmail(e, "list-default", "|/usr/bin/ezmlm-manage /x\n")
    tr.write(os.path.join(tr.home, e), ".no-user.msg", "no such user\n")
    # the hashed domain, its alias domains (both assign styles), valias
    tr.user(h, "ivan", sha("ivan"), clear=PW["ivan"], msgs=[message(9)])
    tr.alias_domain("alias.test", E, e)
    tr.alias_domain("old-alias.test", H, h, old_style=True)
    tr.alias_domain("alias.test", H, h)     # twice: the first is kept
    tr.valias += [f"vtest@{H} -> &ivan@{H}", f"vtest@{H} -> alice@{E}",
                  "x@notthere.test -> a@b.test"]
    tr.user(x, "xavier", md5("xavier"), msgs=[message(10)])
    assign, valias = tr.finish()
    if os.geteuid() == 0:
        pw = mailuser(t)
        # del.test stays another user's, readable: its files are copied
        tr.give(pw.pw_uid, pw.pw_gid, except_rel=(x,))
    return tr, assign, valias


def pop3(t, user, pw, cmds=("STAT",)):
    """One pop3d --inetd session: USER/PASS and CMDS; the reply lines."""
    e = {k: v for k, v in os.environ.items() if k != "TCPREMOTEIP"}
    data = f"USER {user}\r\nPASS {pw}\r\n" + "".join(
        c + "\r\n" for c in cmds) + "QUIT\r\n"
    p = subprocess.run([t.bin("pop3d"), "--root", t.root, "--inetd"],
                       input=data.encode(), capture_output=True, env=e,
                       timeout=60)
    err = p.stderr.decode(errors="replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return p.stdout.decode(errors="replace").split("\r\n")


def logged_in(t, user, pw):
    lines = pop3(t, user, pw)
    return lines[2].startswith("+OK") and lines[3].startswith("+OK")


def imported(t):
    tr, assign, valias = build(t)
    before = tr.snapshot()
    p = vadmin(t, "import-vpopmail", tr.home, "--assign", assign,
               "--valias", valias)
    return tr, before, p


def new_count(t, local, domain):
    return len(os.listdir(t.path("domains", domain, local, "Maildir",
                                 "new")))


def deliver(t, rcpt, want=0):
    p = t.run("vdeliver", "-f", "sender@remote.example", rcpt,
              input=message(99, rcpt))
    assert p.returncode == want, (rcpt, p.returncode, p.err)
    return p


def test_import_vpopmail_logins_mail_and_quotas(t):
    fast_root(t)
    tr, before, p = imported(t)
    out = p.out
    # the summary, and nothing changed in the tree
    assert re.search(r"imported 3 domains, 2 alias domains, 11 users, "
                     r"\d+ aliases, 2 forwards, 2 catch-alls, 10 messages",
                     out), out
    assert tr.snapshot() == before
    # every user logs in with the password of the old tree
    for u in ("alice", "bob", "carol", "erin", "frank", "postmaster"):
        assert logged_in(t, f"{u}@{E}", PW[u]), u
        assert not logged_in(t, f"{u}@{E}", PW[u] + "x"), u
    assert logged_in(t, f"ivan@{H}", PW["ivan"])
    assert logged_in(t, f"ivan@old-alias.test", PW["ivan"])
    assert logged_in(t, f"xavier@{X}", PW["xavier"])
    assert not logged_in(t, f"gail@{E}", "anything")
    lines = pop3(t, f"dave@{E}", PW["dave"])
    assert "disabled" in lines[2], lines
    # hashes kept as they were; the clear-text-only user got a new hash
    info = userinfo(t, f"alice@{E}")
    assert info["password"] == "md5crypt" and info["password_weak"], info
    assert info["cram_md5"] is True, info
    assert "password: md5crypt (weak: " in vadmin(t, "userinfo",
                                                  f"alice@{E}").out
    assert userinfo(t, f"bob@{E}")["password"] == "sha512crypt"
    carol = userinfo(t, f"carol@{E}")
    assert carol["password"] == "sha512crypt", carol
    # messages in place and retrievable, the old names kept
    lines = pop3(t, f"alice@{E}", PW["alice"], ("STAT", "RETR 1"))
    assert lines[3].startswith("+OK 3 "), lines
    assert "Subject: old message" in "\n".join(lines), lines
    cur = os.listdir(t.path("domains", E, "alice", "Maildir", "cur"))
    new = os.listdir(t.path("domains", E, "alice", "Maildir", "new"))
    assert len(cur) + len(new) == 3, (cur, new)
    # quotas as in the old tree; maildirsize kept or recounted
    assert info["quota"] == "none"
    bob = userinfo(t, f"bob@{E}")
    assert bob["quota_bytes"] == 2147483648, bob
    with open(t.path("domains", E, "bob", "Maildir", "maildirsize")) as f:
        assert f.read() == f"2147483648S\n{len(message(4))} 1\n"
    assert (carol["quota_bytes"], carol["quota_messages"]) == \
        (52428800, 1000), carol
    with open(t.path("domains", E, "carol", "Maildir", "maildirsize")) as f:
        lines = f.read().splitlines()
    assert lines[0] == "52428800S,1000C" and lines[1].split()[1] == "1", lines
    dave = userinfo(t, f"dave@{E}")
    assert dave["quota_bytes"] == 5 << 20 and dave["pop"] is False, dave
    # the mail user's files are hard links (no copy, the source keeps its
    # name); another owner's (del.test, when run as root) are copies
    want = "(9 files linked, 1 copied)" if os.geteuid() == 0 else \
        "(10 files linked, 0 copied)"
    assert want in out, out
    src = os.path.join(tr.home, "domains", E, "alice", "Maildir", "cur")
    dst = t.path("domains", E, "alice", "Maildir", "cur")
    name = os.listdir(src)[0]
    assert os.stat(os.path.join(src, name)).st_ino == \
        os.stat(os.path.join(dst, name)).st_ino
    # (its login moved it from new/ to cur/)
    xcur = t.path("domains", X, "xavier", "Maildir", "cur")
    st = os.stat(os.path.join(xcur, os.listdir(xcur)[0]))
    assert st.st_mode & 0o7777 == 0o600 and st.st_uid == mailuser(t).pw_uid \
        if os.geteuid() == 0 else st.st_mode & 0o7777 == 0o600, oct(
            st.st_mode)
    # modes: directories 0700, files 0600, as vadmin check wants
    check_ok(t)
    # the POP3 sessions moved files in the new Maildirs, not in the tree
    assert tr.snapshot() == before


def routes(t, rcpt, *boxes):
    """Deliver to RCPT with vdeliver: each of BOXES (local, domain) gets
    exactly one more message in new/."""
    before = [new_count(t, *b) for b in boxes]
    deliver(t, rcpt)
    assert [new_count(t, *b) for b in boxes] == [n + 1 for n in before], \
        (rcpt, boxes)


def test_import_vpopmail_routes_as_before(t):
    fast_root(t)
    imported(t)
    # .qmail-info: alice and dave's Maildir (written as a path)
    routes(t, f"info@{E}", ("alice", E), ("dave", E))
    # .qmail-first:last is first.last
    routes(t, f"first.last@{E}", ("bob", E))
    # the catch-all, a user's directory in vdelivermail's argument
    routes(t, f"nobody@{E}", ("alice", E))
    # bounce-no-mailbox: refused; delete: accepted, kept nowhere
    deliver(t, f"nobody@{H}", want=100)
    before = sum(len(fs) for _, _, fs in os.walk(t.path("domains", X)))
    deliver(t, f"nobody@{X}")
    assert sum(len(fs) for _, _, fs in os.walk(t.path("domains", X))) == \
        before
    # alias domains of both assign styles
    routes(t, "bob@alias.test", ("bob", E))
    routes(t, "ivan@old-alias.test", ("ivan", H))
    # the valias export
    routes(t, f"vtest@{H}", ("ivan", H), ("alice", E))
    # a user's own .qmail: forward and copy kept; a forward alone
    erin, frank = userinfo(t, f"erin@{E}"), userinfo(t, f"frank@{E}")
    assert (erin["forward"], erin["forward_keep"]) == (
        "erin@elsewhere.example", True), erin
    assert (frank["forward"], frank["forward_keep"]) == (
        "Frank@remote.example", False), frank
    routes(t, f"erin@{E}", ("erin", E))
    # NO_POP is not BOUNCE_MAIL: dave still gets mail
    routes(t, f"dave@{E}", ("dave", E))


def test_import_vpopmail_reports_what_it_cannot_carry(t):
    fast_root(t)
    tr, before, p = imported(t)
    said = [ln for ln in p.out.splitlines() if ln.startswith("not carried:")]
    want = [
        r"\.qmail-prog:1: program '/usr/bin/ezmlm-send",
        r"/erin/.qmail|frank/\.qmail:1: program '/usr/bin/autorespond",
        r"vpasswd:\d+: the line has too few fields",
        r"evil@example\.test: directory .* \(a path traversal\); user not "
        r"imported",
        r"outside@example\.test: directory '/etc/evil' is outside",
        r"sym@example\.test: the directory or its Maildir is a symbolic "
        r"link",
        r"gail@example\.test: password: a DES-crypt hash cannot be kept",
        r"dave@example\.test: flag NO_IMAP has no meaning here",
        r"\.qmail-list-default: extension default",
        r"x@notthere\.test|notthere\.test is not imported",
        r"\.no-user\.msg: vpopmail's file is not carried",
        r"assign:\d+: alias\.test twice; the first line is kept",
        r"vpasswd:\d+: user alice@example\.test appears twice; the first "
        r"\(line 2\) is imported",
    ]
    for w in want:
        assert any(re.search(w, ln) for ln in said), (w, p.out)
    n = int(re.search(r"; (\d+) not carried", p.out).group(1))
    assert n == len(said), p.out
    # refused users are not there; the symlinked mail was not followed
    for u in ("evil", "outside", "short"):
        assert vadmin(t, "userinfo", f"{u}@{E}", check=1)
    sym = t.path("domains", E, "sym", "Maildir", "new")
    assert os.listdir(sym) == []
    # (control/srssecret is the SRS key init makes, not the planted file)
    assert not any("secret" in f and f != "srssecret"
                   for _, _, fs in os.walk(t.root) for f in fs)
    assert tr.snapshot() == before
    # --json: the same report as one object
    vadmin(t, "deldomain", E)
    vadmin(t, "deldomain", H)
    vadmin(t, "deldomain", X)
    js = json.loads(vadmin(t, "import-vpopmail", tr.home, "--json",
                           "--assign", os.path.join(tr.top, "assign")).out)
    assert js["domains"] == 3 and js["users"] == 11, js
    assert any("ezmlm-send" in s for s in js["not_carried"]), js


def test_import_vpopmail_again_and_leftovers(t):
    fast_root(t)
    tr, before, p = imported(t)
    # a second import skips every domain hosted already, changes nothing
    p2 = vadmin(t, "import-vpopmail", tr.home)
    for d in (E, H, X):
        assert f"domain {d} is hosted here already; skipped" in p2.out
    assert "imported 0 domains" in p2.out, p2.out
    # a killed import's leftover (the marker) is replaced; somebody's
    # directory is never touched
    vadmin(t, "deldomain", H)
    vadmin(t, "deldomain", X)
    os.makedirs(t.path("domains", H, "junk"))
    with open(t.path("domains", H, ".vpopimport"), "w"):
        pass
    os.makedirs(t.path("domains", X, "keep"))
    # and the directory being born (made beside the name, then renamed)
    os.makedirs(t.path("domains", ".vpopimport.7", "half"))
    if os.geteuid() == 0:
        pw = mailuser(t)
        for p_ in (t.path("domains", H), t.path("domains", H, "junk"),
                   t.path("domains", H, ".vpopimport"),
                   t.path("domains", X), t.path("domains", X, "keep"),
                   t.path("domains", ".vpopimport.7"),
                   t.path("domains", ".vpopimport.7", "half")):
            os.lchown(p_, pw.pw_uid, pw.pw_gid)
    p3 = vadmin(t, "import-vpopmail", tr.home)
    assert "imported 1 domains" in p3.out, p3.out
    assert not os.path.exists(t.path("domains", H, "junk"))
    assert not os.path.exists(t.path("domains", H, ".vpopimport"))
    assert not os.path.exists(t.path("domains", ".vpopimport.7"))
    assert logged_in(t, f"ivan@{H}", PW["ivan"])
    assert os.path.isdir(t.path("domains", X, "keep"))
    assert re.search(r"domains/del\.test exists but del\.test is not hosted",
                     p3.out), p3.out
    assert tr.snapshot() == before


def test_import_vpopmail_what_vdeliver_would_bounce(t):
    """import-vpopmail stores nothing vadmin itself would refuse for being
    undeliverable: a catch-all to a missing name written with an alias
    domain of the same import (the alias domains are stored before the
    destinations are judged), and an alias of more than 1,000
    destinations; each is reported, the rest carried"""
    fast_root(t)
    tr = Tree(os.path.join(t.tmp, "t"))
    rel = tr.domain("real.test", catchall="nobody@alias.test")
    tr.alias_domain("alias.test", "real.test", rel)
    tr.user(rel, "bob", crypt_hash("pw-1", "$1$", "s"))
    tr.qmail(rel, "wide", "".join(f"&r{i}@remote.test\n"
                                  for i in range(1001)))
    tr.qmail(rel, "ok", "&bob@alias.test\n")
    assign, _ = tr.finish()
    if os.geteuid() == 0:
        pw = mailuser(t)
        tr.give(pw.pw_uid, pw.pw_gid)
    p = vadmin(t, "import-vpopmail", tr.home, "--assign", assign)
    assert re.search(r"catch-all nobody@alias\.test is neither a mailbox "
                     r"nor an alias; not carried", p.out), p.out
    assert re.search(r"alias wide@real\.test has 1001 destinations; "
                     r"vdeliver delivers to at most 1000; not carried",
                     p.out), p.out
    info = json.loads(vadmin(t, "dominfo", "real.test", "--json").out)
    # the narrow alias is carried, the wide one and the catch-all are not
    assert info["catchall"] == "bounce" and info["aliases"] == 1, info
    assert info["alias_domains"] == ["alias.test"], info
    check_ok(t)


def test_import_vpopmail_longest_domain(t):
    """A domain of 253 bytes is imported: its directory is made under a
    name of fixed length and renamed (".vpopimport." and the domain would
    pass NAME_MAX's 255 bytes)"""
    fast_root(t)
    long_d = ".".join(["d" * 63] * 3 + ["e" * 61])
    tr = Tree(os.path.join(t.tmp, "t"))
    rel = tr.domain(long_d)
    tr.user(rel, "bob", crypt_hash("pw-1", "$1$", "s"), msgs=[message(1)])
    assign, _ = tr.finish()
    if os.geteuid() == 0:
        pw = mailuser(t)
        tr.give(pw.pw_uid, pw.pw_gid)
    p = vadmin(t, "import-vpopmail", tr.home, "--assign", assign)
    assert "imported 1 domains, 0 alias domains, 1 users" in p.out, p.out
    assert os.listdir(t.path("domains", long_d, "bob", "Maildir", "new"))
    check_ok(t)


def test_import_vpopmail_refusals(t):
    fast_root(t)
    p = vadmin(t, "import-vpopmail", t.tmp, check=1)
    assert "not a vpopmail tree" in p.err, p.err
    p = vadmin(t, "import-vpopmail", check=2)
    p = vadmin(t, "import-vpopmail", t.tmp, "--bogus", check=2)


def test_import_vpopmail_killed_midway(t):
    """kill -9 at random points: the tree is never changed, the root holds
    all of the tree or none of it, and the next import completes."""
    import random
    import time
    fast_root(t)
    tr = Tree(os.path.join(t.tmp, "big"))
    rel = tr.domain("big.test")
    n = 150
    for i in range(n):
        tr.user(rel, f"u{i}", crypt_hash(f"pw-{i}", "$1$", f"salt{i % 9}"),
                sub=str(i % 10), msgs=[message(i)], cur=[message(i + n)])
    tr.finish()
    if os.geteuid() == 0:
        pw = mailuser(t)
        tr.give(pw.pw_uid, pw.pw_gid)
    before = tr.snapshot()
    rng = random.Random(14)
    argv = [t.bin("vadmin"), "--root", t.root, "import-vpopmail", tr.home]
    top = t.path("domains", "big.test")
    # two kills at random (before and while the Maildirs are made), one
    # once the last Maildir is there (around the syncfs and the COMMIT)
    for delay in [rng.uniform(0.02, 0.2) for _ in range(2)] + [None]:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        if delay is None:
            end = time.monotonic() + 60
            while p.poll() is None and time.monotonic() < end and not (
                    os.path.isdir(top) and len(os.listdir(top)) > n):
                time.sleep(0.005)
        else:
            time.sleep(delay)
        p.kill()
        p.wait(60)
        assert tr.snapshot() == before, delay
        users = vadmin(t, "listusers", "big.test", check=None)
        got = len(users.out.split()) if users.returncode == 0 else 0
        assert got in (0, n), (delay, got)
        if got:
            vadmin(t, "deldomain", "big.test")
    p = vadmin(t, "import-vpopmail", tr.home)
    assert f"imported 1 domains, 0 alias domains, {n} users" in p.out, p.out
    assert not os.path.exists(t.path("domains", "big.test", ".vpopimport"))
    for i in (0, n // 2, n - 1):
        lines = pop3(t, f"u{i}@big.test", f"pw-{i}")
        assert lines[2].startswith("+OK logged in, 2 messages"), lines
    assert tr.snapshot() == before
    check_ok(t)


def test_import_vpopmail_smtp_rcpt(t):
    """mta-smtpd answers RCPT for the imported domains as vdeliver
    delivers: catch-alls, bounce-no-mailbox, aliases, alias domains."""
    fast_root(t)
    imported(t)
    rcpts = {f"nobody@{E}": "250", f"nobody@{H}": "550", f"nobody@{X}": "250",
             f"first.last@{E}": "250", "bob@alias.test": "250",
             "ivan@old-alias.test": "250", "nobody@old-alias.test": "550",
             f"vtest@{H}": "250", f"gail@{E}": "250"}
    data = "EHLO client.example\r\nMAIL FROM:<a@remote.example>\r\n" + \
        "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) + "QUIT\r\n"
    e = dict(os.environ, TCPREMOTEIP="192.0.2.7")
    p = subprocess.run([t.bin("mta-smtpd"), "--root", t.root, "--inetd"],
                       input=data.encode(), capture_output=True, env=e,
                       timeout=60)
    replies = [ln for ln in p.stdout.decode().split("\r\n")
               if ln[:3].isdigit() and ln[3:4] == " "]
    # greeting, EHLO, MAIL, one a RCPT, QUIT
    got = [r[:3] for r in replies[3:3 + len(rcpts)]]
    assert got == list(rcpts.values()), (replies, p.stderr)


def test_import_vpopmail_unreadable_domain(t):
    """A domain directory the mail user may not read is reported and
    skipped; the others are imported."""
    fast_root(t)
    tr = Tree(os.path.join(t.tmp, "old"))
    ok = tr.domain("ok.test")
    tr.user(ok, "ann", crypt_hash("ann-pw-1", "$1$", "annsalt1"),
            msgs=[message(1)])
    locked = tr.domain("locked.test")
    tr.user(locked, "lou", crypt_hash("lou-pw-1", "$1$", "lousalt1"))
    if os.geteuid() == 0:
        pw = mailuser(t)
        tr.give(pw.pw_uid, pw.pw_gid)
        os.chown(os.path.join(tr.home, locked), 0, 0)
    os.chmod(os.path.join(tr.home, locked), 0)
    try:
        p = vadmin(t, "import-vpopmail", tr.home)
    finally:
        os.chmod(os.path.join(tr.home, locked), 0o700)
    assert "not carried: domains/locked.test: cannot be read by the mail " \
        "user; not imported" in p.out, p.out
    assert "imported 1 domains" in p.out, p.out
    assert logged_in(t, "ann@ok.test", "ann-pw-1")
    vadmin(t, "dominfo", "locked.test", check=1)
