"""test_backup - `vadmin backup FILE` and the restore of docs/operations.md.

A backup is taken while a loop of `vadmin adduser` commits user after
user; each copy must pass SQLite's integrity check and hold a state the
database really had (every user whole, the loop's users a prefix of the
loop). The last copy is then put back into a fresh root by the documented
procedure, `vadmin rebuild` regenerates the tables, and a user logs in
over POP3 (pop3d --inetd) with the old password while vdeliver delivers
to an alias. Then every way FILE can be wrong.
"""
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
import time

from vadmin_util import (D, acct_bucket, add_domain, add_user, check_ok,
                         err_line, fast_root, give, listusers, mailuser,
                         mailuser_dir, refused, schema_files, sha256_file,
                         vadmin)

ALICE_PW = "alice-Old-pw-1"
LOOP_PW = "loop-pw-1"


def assert_consistent_copy(t, path, users=("postmaster",), aliases=()):
    """The copy is one private, intact file in a state the database had,
    with USERS of D and ALIASES (local, dest) at least; returns how many
    of the loop's users it holds."""
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == mailuser(t).pw_uid, "the copy is not the mail user's"
    assert not os.path.exists(path + "-wal"), "the copy needs a WAL file"
    with open(path, "rb") as f:
        head = f.read(100)
    # bytes 18-19: 1 = rollback journal; the copy stands alone
    assert head[:16] == b"SQLite format 3\0" and head[18:20] == b"\1\1", \
        head[:20]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA user_version").fetchone()[0] == \
            schema_files()[-1][0]
        rows = db.execute(
            "SELECT u.local, u.hash, u.maildir, u.bucket FROM users u "
            "JOIN domains d ON d.id = u.domain_id WHERE d.name = ?",
            (D,)).fetchall()
        for local, h, md, b in rows:
            assert h.startswith("$6$"), (local, h)
            assert md == f"domains/{D}/{local}/Maildir", (local, md)
            assert b == acct_bucket(local), (local, b)
        # the user count the triggers keep agrees with the rows
        for name, nusers, count in db.execute(
                "SELECT name, nusers, (SELECT count(*) FROM users u WHERE "
                "u.domain_id = d.id) FROM domains d WHERE alias_of IS NULL"):
            assert nusers == count, (name, nusers, count)
        locals_ = {r[0] for r in rows}
        assert set(users) <= locals_, locals_
        assert db.execute("SELECT local, dest FROM aliases").fetchall() == \
            list(aliases)
        loop = {x for x in locals_ if x.startswith("loop")}
        # adduser commits one user after another: a snapshot holds the
        # first n of them, never a later one without an earlier one
        assert loop == {f"loop{i}" for i in range(len(loop))}, sorted(loop)
        return len(loop)
    finally:
        db.close()


def adduser_loop(t, stop, added, errors):
    i = 0
    while not stop.is_set() and i < 300:
        p = t.run("vadmin", "adduser", f"loop{i}@{D}", LOOP_PW)
        if p.returncode != 0:
            errors.append(p.err)
            return
        added.append(i)
        i += 1


def wait_more(added, n, timeout=60):
    end = time.monotonic() + timeout
    while len(added) < n:
        assert time.monotonic() < end, f"the adduser loop stalled at {n}"
        time.sleep(0.02)


def backups_during_adduser(t, out):
    """Three backups while users are being added; the file names."""
    stop, added, errors = threading.Event(), [], []
    th = threading.Thread(target=adduser_loop, args=(t, stop, added, errors))
    th.start()
    files = []
    try:
        wait_more(added, 2)
        for k in range(3):
            f = os.path.join(out, f"accounts-{k}.sqlite")
            vadmin(t, "backup", f)
            files.append(f)
            wait_more(added, len(added) + 2)
    finally:
        stop.set()
        th.join()
    assert not errors, errors
    return files, len(added)


