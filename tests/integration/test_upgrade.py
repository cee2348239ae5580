"""test_upgrade - the current vadmin on a database left by every earlier
Facteur, and on one left by a newer Facteur (docs/operations.md
"Upgrades").

For each version N of schema/ (found here, so that a new NNN_*.sql file is
covered the day it lands), a database is built by hand with Python's
sqlite3: the files 1..N applied in order with PRAGMA user_version, as
lib/db.c applies them, and rows written as Facteur at that version wrote
them (those of version 1 right after 001, those of a later version, if
VERSION_ROWS has any, right after its file). The current vadmin must bring
it to the last version at its first open, keep every row as it was, and
work on it. The unit test db.open_* in tests/unit/test_lib.c covers
lib/db.c alone on a database it made itself.
"""
import os
import shutil
import sqlite3

from vadmin_util import (D, acct_bucket, add_domain, check_ok, err_line,
                         fast_root, give, mailuser_dir, prec, put,
                         schema_files, sha256_file, sha512_hash, userinfo,
                         vadmin)

BOB_PW = "bob-Old-pw-1"
CREATED = 1700000000


def rows_v1(db, bob_hash):
    """What Facteur at schema 1 wrote: a real domain, an alias domain, two
    users (one with POP3 off and a forward), an alias, a catch-all, and a
    change whose file work a killed vadmin left pending."""
    db.execute("INSERT INTO domains (id, name, catchall, quota_bytes, "
               "created) VALUES (1, ?, ?, 52428800, ?)",
               (D, f"bob@{D}", CREATED))
    db.execute("INSERT INTO domains (id, name, alias_of, created) VALUES "
               "(2, 'alias.test', 1, ?)", (CREATED,))
    for uid, local, flags in ((1, "bob", 0), (2, "carol", 1)):
        db.execute("INSERT INTO users (id, domain_id, local, hash, name, "
                   "quota_bytes, flags, maildir, bucket, created) VALUES "
                   "(?, 1, ?, ?, ?, 52428800, ?, ?, ?, ?)",
                   (uid, local, bob_hash, local.title(), flags,
                    f"domains/{D}/{local}/Maildir", acct_bucket(local),
                    CREATED))
    db.execute("INSERT INTO aliases VALUES (1, 'info', ?)", (f"bob@{D}",))
    db.execute("INSERT INTO forwards VALUES (2, 'carol@remote.test', 1)")
    db.execute("INSERT INTO pending (kind, arg) VALUES ('cdb', ?)", (D,))


# rows that only a later schema can hold: {version: function(db)}
VERSION_ROWS = {}


def build_old_database(t, n, bob_hash):
    """The root's database replaced by one at schema N, as Facteur at
    version N would have left it; returns its tables' rows."""
    for suffix in ("", "-wal", "-shm"):
        p = t.path("db", "accounts.sqlite" + suffix)
        if os.path.exists(p):
            os.unlink(p)
    path = t.path("db", "accounts.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    for version, sql in schema_files()[:n]:
        db.execute("BEGIN")
        with open(sql) as f:
            for stmt in split_sql(f.read()):
                db.execute(stmt)
        db.execute(f"PRAGMA user_version = {version}")
        if version == 1:
            rows_v1(db, bob_hash)
        if version in VERSION_ROWS:
            VERSION_ROWS[version](db)
        db.execute("COMMIT")
    rows = dump(db)
    db.close()
    give(t, path)
    # the mailboxes that version made with the users: 0700, owned by the
    # mail user, and maildirsize for their quota
    for d in (t.path("domains", D), *(t.path("domains", D, u, *sub)
              for u in ("bob", "carol")
              for sub in ((), ("Maildir",), ("Maildir", "cur"),
                          ("Maildir", "new"), ("Maildir", "tmp")))):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        give(t, d)
    for u in ("bob", "carol"):
        put(t, t.path("domains", D, u, "Maildir", "maildirsize"),
            "52428800S\n")
    return rows


def split_sql(text):
    """A schema file as statements (sqlite3.complete_statement decides
    where one ends, triggers included)."""
    out, cur = [], ""
    for line in text.splitlines(keepends=True):
        cur += line
        if sqlite3.complete_statement(cur):
            out.append(cur)
            cur = ""
    assert not cur.strip() or cur.strip().startswith("--"), cur
    return out


def dump(db):
    """{table: sorted rows} of every table but the pending journal."""
    out = {}
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = "
                              "'table' AND name NOT LIKE 'sqlite_%' AND "
                              "name != 'pending'"):
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({name})")]
        out[name] = (cols, sorted(db.execute(
            f"SELECT {', '.join(cols)} FROM {name}").fetchall(), key=repr))
    return out


