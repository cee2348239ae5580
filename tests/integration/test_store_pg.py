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


def pg_schema_last():
    """the number of the newest migration in schema/pg/"""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "schema", "pg")
    return max(int(f.split("_")[0]) for f in os.listdir(here)
               if f[0].isdigit() and f.endswith(".sql"))


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
        assert pg.sql("SELECT version FROM schema_version") == [
            [str(pg_schema_last())]]
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
            # (the log's rows every host applied are gone: the sequence
            # says how far it went)
            assert [[str(seen)]] == pg.sql(
                "SELECT last_value FROM changes_id_seq")
            # the watcher's own work (a domain gone owes its files'
            # removal) is done where it is, never left in the
            # pending journal, where it would be logged as a change again
            assert pg.sql("SELECT count(*) FROM pending_all") == [["0"]]
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


def test_import_batches_name_the_first_bad_line(t):
    """vadmin import checks and inserts its lines 500 at a time (one
    round trip a batch, not three a line): the line it names is still the
    first bad one, the same on SQLite and PostgreSQL, whether the fault is
    the line's own, an existing user or alias, or a user named twice in
    one batch or in two; and a good file of 1,201 users goes in whole"""
    def refused(lines, want):
        imp = os.path.join(t.tmp, "imp.txt")
        with open(imp, "w") as f:
            f.write("".join(ln + "\n" for ln in lines))
        os.chmod(imp, 0o644)
        p = vadmin(t, "import", imp, check=1)
        assert want + "; nothing was imported" in p.err, (want, p.err)

    def good(n, skip=()):
        return [f"u{i}@{D} {H1}" for i in range(n) if i not in skip]

    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        for name, db in (("sqlite", None), ("pg", conn)):
            make_root(t, name, db)
            vadmin(t, "adddomain", D, input="pm-Secret-1\n")
            vadmin(t, "adduser", f"taken@{D}", "--hash", H1)
            vadmin(t, "alias", "add", f"info@{D}", f"taken@{D}")
            # (lines in the file, {index: replaced line}, the refusal)
            cases = [
                # an existing user in the second batch, a bad line after
                (1200, {700: f"taken@{D} {H1}", 900: "not-an-address"},
                 f"line 701: user taken@{D} already exists"),
                # the bad line first: named, the batch before it checked
                (1200, {650: f"x@{D} {H1} not-a-quota",
                        700: f"taken@{D} {H1}"},
                 "line 651: invalid quota 'not-a-quota'"),
                # an alias's name, within the first batch
                (600, {499: f"info@{D} {H1}"},
                 f"line 500: info@{D} is an alias"),
                # a user twice in one batch, and in two batches
                (300, {200: f"u10@{D} {H1}"},
                 f"line 201: user u10@{D} already exists"),
                (1200, {1100: f"u3@{D} {H1}"},
                 f"line 1101: user u3@{D} already exists"),
                # a bad hash on an existing user: the user is named first
                (10, {5: f"taken@{D} $6$bad"},
                 f"line 6: user taken@{D} already exists"),
            ]
            for n, repl, want in cases:
                lines = good(n)
                for i, ln in repl.items():
                    lines[i] = ln
                refused(lines, want)
            assert vadmin(t, "listusers", D).out.split() == [
                f"postmaster@{D}", f"taken@{D}"]
            p = vadmin(t, "import", "-", input="".join(
                ln + "\n" for ln in good(1201)))
            assert "imported 1201 users" in p.out + p.err, p.out + p.err
            assert len(vadmin(t, "listusers", D).out.split()) == 1203
        assert pg.sql("SELECT count(*) FROM users")[0][0] == "1203"
        assert pg.sql("SELECT nusers FROM domains") == [["1203"]]


def host_id(root):
    with open(os.path.join(root, "db", "host.id")) as f:
        return f.read().strip()


