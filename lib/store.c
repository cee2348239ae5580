/*
 * store - the account store behind one interface (see store.h): the
 * choice of back end from control/accountdb, and the dispatch to it.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "str.h"

/* store_accountdb - control/accountdb: NULL for SQLite, else a malloc'd
 * libpq connection string */
int store_accountdb(const char *root, char **conninfo_r)
{
	struct str v = STR_INIT;
	int r = ctl_get(root, "accountdb", "sqlite", &v);

	*conninfo_r = NULL;
	if (r < 0) {
		str_free(&v);
		return r;
	}
	if (v.len == 0 || strcmp(str_cstr(&v), "sqlite") == 0) {
		str_free(&v);
		return 0;
	}
	*conninfo_r = strdup(str_cstr(&v));
	str_free(&v);
	return *conninfo_r ? 0 : -ENOMEM;
}

/* store_open - the store control/accountdb names, opened and migrated */
int store_open(const char *root, int create, struct store **s_r)
{
	char *conninfo;
	int r = store_accountdb(root, &conninfo);

	if (r < 0)
		return r;
	if (!conninfo)
		return store_sqlite_open(root, create, s_r);
	r = store_pg_open(conninfo, create, s_r);
	free(conninfo);
	return r;
}

/* store_open_conn - a PostgreSQL store by its connection string (vadmin
 * migrate-store, before control/accountdb names it) */
int store_open_conn(const char *conninfo, int create, struct store **s_r)
{
	return store_pg_open(conninfo, create, s_r);
}

int store_close(struct store *s)
{
	return s ? s->ops->close(s) : 0;
}

int store_kind(const struct store *s)
{
	return s->kind;
}

int store_version(struct store *s)
{
	return s->ops->version(s);
}

int store_exec(struct store *s, const char *sql)
{
	return s->ops->exec(s, sql);
}

int store_begin(struct store *s)
{
	return s->ops->begin(s);
}

int store_commit(struct store *s)
{
	return s->ops->exec(s, "COMMIT");
}

int store_rollback(struct store *s)
{
	return s->ops->exec(s, "ROLLBACK");
}

/* store_prepare - the back end compiles; every statement knows its store */
int store_prepare(struct store *s, const char *sql, struct store_stmt **st_r)
{
	int r = s->ops->prepare(s, sql, st_r);

	if (r == 0)
		(*st_r)->s = s;
	return r;
}

int store_bind_text(struct store_stmt *st, int i, const char *text)
{
	return text ? st->s->ops->bind_text(st, i, text) :
	       st->s->ops->bind_null(st, i);
}

int store_bind_int(struct store_stmt *st, int i, int64_t v)
{
	return st->s->ops->bind_int(st, i, v);
}

int store_bind_null(struct store_stmt *st, int i)
{
	return st->s->ops->bind_null(st, i);
}

int store_step(struct store_stmt *st)
{
	return st->s->ops->step(st);
}

int store_reset(struct store_stmt *st)
{
	return st->s->ops->reset(st);
}

void store_finalize(struct store_stmt *st)
{
	if (st)
		st->s->ops->finalize(st);
}

const char *store_column_text(struct store_stmt *st, int i)
{
	return st->s->ops->column_text(st, i);
}

int64_t store_column_int(struct store_stmt *st, int i)
{
	return st->s->ops->column_int(st, i);
}

int store_column_null(struct store_stmt *st, int i)
{
	return st->s->ops->column_null(st, i);
}

int64_t store_changes(struct store *s)
{
	return s->ops->changes(s);
}

int64_t store_last_id(struct store *s)
{
	return s->ops->last_id(s);
}

/* store_errmsg - the database's words for the last error */
const char *store_errmsg(const struct store *s)
{
	return s ? s->ops->errmsg(s) : "no database";
}

int store_unreachable(const struct store *s)
{
	return s && s->ops->unreachable(s);
}

int store_listen(struct store *s, const char *channel)
{
	return s->ops->listen(s, channel);
}

int store_wait(struct store *s, int timeout_ms)
{
	return s->ops->wait(s, timeout_ms);
}
