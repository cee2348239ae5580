/*
 * store - the account store behind one interface: SQLite or PostgreSQL.
 *
 * control/accountdb chooses the back end: `sqlite` (the default) opens
 * ROOT/db/accounts.sqlite through lib/db; anything else is a libpq
 * connection string (lib/store_pg.c). Callers (vadmin, facteur doctor,
 * facteur init) see only what follows, which is the part of SQL both
 * databases share:
 *
 *   store_open(root, create, &s)    open and migrate (schema/, lib/schema.h)
 *   store_prepare(s, sql, &st)      `?` or `?N` placeholders, numbered from 1
 *   store_bind_text/int/null        text is NOT copied by the SQLite back
 *                                   end: it must live until the last step
 *   store_step(st)                  STORE_ROW, STORE_DONE or -errno
 *   store_column_text/int/null      column i of the current row (text NULL
 *                                   for SQL NULL)
 *   store_reset(st), store_finalize(st)
 *   store_exec(s, sql)              one statement without results
 *   store_begin/commit/rollback     begin takes the write lock at once
 *   store_changes(s)                rows the last INSERT/UPDATE/DELETE changed
 *   store_last_id(s)                the id the last INSERT gave its row
 *   store_errmsg(s)                 the database's own words for the error
 *   store_open_error()              libpq's words when a PostgreSQL store
 *                                   did not open
 *   store_listen(s, channel)        PostgreSQL only: be told of NOTIFY
 *   store_wait(s, ms)               1 when told since, 0 at the timeout
 *   store_host_id(root, &id)        ROOT/db/host.id, made once: the name of
 *                                   this root among the hosts of one
 *                                   PostgreSQL store
 *   store_host(s)                   that name, set on a PostgreSQL session
 *                                   (its `pending` rows are this host's)
 *   store_seen(root, &mark)         ROOT/db/changes.seen, the last change
 *                                   of the log `vadmin watch` applied here
 *   store_unreachable(s)            the server cannot be reached (vadmin
 *                                   exits 111 and says so; SPEC "Several
 *                                   hosts")
 *
 * Errors follow the house convention (0 or -errno): -EEXIST a constraint
 * (unique key) refused the change, -EBUSY the database is locked,
 * -ECONNREFUSED the server is unreachable, -EPROTO the schema is newer than
 * this program, -EIO anything else. Where the dialects differ (INSERT OR
 * IGNORE, an INTEGER PRIMARY KEY's numbering, PRAGMAs) callers ask
 * store_kind() and pass each its own text; docs/scale-out.md lists them.
 */
#ifndef FACTEUR_STORE_H
#define FACTEUR_STORE_H

#include <stdint.h>

#define STORE_DONE 0
#define STORE_ROW 1

#define STORE_SQLITE 0
#define STORE_PG 1

struct store;
struct store_stmt;

int store_open(const char *root, int create, struct store **s_r);
int store_open_conn(const char *conninfo, int create, struct store **s_r);
int store_close(struct store *s);
int store_kind(const struct store *s);
int store_version(struct store *s);
int store_exec(struct store *s, const char *sql);
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);
int store_prepare(struct store *s, const char *sql, struct store_stmt **st_r);
int store_bind_text(struct store_stmt *st, int i, const char *text);
int store_bind_int(struct store_stmt *st, int i, int64_t v);
int store_bind_null(struct store_stmt *st, int i);
int store_step(struct store_stmt *st);
int store_reset(struct store_stmt *st);
void store_finalize(struct store_stmt *st);
const char *store_column_text(struct store_stmt *st, int i);
int64_t store_column_int(struct store_stmt *st, int i);
int store_column_null(struct store_stmt *st, int i);
int64_t store_changes(struct store *s);
int64_t store_last_id(struct store *s);
const char *store_errmsg(const struct store *s);
int store_unreachable(const struct store *s);
int store_listen(struct store *s, const char *channel);
int store_wait(struct store *s, int timeout_ms);
int store_accountdb(const char *root, char **conninfo_r);
struct str;
int store_host_id(const char *root, struct str *id);
const char *store_host(const struct store *s);
int store_seen(const char *root, int64_t *mark_r);
const char *store_open_error(void);

/* the SQLite handle behind a SQLite store (vadmin backup copies its
 * pages), NULL for PostgreSQL */
struct sqlite3 *store_sqlite(struct store *s);

/* PostgreSQL only (vadmin share polls the socket beside its own files):
 * the connection's socket, -1 for SQLite; the next notification of a
 * LISTENed channel, 1 with its channel and payload, 0 when none came,
 * -ECONNREFUSED when the server went away */
struct str;
int store_socket(struct store *s);
int store_notified(struct store *s, struct str *chan, struct str *payload);

/* the back ends' table of operations (store.c dispatches through it) */
struct store_ops {
	int (*close)(struct store *s);
	int (*version)(struct store *s);
	int (*exec)(struct store *s, const char *sql);
	int (*begin)(struct store *s);
	int (*prepare)(struct store *s, const char *sql,
		       struct store_stmt **st_r);
	int (*bind_text)(struct store_stmt *st, int i, const char *text);
	int (*bind_int)(struct store_stmt *st, int i, int64_t v);
	int (*bind_null)(struct store_stmt *st, int i);
	int (*step)(struct store_stmt *st);
	int (*reset)(struct store_stmt *st);
	void (*finalize)(struct store_stmt *st);
	const char *(*column_text)(struct store_stmt *st, int i);
	int64_t (*column_int)(struct store_stmt *st, int i);
	int (*column_null)(struct store_stmt *st, int i);
	int64_t (*changes)(struct store *s);
	int64_t (*last_id)(struct store *s);
	const char *(*errmsg)(const struct store *s);
	int (*unreachable)(const struct store *s);
	int (*listen)(struct store *s, const char *channel);
	int (*wait)(struct store *s, int timeout_ms);
};

/* what every store and statement starts with */
struct store {
	const struct store_ops *ops;
	int kind;
	char *host;		/* store_host(), set by store_open */
};

struct store_stmt {
	struct store *s;
};

int store_sqlite_open(const char *root, int create, struct store **s_r);
int store_pg_open(const char *conninfo, int create, struct store **s_r);

#endif