def test_change_log_pruned_by_every_live_hosts_mark(t):
    """each watcher records its mark in table hosts; the rows every host
    seen within 7 days has applied are deleted; a stopped host holds the
    log back, until its mark is 7 days old; back, it finds rows it never
    applied gone, and regenerates every table, as a new host does"""
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_root(t, "a", conn)
        b = make_root(t, "b", conn)
        wa, wb = watch(t, a), watch(t, b)
        try:
            for w in (wa, wb):
                helpers.wait_for("the first catch-up", lambda w=w:
                                 "every table regenerated" in said(w), 30)
            t.root = a
            vadmin(t, "adddomain", D, input="pm-Secret-1\n")
            vadmin(t, "adduser", f"u@{D}", "--hash", H1)
            same_within(t, a, b, 5.0, "both watching")
            last = pg.sql("SELECT last_value FROM changes_id_seq")[0][0]
            # both marks at the end: the log is empty, and says how far
            helpers.wait_for("both marks", lambda: pg.sql(
                "SELECT name, seen FROM hosts ORDER BY name") == sorted(
                    [[host_id(a), last], [host_id(b), last]]), 10)
            helpers.wait_for("the pruning", lambda: pg.sql(
                "SELECT count(*) FROM changes") == [["0"]], 10)
            assert pg.sql("SELECT upto FROM changes_pruned") == [[last]]
            # b stops: a's changes stay in the log for b
            stop(wb)
            vadmin(t, "adduser", f"v@{D}", "--hash", H1)
            vadmin(t, "alias", "add", f"info@{D}", f"v@{D}")
            helpers.wait_for("a's mark", lambda: pg.sql(
                f"SELECT seen FROM hosts WHERE name = '{host_id(a)}'") ==
                pg.sql("SELECT last_value FROM changes_id_seq"), 10)
            kept = int(pg.sql("SELECT count(*) FROM changes")[0][0])
            assert kept >= 2, kept
            assert pg.sql("SELECT min(id) FROM changes")[0][0] > last
            # b's mark 8 days old: the next change a applies prunes it all
            pg.sql("UPDATE hosts SET at = at - 8 * 86400 WHERE name = "
                   f"'{host_id(b)}'")
            vadmin(t, "adduser", f"w@{D}", "--hash", H1)
            helpers.wait_for("the pruning past b", lambda: pg.sql(
                "SELECT count(*) FROM changes") == [["0"]], 10)
            assert dkim_free(tables(a)) != dkim_free(tables(b))
            wb = watch(t, b)
            same_within(t, a, b, 10.0, "b back after the pruning")
            helpers.wait_for("b's line", lambda:
                             said(wb).count("every table regenerated") == 1,
                             10)
            assert "changes applied" not in said(wb), said(wb)
        finally:
            stop(wa)
            stop(wb)