def restore(t, copy, old_root):
    """docs/operations.md "Restore": a fresh root (everything stopped),
    the copy as db/accounts.sqlite (the fresh database's WAL and index
    removed first), the Maildirs back, the owner and mode, then
    `vadmin rebuild`."""
    new = os.path.join(t.tmp, "restored")
    t.run("facteur", "init", "--root", new, "--dev", root=False, check=0)
    t.root = new
    for suffix in ("", "-wal", "-shm"):
        p = t.path("db", "accounts.sqlite" + suffix)
        if os.path.exists(p):
            os.unlink(p)
    dst = t.path("db", "accounts.sqlite")
    shutil.copyfile(copy, dst)
    os.chmod(dst, 0o600)
    give(t, dst)
    subprocess.run(["cp", "-a", os.path.join(old_root, "domains", "."),
                    t.path("domains")], check=True)
    shutil.copyfile(os.path.join(old_root, "control", "passwordscheme"),
                    t.path("control", "passwordscheme"))
    vadmin(t, "rebuild")


def pop3_session(t, user, pw, cmds=""):
    e = dict(os.environ)
    e.pop("TCPREMOTEIP", None)
    e.pop("FACTEUR_ROOT", None)
    p = subprocess.run([t.bin("pop3d"), "--root", t.root, "--inetd"],
                       input=f"USER {user}\r\nPASS {pw}\r\n{cmds}QUIT\r\n"
                       .encode(), capture_output=True, env=e, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode(errors="replace").split("\r\n")


def test_backup_while_adduser_runs_then_restore(t):
    fast_root(t)
    add_domain(t)
    add_user(t, f"alice@{D}", ALICE_PW)
    vadmin(t, "alias", "add", f"info@{D}", "alice")
    vadmin(t, "aliasdomain", "add", "alias.test", D)
    out = mailuser_dir(t, "backups")
    files, total = backups_during_adduser(t, out)
    counts = [assert_consistent_copy(t, f, ("postmaster", "alice"),
                                     [("info", f"alice@{D}")])
              for f in files]
    # the copies were taken while the loop ran: users before and after
    assert counts[0] >= 2 and counts[-1] < total, (counts, total)
    assert counts == sorted(counts), counts
    assert sorted(os.listdir(out)) == sorted(map(os.path.basename, files)), \
        "a temporary file was left beside the copies"

    old = t.root
    restore(t, files[-1], old)
    check_ok(t)
    want = {"postmaster", "alice"} | {f"loop{i}" for i in range(counts[-1])}
    assert {a.split("@")[0] for a in listusers(t)} == want
    # a user added after the copy is not in the restored root
    p = t.run("vdeliver", "-f", "x@remote.test", f"loop{total - 1}@{D}",
              input="Subject: late\n\nlate\n")
    assert p.returncode == 100, (p.returncode, p.err)
    # the alias (also through the alias domain) delivers to alice
    for rcpt in (f"info@{D}", "info@alias.test"):
        t.run("vdeliver", "-f", "x@remote.test", rcpt, check=0,
              input=f"Subject: to {rcpt}\n\nrestored\n")
    lines = pop3_session(t, f"alice@{D}", ALICE_PW, "RETR 2\r\n")
    assert lines[2] == "+OK logged in, 2 messages", lines
    assert "Subject: to info@alias.test" in lines, lines
    # a wrong password is still wrong: the hash came back, not a new one
    lines = pop3_session(t, f"alice@{D}", "not-" + ALICE_PW)
    assert lines[2].startswith("-ERR"), lines


def test_backup_overwrites_a_file_and_leaves_nothing_else(t):
    fast_root(t)
    add_domain(t)
    out = mailuser_dir(t, "backups")
    f = os.path.join(out, "accounts.sqlite")
    with open(f, "w") as fh:
        fh.write("yesterday's copy\n")
    give(t, f)
    p = vadmin(t, "backup", f)
    assert p.out == "" and p.err == "", (p.out, p.err)
    assert assert_consistent_copy(t, f) == 0
    assert os.listdir(out) == ["accounts.sqlite"]
    # the copy is the database, not an empty shell: open it as a root's
    db = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
    assert db.execute("SELECT name FROM domains").fetchall() == [(D,)]
    db.close()


def test_backup_refuses_bad_files(t):
    fast_root(t)
    add_domain(t)
    out = mailuser_dir(t, "backups")
    live = t.path("db", "accounts.sqlite")
    before = sha256_file(live)
    refused(t, "backup", code=2)
    refused(t, "backup", "a", "b", code=2)
    refused(t, "backup", "", want="empty file name")
    p = refused(t, "backup", os.path.join(out, "missing", "a.sqlite"),
                want="does not exist")
    assert os.path.join(out, "missing") in p.err
    refused(t, "backup", out, want="is a directory")
    target = os.path.join(out, "target")
    with open(target, "w") as fh:
        fh.write("keep me\n")
    give(t, target)
    link = os.path.join(out, "link")
    os.symlink(target, link)
    refused(t, "backup", link, want="not a regular file")
    with open(target) as fh:
        assert fh.read() == "keep me\n"
    refused(t, "backup", live, want="is the live database")
    hard = os.path.join(t.path("db"), "hard")
    os.link(live, hard)
    refused(t, "backup", hard, want="is the live database")
    os.unlink(hard)
    if os.geteuid() == 0:
        # a directory only root may write: vadmin is the mail user then
        closed = os.path.join(t.tmp, "closed")
        os.mkdir(closed, 0o755)
        refused(t, "backup", os.path.join(closed, "a.sqlite"),
                want="make the directory writable")
        assert os.listdir(closed) == []
    assert sorted(os.listdir(out)) == ["link", "target"]
    assert sha256_file(live) == before


def test_backup_without_a_database(t):
    fast_root(t)
    out = mailuser_dir(t, "backups")
    f = os.path.join(out, "a.sqlite")
    for suffix in ("", "-wal", "-shm"):
        p = t.path("db", "accounts.sqlite" + suffix)
        if os.path.exists(p):
            os.unlink(p)
    p = t.run("vadmin", "backup", f, check=111)
    err_line(p, want="cannot open the database")
    assert not os.path.exists(t.path("db", "accounts.sqlite")), \
        "backup created an empty database"
    shutil.rmtree(t.path("db"))
    p = t.run("vadmin", "backup", f, check=111)
    err_line(p, want="not a Facteur root")
    assert os.listdir(out) == []


def test_backup_of_a_damaged_database_keeps_the_old_copy(t):
    fast_root(t)
    add_domain(t)
    for i in range(40):
        vadmin(t, "alias", "add", f"a{i:02d}@{D}", f"dest{i}@remote.test")
    out = mailuser_dir(t, "backups")
    f = os.path.join(out, "accounts.sqlite")
    vadmin(t, "backup", f)
    good = sha256_file(f)
    live = t.path("db", "accounts.sqlite")
    db = sqlite3.connect(live)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    # the aliases table's page (40 rows: its root is its one leaf), never
    # page 1 nor a page of the schema, which vadmin reads on opening (the
    # last page is not always the table's: a longer schema spills over)
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE "
                         "name = 'aliases'").fetchone()
    db.close()
    assert root > 2, root
    with open(live, "r+b") as fh:
        fh.seek((root - 1) * page)
        fh.write(b"\x0d" + b"\xff" * 40)
    p = t.run("vadmin", "backup", f, check=111)
    line = err_line(p)
    assert "was left as it was" in line, line
    assert sha256_file(f) == good
    assert os.listdir(out) == ["accounts.sqlite"]


def test_backup_waits_while_the_database_is_locked(t):
    """A connection that holds the database exclusively (no reader gets
    in, WAL or not) for a moment: backup waits, then copies what it
    committed."""
    fast_root(t)
    add_domain(t)
    out = mailuser_dir(t, "backups")
    f = os.path.join(out, "accounts.sqlite")
    holder = sqlite3.connect(t.path("db", "accounts.sqlite"),
                             isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE domains SET catchall = 'delete'")
    holder.execute("COMMIT")
    e = dict(os.environ)
    e.pop("FACTEUR_ROOT", None)
    p = subprocess.Popen([t.bin("vadmin"), "--root", t.root, "backup", f],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=e)
    try:
        time.sleep(0.7)
        assert p.poll() is None, p.communicate()
    finally:
        holder.close()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    db = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
    assert db.execute("SELECT catchall FROM domains").fetchall() == \
        [("delete",)]
    db.close()
