/*
 * store - the account store behind one interface (see store.h): the
 * choice of back end from control/accountdb, and the dispatch to it.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ctl.h"
#include "fsx.h"
#include "num.h"
#include "str.h"

/* the characters of a host's id: safe in a SQL literal and a log line */
#define ID_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
		 "0123456789.-_"

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

/* read_id - db/host.id's one line into *id: 0, -ENOENT, or -EINVAL for
 * a file that is not an id */
static int read_id(const char *path, struct str *id)
{
	int r = fsx_read_file(path, id, 256);

	while (r == 0 && id->len && id->s[id->len - 1] == '\n')
		id->s[--id->len] = 0;
	if (r == 0 && (id->len == 0 || strspn(str_cstr(id), ID_CHARS) !=
		       id->len))
		r = -EINVAL;
	return r;
}

/* new_id - this host's name (control/me, its odd bytes as '_') and 48
 * random bits: two hosts that call themselves the same still differ */
static int new_id(const char *root, struct str *id)
{
	unsigned char rnd[6];
	size_t i;
	int r = ctl_me(root, id);

	if (r < 0)
		return r;
	/* the id stays one short line (read_id's bound) */
	if (id->len > 64)
		id->s[id->len = 64] = 0;
	for (i = 0; i < id->len; i++)
		if (!strchr(ID_CHARS, id->s[i]) || !id->s[i])
			id->s[i] = '_';
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return -EIO;
	for (i = 0; i < sizeof rnd && r == 0; i++)
		r = str_catf(id, "%s%02x", i ? "" : "-", rnd[i]);
	return r < 0 ? -ENOMEM : 0;
}

/* store_host_id - ROOT/db/host.id, the name under which this root keeps
 * its pending journal and its mark on the change log in a shared
 * PostgreSQL store (docs/scale-out.md); made at the first call (linked
 * into place, so two first calls agree on one) */
int store_host_id(const char *root, struct str *id)
{
	struct str path = STR_INIT, tmp = STR_INIT;
	int r;

	if (str_catf(&path, "%s/db/host.id", root) ||
	    str_catf(&tmp, "%s.tmp.%ld", path.s, (long)getpid())) {
		r = -ENOMEM;
		goto out;
	}
	r = read_id(path.s, id);
	if (r != -ENOENT)
		goto out;
	r = new_id(root, id);
	if (r == 0 && str_catc(id, '\n') < 0)
		r = -ENOMEM;
	if (r == 0)
		r = fsx_write_atomic(tmp.s, id->s, id->len, 0600);
	if (r < 0)
		goto out;
	/* EEXIST: another first call was quicker; its id is the one */
	if (link(tmp.s, path.s) < 0 && errno != EEXIST)
		r = -errno;
	(void)unlink(tmp.s);
	/* the link durable: a lost id would orphan this host's rows */
	if (r == 0)
		r = fsx_fsync_parent(path.s);
	if (r == 0)
		r = read_id(path.s, id);
out:
	str_free(&path);
	str_free(&tmp);
	return r;
}

/* store_seen - ROOT/db/changes.seen: the last change of the shared log
 * that this host's `vadmin watch` applied; -ENOENT when it never did */
int store_seen(const char *root, int64_t *mark_r)
{
	struct str p = STR_INIT, v = STR_INIT;
	uint64_t n = 0;
	int r = str_catf(&p, "%s/db/changes.seen", root) ? -ENOMEM :
		fsx_read_file(p.s, &v, 64);

	while (r == 0 && v.len && v.s[v.len - 1] == '\n')
		v.s[--v.len] = 0;
	if (r == 0)
		r = num_parse(str_cstr(&v), INT64_MAX, &n);
	*mark_r = (int64_t)n;
	str_free(&p);
	str_free(&v);
	return r;
}

/* pg_host - a PostgreSQL store's session is this host's: its pending
 * rows are under this name (schema/pg/005_hosts.sql) */
static int pg_host(const char *root, struct store *s)
{
	struct str id = STR_INIT, sql = STR_INIT;
	int r = store_host_id(root, &id);

	/* a reader that may not write db/ (doctor as nobody) sees the rows
	 * of no host but those from before hosts had names */
	if (r == -EACCES || r == -EROFS) {
		str_free(&id);
		return 0;
	}
	if (r == 0 && str_catf(&sql, "SELECT set_config('facteur.host', '%s',"
			       " false)", id.s))
		r = -ENOMEM;
	if (r == 0)
		r = store_exec(s, sql.s);
	if (r == 0 && !(s->host = strdup(id.s)))
		r = -ENOMEM;
	str_free(&id);
	str_free(&sql);
	return r;
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
	if (r == 0 && (r = pg_host(root, *s_r)) < 0) {
		store_close(*s_r);
		*s_r = NULL;
	}
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
	if (!s)
		return 0;
	free(s->host);
	s->host = NULL;
	return s->ops->close(s);
}

/* store_host - the host id this PostgreSQL session works as, "" for none
 * (SQLite, migrate-store's target) */
const char *store_host(const struct store *s)
{
	return s->host ? s->host : "";
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
