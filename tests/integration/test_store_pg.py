"""Integration tests of the PostgreSQL account store (issue 16, SPEC.md
control file `accountdb` and "Several hosts"): a private PostgreSQL
(helpers.Postgres), a root whose control/accountdb names it, and beside it
a SQLite root given the same vadmin commands; the CDBs the two generate
must be the same bytes. Then the database goes down: vadmin exits 111 and
says why, while delivery and POP3 go on from the CDBs.
"""
import os
import signal
import subprocess
import time

import helpers
from vadmin_util import D, all_cdbs, put, sha512_hash, vadmin

H1 = sha512_hash("user-Secret-1")
H2 = sha512_hash("user-Secret-2", "OtherSlt")
PW = "user-Secret-1"


def make_root(t, name, accountdb=None):
    """a new root (facteur init --dev) made current, cheap hashing, and
    with accountdb its control/accountdb"""
    root = os.path.join(t.tmp, name)
    t.run("facteur", "init", "--root", root, "--dev", root=False, check=0)
    t.root = root
    t.no_dns()
    put(t, t.path("control", "passwordscheme"), "sha512crypt\n", 0o644)
    if accountdb:
        put(t, t.path("control", "accountdb"), accountdb + "\n", 0o600)
    return root


def script(t):
    """every kind of change vadmin makes, with fixed hashes so that two
    roots given it generate the same tables"""
    vadmin(t, "adddomain", D, input="pm-Secret-1\n")
    vadmin(t, "passwd", f"postmaster@{D}", "--hash", H1)
    vadmin(t, "adddomain", "other.test", "--quota", "20M",
           input="pm-Secret-1\n")
    vadmin(t, "passwd", "postmaster@other.test", "--hash", H2)
    for u in ("alice", "bob", "carol", "dave"):
        vadmin(t, "adduser", f"{u}@{D}", "--hash", H1, "--name", u.title())
    vadmin(t, "passwd", f"bob@{D}", "--hash", H2)
    vadmin(t, "deluser", f"dave@{D}")
    vadmin(t, "setquota", f"carol@{D}", "50M")
    vadmin(t, "moduser", f"carol@{D}", "--disable", "pop")
    vadmin(t, "alias", "add", f"sales@{D}", f"alice@{D}", f"bob@{D}",
           "x@remote.example")
    vadmin(t, "alias", "add", f"info@{D}", f"carol@{D}")
    vadmin(t, "alias", "del", f"sales@{D}", "x@remote.example")
    vadmin(t, "forward", f"alice@{D}", "alice@remote.example", "--keep")
    vadmin(t, "forward", f"bob@{D}", "bob@remote.example")
    vadmin(t, "forward", f"bob@{D}", "bob2@remote.example")
    vadmin(t, "catchall", D, f"postmaster@{D}")
    vadmin(t, "aliasdomain", "add", "alias.test", D)
    vadmin(t, "dkim", "add", D, "--selector", "s1", "--type", "ed25519")
    imp = os.path.join(t.tmp, "import-" + os.path.basename(t.root))
    with open(imp, "w") as f:
        for i in range(300):
            f.write(f"imp{i}@other.test {H1 if i % 2 else H2} 5M\n")
    os.chmod(imp, 0o644)
    vadmin(t, "import", imp)


def dkim_free(cdbs):
    """the tables without control/dkim.cdb, whose key file names hold the
    key's own fingerprint (a new key on each root); checked apart"""
    return {k: v for k, v in cdbs.items() if k != "control/dkim.cdb"}