def test_pending_journal_is_per_host(t):
    """the file work a killed vadmin left is done by the next vadmin of
    its own host, never by another host's (on its own files); a change
    owing the same work as such a row is logged all the same, so the
    other hosts see it at once"""
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_root(t, "a", conn)
        vadmin(t, "adddomain", D, input="pm-Secret-1\n")
        b = make_root(t, "b", conn)
        vadmin(t, "listdomains")
        ida = host_id(a)
        assert ida != host_id(b) and ida.startswith(
            open(os.path.join(a, "control", "me")).read().strip()[:8])
        # what a vadmin on a killed after its COMMIT leaves: a directory
        # to remove, a user's shard to write
        for root in (a, b):
            st = os.stat(os.path.join(root, "domains"))
            for sub in (D, f"{D}/gone"):
                path = os.path.join(root, "domains", sub)
                os.makedirs(path, exist_ok=True)
                os.chown(path, st.st_uid, st.st_gid)
        pg.sql("INSERT INTO pending_all(host, kind, arg) VALUES "
               f"('{ida}', 'rmdir', 'domains/{D}/gone'), "
               f"('{ida}', 'user', 'x@{D}')")
        # b's vadmin leaves a's rows alone, and its change owing the same
        # work is logged
        before = int(pg.sql("SELECT count(*) FROM changes WHERE kind = "
                            f"'user' AND arg = 'x@{D}'")[0][0])
        t.root = b
        vadmin(t, "adduser", f"x@{D}", "--hash", H1)
        assert os.path.isdir(os.path.join(b, "domains", D, "gone"))
        assert pg.sql("SELECT count(*) FROM pending_all WHERE host = "
                      f"'{ida}'") == [["2"]]
        assert int(pg.sql("SELECT count(*) FROM changes WHERE kind = "
                          f"'user' AND arg = 'x@{D}'")[0][0]) > before
        # a's next vadmin does them, on a's files
        t.root = a
        vadmin(t, "listdomains")
        assert os.path.isdir(os.path.join(a, "domains", D, "gone"))
        vadmin(t, "adduser", f"y@{D}", "--hash", H1)
        assert not os.path.exists(os.path.join(a, "domains", D, "gone"))
        assert pg.sql("SELECT count(*) FROM pending_all") == [["0"]]
        # in one host's journal too: a row left there does not stop the
        # same work from being logged again (the trigger runs BEFORE the
        # insert that ON CONFLICT DO NOTHING drops)
        n = pg.sql(f"SELECT set_config('facteur.host', '{ida}', false); "
                   "INSERT INTO pending(kind, arg) VALUES ('cdb', 'z.test'); "
                   "INSERT INTO pending(kind, arg) VALUES ('cdb', 'z.test') "
                   "ON CONFLICT DO NOTHING; "
                   "SELECT count(*) FROM changes WHERE arg = 'z.test'")
        assert n[-1] == ["2"], n
        assert pg.sql("SELECT host FROM pending_all") == [[ida]]


def doctor_lines(t):
    p = t.run("facteur", "doctor", check=None)
    return p.out, {ln.split()[1].rstrip(":"): ln for ln in p.out.splitlines()
                   if len(ln.split()) > 1}


def test_doctor_on_postgresql_root(t):
    """facteur doctor on a root whose accounts are in PostgreSQL wants no
    db/accounts.sqlite, and its cdb-age check compares this host's
    db/changes.seen with the shared change log: behind until the watcher
    applied the other host's change, ok once it has, and told when the log
    was pruned past a host away for more than 7 days"""
    with helpers.Postgres(t) as pg:
        conn = pg.createdb("facteur")
        a = make_root(t, "a", conn)
        vadmin(t, "adddomain", D, input="pm-Secret-1\n")
        b = make_root(t, "b", conn)
        os.unlink(os.path.join(b, "db", "accounts.sqlite"))
        out, lines = doctor_lines(t)
        assert lines["database"] == "ok database", out
        assert "no db/changes.seen" in lines["cdb-age"], out
        w = watch(t, b)
        try:
            helpers.wait_for("the first catch-up", lambda:
                             "every table regenerated" in said(w), 30)
            out, lines = doctor_lines(t)
            assert lines["cdb-age"] == "ok cdb-age", out
            assert lines["pending"].startswith("ok"), out
            stop(w)
            t.root = a
            vadmin(t, "adduser", f"u@{D}", "--hash", H1)
            t.root = b
            out, lines = doctor_lines(t)
            assert "not in this host's tables yet" in lines["cdb-age"], out
            assert lines["cdb-age"].startswith("warn"), out
            w = watch(t, b)
            helpers.wait_for("the catch-up", lambda:
                             " applied, up to" in said(w), 30)
            out, lines = doctor_lines(t)
            assert lines["cdb-age"] == "ok cdb-age", out
            stop(w)
            # pruned past b's mark: a's watcher, b's mark 8 days old
            pg.sql("UPDATE hosts SET at = at - 8 * 86400")
            t.root = a
            wa = watch(t, a)
            try:
                vadmin(t, "adduser", f"v@{D}", "--hash", H1)
                helpers.wait_for("the pruning", lambda: pg.sql(
                    "SELECT count(*) FROM changes") == [["0"]], 10)
            finally:
                stop(wa)
            t.root = b
            out, lines = doctor_lines(t)
            assert "pruned past this host's mark" in lines["cdb-age"], out
        finally:
            stop(w)
