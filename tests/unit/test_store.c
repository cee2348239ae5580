/*
 * test_store - lib/store over its SQLite back end: the choice made by
 * control/accountdb, the statement cycle (placeholders `?` and `?N`,
 * text, integers and NULL), changes and last id, a unique key refused as
 * -EEXIST, a rolled-back transaction leaving nothing, and the errors of
 * a PostgreSQL store that cannot be reached (a port nothing listens on),
 * the host id (db/host.id) and db/changes.seen.
 * The PostgreSQL back end against a real server is test_store_pg.py's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "str.h"
#include "tinytest.h"

static char root[] = "/tmp/test_store.XXXXXX";

/* put_ctl - write control/NAME */
static void put_ctl(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/control/%s", root, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* one_int - the first column of the first row of a query, or -1 */
static int64_t one_int(struct store *s, const char *sql)
{
	struct store_stmt *st;
	int64_t v = -1;

	if (store_prepare(s, sql, &st) < 0)
		return -1;
	if (store_step(st) == STORE_ROW)
		v = store_column_int(st, 0);
	store_finalize(st);
	return v;
}

/* test_accountdb - the choice of back end */
static void test_accountdb(void)
{
	char *conn = (char *)"x";

	CHECK("accountdb.missing", store_accountdb(root, &conn) == 0 && !conn);
	put_ctl("accountdb", "sqlite\n");
	CHECK("accountdb.sqlite", store_accountdb(root, &conn) == 0 && !conn);
	put_ctl("accountdb", "host=127.0.0.1 port=9 dbname=x\n");
	CHECK("accountdb.pg", store_accountdb(root, &conn) == 0 && conn &&
	      !strcmp(conn, "host=127.0.0.1 port=9 dbname=x"));
	free(conn);
}

/* test_host_id - db/host.id: made once from control/me and random bits,
 * the same at every later call, a bad file refused */
static void test_host_id(void)
{
	struct str a = STR_INIT, b = STR_INIT;
	char path[256];

	put_ctl("me", "mx 1.example\n");
	CHECK("host_id.made", store_host_id(root, &a) == 0);
	CHECK("host_id.name", !strncmp(str_cstr(&a), "mx_1.example-", 13) &&
	      a.len == 13 + 12 && strspn(a.s + 13, "0123456789abcdef") == 12);
	CHECK("host_id.kept", store_host_id(root, &b) == 0 &&
	      str_eqs(&b, str_cstr(&a)));
	snprintf(path, sizeof path, "%s/db/host.id", root);
	unlink(path);
	CHECK("host_id.new", store_host_id(root, &b) == 0 &&
	      !str_eqs(&b, str_cstr(&a)));
	put_ctl("../db/host.id", "a'b\n");
	CHECK("host_id.bad", store_host_id(root, &b) == -EINVAL);
	unlink(path);
	/* a long host name is cut: the id stays a line read_id takes */
	put_ctl("me", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\n");
	CHECK("host_id.long", store_host_id(root, &b) == 0 &&
	      b.len == 64 + 13 && b.s[64] == '-');
	unlink(path);
	str_free(&a);
	str_free(&b);
}

/* test_seen - db/changes.seen: a number, missing, or not a number */
static void test_seen(void)
{
	int64_t m = -1;

	CHECK("seen.missing", store_seen(root, &m) == -ENOENT);
	put_ctl("../db/changes.seen", "42\n");
	CHECK("seen.read", store_seen(root, &m) == 0 && m == 42);
	put_ctl("../db/changes.seen", "4x2\n");
	CHECK("seen.bad", store_seen(root, &m) == -EINVAL);
	put_ctl("../db/changes.seen", "");
	CHECK("seen.empty", store_seen(root, &m) < 0);
}

/* test_unreachable - a PostgreSQL store nothing answers for */
static void test_unreachable(void)
{
	struct store *s = NULL;
	int r = store_open(root, 0, &s);

	tt_check(r == -ECONNREFUSED && !s, "pg.unreachable", "got %d", r);
	CHECK("pg.unreachable_words", *store_open_error() != 0);
	put_ctl("accountdb", "sqlite\n");
}

/* test_cycle - insert, read back, placeholders, NULL, changes, ids */
static void test_cycle(struct store *s)
{
	struct store_stmt *st;
	int r;

	CHECK("exec.create", store_exec(s, "CREATE TABLE t (id INTEGER "
		  "PRIMARY KEY, a TEXT UNIQUE, b INTEGER, c TEXT)") == 0);
	CHECK("prepare", store_prepare(s, "INSERT INTO t(a, b, c) VALUES "
		  "(?, ?, ?)", &st) == 0);
	CHECK("bind.text", store_bind_text(st, 1, "one") == 0);
	CHECK("bind.int", store_bind_int(st, 2, 5000000000LL) == 0);
	CHECK("bind.null", store_bind_null(st, 3) == 0);
	CHECK("step.insert", store_step(st) == STORE_DONE);
	CHECK("changes", store_changes(s) == 1);
	CHECK("last_id", store_last_id(s) == 1);
	store_reset(st);
	store_bind_text(st, 1, "two");
	CHECK("step.again", store_step(st) == STORE_DONE &&
	      store_last_id(s) == 2);
	store_reset(st);
	r = store_step(st);
	tt_check(r == -EEXIST, "unique_is_eexist", "got %d", r);
	store_finalize(st);
	CHECK("numbered", store_prepare(s, "SELECT a, b, c FROM t WHERE "
		  "b = ?2 AND a = ?1", &st) == 0);
	store_bind_text(st, 1, "one");
	store_bind_int(st, 2, 5000000000LL);
	CHECK("row", store_step(st) == STORE_ROW);
	CHECK("column.text", !strcmp(store_column_text(st, 0), "one"));
	CHECK("column.int64", store_column_int(st, 1) == 5000000000LL);
	CHECK("column.null", store_column_null(st, 2) &&
	      !store_column_text(st, 2) && !store_column_null(st, 0));
	CHECK("done", store_step(st) == STORE_DONE);
	store_finalize(st);
}

/* test_tx - a rolled-back change is gone, a committed one stays */
static void test_tx(struct store *s)
{
	CHECK("begin", store_begin(s) == 0);
	CHECK("tx.delete", store_exec(s, "DELETE FROM t") == 0);
	CHECK("rollback", store_rollback(s) == 0);
	CHECK("rollback.kept", one_int(s, "SELECT count(*) FROM t") == 2);
	CHECK("begin2", store_begin(s) == 0);
	store_exec(s, "DELETE FROM t WHERE a = 'two'");
	CHECK("commit", store_commit(s) == 0);
	CHECK("commit.kept", one_int(s, "SELECT count(*) FROM t") == 1);
	CHECK("errmsg", store_exec(s, "SELECT nonsense FROM") < 0 &&
	      *store_errmsg(s));
	CHECK("no_listen", store_listen(s, "x") == -ENOTSUP);
}

int main(void)
{
	struct store *s = NULL;
	char path[256];

	if (!mkdtemp(root))
		return 1;
	snprintf(path, sizeof path, "%s/control", root);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/db", root);
	mkdir(path, 0700);
	test_accountdb();
	test_host_id();
	test_seen();
	test_unreachable();
	if (tt_check(store_open(root, 1, &s) == 0, "open", "cannot open")) {
		CHECK("kind", store_kind(s) == STORE_SQLITE &&
		      store_sqlite(s) != NULL);
		CHECK("version", store_version(s) > 0);
		test_cycle(s);
		test_tx(s);
		CHECK("close", store_close(s) == 0);
	}
	snprintf(path, sizeof path, "rm -rf %s", root);
	if (system(path) != 0)
		tt_check(0, "cleanup", "%s", path);
	return tt_exit();
}