def test_pg_and_sqlite_roots_generate_the_same_cdbs(t):
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        make_root(t, "sqlite")
        script(t)
        lite = all_cdbs(t)
        make_root(t, "pg", conn)
        script(t)
        pgc = all_cdbs(t)
        # the rows are in PostgreSQL, not in the root's SQLite file
        assert pg.sql("SELECT count(*) FROM users")[0][0] == "305"
        assert vadmin(t, "listusers", D).out.split() == [
            f"alice@{D}", f"bob@{D}", f"carol@{D}", f"postmaster@{D}"]
        assert set(lite) == set(pgc), (sorted(lite), sorted(pgc))
        assert len(lite) > 4
        for name in dkim_free(lite):
            assert lite[name] == pgc[name], f"{name} differs"
        # one key each: the same domain and selector in both tables
        recs = [dict(helpers.cdb_records(os.path.join(t.tmp, r,
                                                       "control/dkim.cdb")))
                for r in ("sqlite", "pg")]
        assert sorted(recs[0]) == sorted(recs[1]) and recs[0]
        # vadmin check agrees with the files; rebuild makes them again
        vadmin(t, "check")
        vadmin(t, "rebuild")
        assert dkim_free(all_cdbs(t)) == dkim_free(pgc)
        # the deletes too: a domain, a user, an alias domain
        vadmin(t, "deldomain", "other.test")
        vadmin(t, "aliasdomain", "del", "alias.test")
        assert pg.sql("SELECT count(*) FROM users")[0][0] == "4"
        assert pg.sql("SELECT name FROM domains") == [[D]]


def test_pg_refusals_as_with_sqlite(t):
    """a constraint the database enforces is a refusal (exit 1), as with
    SQLite: a user twice, a domain twice, an import naming one twice;
    vadmin backup, a copy of SQLite's pages, points to pg_dump"""
    with helpers.Postgres(t) as pg:
        make_root(t, "pg", pg.createdb("facteur"))
        vadmin(t, "adddomain", D, input="pm-Secret-1\n")
        vadmin(t, "adduser", f"u@{D}", "--hash", H1)
        p = vadmin(t, "adduser", f"u@{D}", "--hash", H1, check=1)
        assert "exists" in p.err, p.err
        vadmin(t, "adddomain", D, input="pm-Secret-1\n", check=1)
        imp = os.path.join(t.tmp, "twice")
        with open(imp, "w") as f:
            f.write(f"x@{D} {H1}\nx@{D} {H1}\n")
        os.chmod(imp, 0o644)
        p = vadmin(t, "import", imp, check=1)
        assert "nothing was imported" in p.err, p.err
        # nothing of the refused import was kept (one transaction)
        assert pg.sql(f"SELECT count(*) FROM users WHERE local = 'x'") == \
            [["0"]]
        p = vadmin(t, "backup", os.path.join(t.tmp, "b.sqlite"), check=1)
        assert "pg_dump" in p.err, p.err
        # facteur doctor checks the store control/accountdb names: the
        # tables it finds match the rows in PostgreSQL
        p = t.run("facteur", "doctor", check=None)
        lines = {ln.split()[1].rstrip(":"): ln for ln in p.out.splitlines()
                 if len(ln.split()) > 1}
        assert lines["database"] == "ok database", p.out
        assert lines["domains"].startswith("ok"), p.out
        pg.stop()
        p = t.run("facteur", "doctor", check=None)
        assert "FAIL database" in p.out, p.out


def pop_login(t, user, pw):
    """one POP3 session over pipes: the replies to USER, PASS, STAT"""
    p = t.run("pop3d", "--inetd", input=(
        f"USER {user}\r\nPASS {pw}\r\nSTAT\r\nQUIT\r\n"), env={
            "TCPREMOTEIP": "127.0.0.1"})
    return p.out.split("\r\n")


def test_database_down_vadmin_111_delivery_and_pop3_go_on(t):
    with helpers.Postgres(t) as pg:
        make_root(t, "pg", pg.createdb("facteur"))
        vadmin(t, "adddomain", D, input="pm-Secret-1\n")
        vadmin(t, "adduser", f"u@{D}", "--hash", H1)
        pg.stop()
        for args in (("adduser", f"v@{D}", "--hash", H1),
                     ("listusers", D), ("passwd", f"u@{D}", "--hash", H2)):
            p = vadmin(t, *args, check=111)
            lines = p.err.splitlines()
            assert len(lines) == 1 and "cannot reach the account " \
                "database" in lines[0], p.err
        # the CDBs still carry delivery and login
        p = t.run("vdeliver", "-f", "a@remote.example", f"u@{D}",
                  input=b"Subject: down\n\nhello\n", check=0)
        new = t.path("domains", D, "u", "Maildir", "new")
        assert len(os.listdir(new)) == 1, p.err
        r = pop_login(t, f"u@{D}", PW)
        assert r[2].startswith("+OK"), r
        assert r[3].startswith("+OK 1 "), r
        # back up: vadmin works again, and nothing half-done was kept
        pg.start()
        vadmin(t, "adduser", f"v@{D}", "--hash", H1)
        assert vadmin(t, "listusers", D).out.split() == [
            f"postmaster@{D}", f"u@{D}", f"v@{D}"]