def same_rows(db, before):
    """The rows of BEFORE's tables, in BEFORE's columns, are all there."""
    for name, (cols, rows) in before.items():
        now = sorted(db.execute(f"SELECT {', '.join(cols)} FROM {name}")
                     .fetchall(), key=repr)
        assert now == rows, f"{name}: {rows} became {now}"


def open_db(t):
    return sqlite3.connect(f"file:{t.path('db', 'accounts.sqlite')}?mode=ro",
                           uri=True)


def test_upgrade_from_every_earlier_schema(t):
    files = schema_files()
    last = files[-1][0]
    bob_hash = sha512_hash(BOB_PW)
    for n in range(1, last + 1):
        if t.root:
            shutil.rmtree(t.root)  # the last version's root
        fast_root(t)
        before = build_old_database(t, n, bob_hash)
        # a reader opens it first: the migrations run at the first open
        p = vadmin(t, "listdomains")
        assert p.out.splitlines() == ["alias.test (alias of example.test)",
                                      D], (n, p.out)
        db = open_db(t)
        assert db.execute("PRAGMA user_version").fetchone()[0] == last, n
        same_rows(db, before)
        db.close()
        # the tables, from the old rows; the killed vadmin's work is done
        vadmin(t, "rebuild")
        assert prec(t, "bob")[0] == bob_hash, n
        info = userinfo(t, f"carol@{D}")
        assert (info["pop"], info["forward"], info["forward_keep"]) == \
            (False, "carol@remote.test", True), (n, info)
        vadmin(t, "adduser", f"new{n}@{D}", "new-pw-1")
        assert userinfo(t, f"new{n}@{D}")["quota"] == "52428800S", n
        db = open_db(t)
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
        db.close()
        # the old alias and catch-all deliver, through the alias domain too
        for rcpt in ("info@alias.test", f"nobody@{D}"):
            t.run("vdeliver", "-f", "x@remote.test", rcpt, check=0,
                  input=f"Subject: {rcpt} at {n}\n\nhi\n")
        assert len(os.listdir(t.path("domains", D, "bob", "Maildir",
                                     "new"))) == 2, n
        check_ok(t)


def test_newer_database_is_refused_and_left_untouched(t):
    fast_root(t)
    add_domain(t)
    last = schema_files()[-1][0]
    # a backup made by a newer Facteur (one file, rollback journal), put
    # back under this one; then the live form, in WAL mode
    copy = os.path.join(mailuser_dir(t, "b"), "newer.sqlite")
    vadmin(t, "backup", copy)
    db = sqlite3.connect(copy)
    db.execute(f"PRAGMA user_version = {last + 1}")
    db.commit()
    db.close()
    live = t.path("db", "accounts.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(live + suffix):
            os.unlink(live + suffix)
    with open(copy, "rb") as f, open(live, "wb") as g:
        g.write(f.read())
    give(t, live)
    before, listing = sha256_file(live), sorted(os.listdir(t.path("db")))
    p = t.run("vadmin", "listdomains", check=111)
    err_line(p, want="newer than this vadmin")
    p = t.run("vadmin", "adduser", f"x@{D}", "pw-x-1", check=111)
    err_line(p, want="newer than this vadmin")
    assert not os.path.exists(t.path("domains", D, "x")), "a Maildir was made"
    assert sha256_file(live) == before, "the newer database was written to"
    assert sorted(os.listdir(t.path("db"))) == listing, \
        sorted(os.listdir(t.path("db")))
    # the same database in WAL mode, as a running newer Facteur leaves it
    db = sqlite3.connect(live)
    assert db.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    db.close()
    before = sha256_file(live)
    p = t.run("vadmin", "listdomains", check=111)
    err_line(p, want="newer than this vadmin")
    assert sha256_file(live) == before
    db = open_db(t)
    assert db.execute("PRAGMA user_version").fetchone()[0] == last + 1
    db.close()
