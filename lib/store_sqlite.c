/*
 * store_sqlite - the SQLite back end of lib/store: ROOT/db/accounts.sqlite,
 * opened and migrated by lib/db. Statements are SQLite's own; text is bound
 * without a copy (SQLITE_STATIC), as the callers keep it until the step.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>

#include "db.h"

struct sq_store {
	struct store base;
	sqlite3 *db;
};

struct sq_stmt {
	struct store_stmt base;
	sqlite3_stmt *st;
};

#define SQ(s) (((struct sq_store *)(s))->db)
#define ST(st) (((struct sq_stmt *)(st))->st)

/* sq_close - close the connection */
static int sq_close(struct store *s)
{
	int rc = sqlite3_close(SQ(s));

	free(s);
	return db_rc(rc);
}

static int sq_version(struct store *s)
{
	return db_version(SQ(s));
}

static int sq_exec(struct store *s, const char *sql)
{
	return db_exec(SQ(s), sql);
}

/* sq_begin - IMMEDIATE: the write lock at once, so that two writers queue
 * on it rather than one failing at its first write */
static int sq_begin(struct store *s)
{
	return db_exec(SQ(s), "BEGIN IMMEDIATE");
}

/* sq_prepare - compile a statement */
static int sq_prepare(struct store *s, const char *sql,
		      struct store_stmt **st_r)
{
	struct sq_stmt *q = calloc(1, sizeof *q);
	int rc;

	if (!q)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(SQ(s), sql, -1, &q->st, NULL);
	if (rc != SQLITE_OK) {
		free(q);
		return db_rc(rc);
	}
	*st_r = &q->base;
	return 0;
}

static int sq_bind_text(struct store_stmt *st, int i, const char *text)
{
	return db_rc(sqlite3_bind_text(ST(st), i, text, -1, SQLITE_STATIC));
}

static int sq_bind_int(struct store_stmt *st, int i, int64_t v)
{
	return db_rc(sqlite3_bind_int64(ST(st), i, v));
}

static int sq_bind_null(struct store_stmt *st, int i)
{
	return db_rc(sqlite3_bind_null(ST(st), i));
}

/* sq_step - the next row, the end, or -errno */
static int sq_step(struct store_stmt *st)
{
	int rc = sqlite3_step(ST(st));

	if (rc == SQLITE_ROW)
		return STORE_ROW;
	if (rc == SQLITE_DONE)
		return STORE_DONE;
	return db_rc(rc);
}

/* sq_reset - ready to run again; bindings are kept, as in SQLite */
static int sq_reset(struct store_stmt *st)
{
	sqlite3_reset(ST(st));
	return 0;
}

static void sq_finalize(struct store_stmt *st)
{
	sqlite3_finalize(ST(st));
	free(st);
}

static const char *sq_column_text(struct store_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(ST(st), i);
}

static int64_t sq_column_int(struct store_stmt *st, int i)
{
	return sqlite3_column_int64(ST(st), i);
}

static int sq_column_null(struct store_stmt *st, int i)
{
	return sqlite3_column_type(ST(st), i) == SQLITE_NULL;
}

static int64_t sq_changes(struct store *s)
{
	return sqlite3_changes(SQ(s));
}

static int64_t sq_last_id(struct store *s)
{
	return sqlite3_last_insert_rowid(SQ(s));
}

static const char *sq_errmsg(const struct store *s)
{
	return db_errmsg(SQ(s));
}

/* sq_unreachable - a file is never "unreachable" the way a server is */
static int sq_unreachable(const struct store *s)
{
	(void)s;
	return 0;
}

/* sq_listen, sq_wait - one file on one host has no one to tell */
static int sq_listen(struct store *s, const char *channel)
{
	(void)s;
	(void)channel;
	return -ENOTSUP;
}

static int sq_wait(struct store *s, int timeout_ms)
{
	(void)s;
	(void)timeout_ms;
	return -ENOTSUP;
}

static const struct store_ops sq_ops = {
	sq_close, sq_version, sq_exec, sq_begin, sq_prepare, sq_bind_text,
	sq_bind_int, sq_bind_null, sq_step, sq_reset, sq_finalize,
	sq_column_text, sq_column_int, sq_column_null, sq_changes, sq_last_id,
	sq_errmsg, sq_unreachable, sq_listen, sq_wait,
};

/* store_sqlite_open - ROOT/db/accounts.sqlite through lib/db */
int store_sqlite_open(const char *root, int create, struct store **s_r)
{
	struct sq_store *s = calloc(1, sizeof *s);
	int r;

	if (!s)
		return -ENOMEM;
	r = db_open(root, create, &s->db);
	if (r < 0) {
		free(s);
		return r;
	}
	s->base.ops = &sq_ops;
	s->base.kind = STORE_SQLITE;
	*s_r = &s->base;
	return 0;
}

/* store_sqlite - the handle, for what only SQLite has (vadmin backup) */
sqlite3 *store_sqlite(struct store *s)
{
	return s && s->kind == STORE_SQLITE ? SQ(s) : NULL;
}