def test_two_roots_one_database_migrate_once(t):
    """two hosts opening an empty database at once: the schema is made
    once (the advisory lock), and each sees the other's accounts"""
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_root(t, "a", conn)
        b = make_root(t, "b", conn)
        procs = []
        import subprocess
        for root in (a, b):
            procs.append(subprocess.Popen(
                [t.bin("vadmin"), "--root", root, "listdomains"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        newest = max(int(f[:3]) for f in os.listdir(os.path.join(
            os.path.dirname(__file__), "..", "..", "schema", "pg"))
            if f[:3].isdigit())
        assert pg.sql("SELECT version FROM schema_version") == [
            [str(newest)]]
        t.root = a
        vadmin(t, "adddomain", D, input="pm-Secret-1\n")
        t.root = b
        assert vadmin(t, "listdomains").out.split() == [D]


def test_migrate_store_moves_everything_once(t):
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        root = make_root(t, "lite")
        script(t)
        before = all_cdbs(t)
        accountdb = t.path("control", "accountdb")
        # nothing listens there: 111, the root stays on SQLite
        dead = f"host=127.0.0.1 port={helpers.free_port()} dbname=x " \
               "connect_timeout=5"
        p = vadmin(t, "migrate-store", dead, check=111)
        assert "cannot open the PostgreSQL database" in p.err, p.err
        assert not os.path.exists(accountdb)
        p = vadmin(t, "migrate-store", conn)
        assert "moved 3 domains and 305 users" in p.out, p.out
        with open(accountdb) as f:
            assert f.read() == conn + "\n"
        assert os.stat(accountdb).st_mode & 0o777 == 0o600
        assert pg.sql("SELECT count(*) FROM users") == [["305"]]
        assert pg.sql(f"SELECT nusers FROM domains WHERE name = '{D}'") \
            == [["4"]]
        assert pg.sql("SELECT count(*) FROM pending") == [["0"]]
        # the root now works from PostgreSQL: the same tables again
        vadmin(t, "rebuild")
        assert all_cdbs(t) == before
        vadmin(t, "check")
        # new rows are numbered after the copied ones
        vadmin(t, "adduser", f"new@{D}", "--hash", H1)
        vadmin(t, "adddomain", "new.test", input="pm-Secret-1\n")
        assert pg.sql("SELECT count(*) FROM users") == [["307"]]
        # once in PostgreSQL there is nothing to move
        p = vadmin(t, "migrate-store", conn, check=1)
        assert "already" in p.err, p.err
        # a second root into the same database: refused, left on SQLite
        make_root(t, "lite2")
        vadmin(t, "adddomain", "two.test", input="pm-Secret-1\n")
        p = vadmin(t, "migrate-store", conn, check=1)
        assert "not empty" in p.err, p.err
        assert not os.path.exists(t.path("control", "accountdb"))
        assert vadmin(t, "listdomains").out.split() == ["two.test"]
        t.root = root
        assert "two.test" not in vadmin(t, "listdomains").out


def tables(root):
    """every CDB vadmin generates in a root, as all_cdbs gives them"""
    class R:
        pass
    r = R()
    r.path = lambda *p: os.path.join(root, *p)
    return all_cdbs(r)


def watch(t, root):
    """vadmin watch on a root in the background, its stderr in a file"""
    # a file of its own each start: a line the last one wrote is not this
    # one's
    n = len([f for f in os.listdir(t.tmp) if f.startswith("watch-")])
    errpath = os.path.join(t.tmp, f"watch-{os.path.basename(root)}-{n}")
    err = open(errpath, "wb")
    p = subprocess.Popen([t.bin("vadmin"), "--root", root, "watch"],
                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    err.close()
    p.errpath = errpath
    return p


def said(p):
    with open(p.errpath, errors="replace") as f:
        return f.read()


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


def same_within(t, a, b, limit, what):
    """b's tables become a's: the seconds it took, failing past limit
    (waiting up to 10 s to say how long it did take)"""
    t0 = time.monotonic()
    want = dkim_free(tables(a))
    while dkim_free(tables(b)) != want:
        took = time.monotonic() - t0
        assert took < 10, f"{what}: the other host's tables never matched"
        time.sleep(0.01)
    took = time.monotonic() - t0
    assert took <= limit, f"{what}: {took:.2f} s, more than {limit} s"
    return took


def test_watch_brings_other_hosts_changes_within_a_second(t):
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_root(t, "a", conn)
        b = make_root(t, "b", conn)
        w = watch(t, b)
        try:
            helpers.wait_for("the first catch-up",
                             lambda: "every table regenerated" in said(w),
                             30)
            t.root = a
            steps = [
                ("adddomain", D, "--quota", "10M"),
                ("adduser", f"u@{D}", "--hash", H1),
                ("passwd", f"u@{D}", "--hash", H2),
                ("alias", "add", f"info@{D}", f"u@{D}"),
                ("forward", f"u@{D}", "u@remote.example", "--keep"),
                ("aliasdomain", "add", "alias.test", D),
                ("adduser", f"gone@{D}", "--hash", H1),
                ("deluser", f"gone@{D}"),
                ("catchall", D, "delete"),
            ]
            for args in steps:
                vadmin(t, *args, input="pm-Secret-1\n")
                # SPEC "Several hosts": within a second
                same_within(t, a, b, 1.0, " ".join(args))
            assert w.poll() is None, said(w)
            # a host that was down catches up when it starts
            stop(w)
            vadmin(t, "adduser", f"late@{D}", "--hash", H1)
            vadmin(t, "deldomain", "alias.test")
            assert dkim_free(tables(a)) != dkim_free(tables(b))
            w = watch(t, b)
            same_within(t, a, b, 5.0, "the catch-up at start")
            helpers.wait_for("the catch-up's line",
                             lambda: "changes applied" in said(w), 10)
            with open(os.path.join(b, "db", "changes.seen")) as f:
                seen = int(f.read())
            assert [[str(seen)]] == pg.sql("SELECT max(id) FROM changes")
            # the watcher's own work (a domain gone owes its files'
            # removal) is done where it is, never left in the shared
            # pending table, where it would be logged as a change again
            assert pg.sql("SELECT count(*) FROM pending") == [["0"]]
            # the database goes away: watch exits 111 and says so; the
            # tables stay as they were
            before = tables(b)
            pg.stop()
            assert w.wait(timeout=30) == 111, said(w)
            assert "lost the account database" in said(w), said(w)
            assert tables(b) == before
        finally:
            stop(w)


def test_facteur_run_starts_watch_only_for_postgresql(t):
    from test_facteur import free_listen, start_run, stop_run
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_root(t, "a", conn)
        b = make_root(t, "b", conn)
        lite = make_root(t, "lite")
        runs = []
        try:
            for root in (b, lite):
                t.root = root
                free_listen(t)
                runs.append(start_run(t))
            t.root = a
            vadmin(t, "adddomain", D, input="pm-Secret-1\n")
            vadmin(t, "adduser", f"u@{D}", "--hash", H1)
            same_within(t, a, b, 5.0, "through facteur run")
            logb = open(os.path.join(b, "log", "current")).read()
            assert "started vadmin pid" in logb, logb
            logl = open(os.path.join(lite, "log", "current")).read()
            assert "started pop3d" in logl and "vadmin" not in logl, logl
        finally:
            for p in runs:
                stop_run(p)
