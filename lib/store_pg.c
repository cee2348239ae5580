/*
 * store_pg - the PostgreSQL back end of lib/store, through libpq.
 *
 * A statement is kept as text with SQLite's `?` and `?N` placeholders
 * rewritten to PostgreSQL's `$N`, and runs at its first step with every
 * parameter sent as text (the server gives each the type its place in the
 * statement calls for); the rows it returns are then read from the result.
 * Writers serialise on one advisory lock taken in store_begin(), as
 * SQLite's writers do on its file lock: vadmin's transactions are short,
 * and every host's vadmin then sees the others' changes whole. The schema
 * (schema/pg/, lib/schema.h) is migrated at open in one transaction under
 * that same lock, so two hosts starting together migrate once.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "str.h"

/* the advisory lock of writers and migrations: "Fact" in ASCII (the
 * change log's trigger takes it too: schema/pg/005_hosts.sql) */
#define PG_LOCK "1180787572"

/* a statement text this connection has run: prepared on the server once
 * it is run a second time (an import runs the same few for every line),
 * so that it is parsed and planned once, not at each run */
struct pg_plan {
	struct pg_plan *next;
	char *sql;
	unsigned runs;
	char name[24];		/* "" until prepared */
};

struct pg_store {
	struct store base;
	PGconn *conn;
	struct str err;
	int64_t changes;
	int lost;
	struct pg_plan *plans;
	unsigned nplans;
};

struct pg_stmt {
	struct store_stmt base;
	struct pg_plan *plan;
	struct str sql;
	int nparams;
	char **val;
	PGresult *res;
	int row, nrows;
};

#define PGS(s) ((struct pg_store *)(s))
#define PGQ(st) ((struct pg_stmt *)(st))

/* the words of the last connection that failed (store_open_error) */
static struct str open_err;

/* keep_words - one line of libpq's message in *out */
static void keep_words(struct str *out, const char *m)
{
	size_t n;

	out->len = 0;
	m = m && *m ? m : "unknown error";
	if (strncmp(m, "ERROR:  ", 8) == 0 || strncmp(m, "FATAL:  ", 8) == 0)
		m += 8;
	n = strcspn(m, "\n");
	if (str_catb(out, m, n) < 0)
		out->len = 0;
}

/* pg_fail - the -errno of a failed result (NULL: of the connection) */
static int pg_fail(struct pg_store *s, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) :
			    NULL;

	keep_words(&s->err, res ? PQresultErrorMessage(res) :
		   PQerrorMessage(s->conn));
	if (PQstatus(s->conn) == CONNECTION_BAD ||
	    (state && strncmp(state, "08", 2) == 0) ||
	    (state && strncmp(state, "57P", 3) == 0)) {
		s->lost = 1;
		return -ECONNREFUSED;
	}
	if (!state)
		return -EIO;
	if (strncmp(state, "23", 2) == 0)
		return -EEXIST;
	if (strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0)
		return -EBUSY;
	if (strncmp(state, "53", 2) == 0)
		return -ENOSPC;
	if (strncmp(state, "42501", 5) == 0)
		return -EACCES;
	return -EIO;
}

/* pg_run - one command without parameters; rows it returns are dropped */
static int pg_run(struct pg_store *s, const char *sql)
{
	PGresult *res = PQexec(s->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int r = 0;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		s->changes = strtoll(PQcmdTuples(res), NULL, 10);
	else
		r = pg_fail(s, res);
	PQclear(res);
	return r;
}

/* pg_value - the one value a query returns, as a number (0 for none) */
static int pg_value(struct pg_store *s, const char *sql, int64_t *v)
{
	PGresult *res = PQexec(s->conn, sql);
	int r = 0;

	*v = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		r = pg_fail(s, res);
	else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		*v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return r;
}

static int pg_close(struct store *s)
{
	struct pg_plan *p, *next;

	for (p = PGS(s)->plans; p; p = next) {
		next = p->next;
		free(p->sql);
		free(p);
	}
	PQfinish(PGS(s)->conn);
	str_free(&PGS(s)->err);
	free(s);
	return 0;
}

/* pg_version - schema_version's row, 0 in a database without one */
static int pg_version(struct store *s)
{
	int64_t have, v;
	int r = pg_value(PGS(s), "SELECT (to_regclass('schema_version') "
			 "IS NOT NULL)::int", &have);

	if (r == 0 && have)
		r = pg_value(PGS(s), "SELECT max(version) FROM schema_version",
			     &v);
	else
		v = 0;
	return r < 0 ? r : (int)v;
}

static int pg_exec(struct store *s, const char *sql)
{
	return pg_run(PGS(s), sql);
}

/* pg_begin - a transaction that holds the writers' lock */
static int pg_begin(struct store *s)
{
	int r = pg_run(PGS(s), "BEGIN");

	if (r == 0)
		r = pg_run(PGS(s), "SELECT pg_advisory_xact_lock(" PG_LOCK ")");
	if (r < 0 && !PGS(s)->lost)
		pg_run(PGS(s), "ROLLBACK");
	return r;
}

/* placeholders - SQLite's ? and ?N as $N (none inside quotes); the
 * highest number is the count, as in SQLite, a bare ? is one more than
 * the highest before it */
static int placeholders(const char *in, struct str *out, int *n_r)
{
	int max = 0, r = 0;
	char quote = 0;

	out->len = 0;
	for (; *in && r == 0; in++) {
		if (quote) {
			quote = *in == quote ? 0 : quote;
			r = str_catc(out, *in);
		} else if (*in == '\'' || *in == '"') {
			quote = *in;
			r = str_catc(out, *in);
		} else if (*in != '?') {
			r = str_catc(out, *in);
		} else {
			int n = 0;

			while (in[1] >= '0' && in[1] <= '9' && n < 1000)
				n = n * 10 + (*++in - '0');
			if (n == 0)
				n = max + 1;
			if (n > max)
				max = n;
			r = str_catf(out, "$%d", n);
		}
	}
	*n_r = max;
	return r < 0 ? -ENOMEM : 0;
}

/* plan_of - the connection's record of a statement text, made at its
 * first sight (NULL when out of memory: the statement runs unprepared) */
static struct pg_plan *plan_of(struct pg_store *s, const char *sql)
{
	struct pg_plan *p;

	for (p = s->plans; p; p = p->next)
		if (!strcmp(p->sql, sql))
			return p;
	p = calloc(1, sizeof *p);
	if (!p || !(p->sql = strdup(sql))) {
		free(p);
		return NULL;
	}
	p->next = s->plans;
	s->plans = p;
	return p;
}

/* pg_prepare - the statement's text, ready to run */
static int pg_prepare(struct store *s, const char *sql,
		      struct store_stmt **st_r)
{
	struct pg_stmt *q = calloc(1, sizeof *q);
	int r;

	if (!q)
		return -ENOMEM;
	r = placeholders(sql, &q->sql, &q->nparams);
	if (r == 0 && q->nparams > 0) {
		q->val = calloc((size_t)q->nparams, sizeof *q->val);
		if (!q->val)
			r = -ENOMEM;
	}
	if (r < 0) {
		str_free(&q->sql);
		free(q);
		return r;
	}
	q->plan = plan_of(PGS(s), q->sql.s);
	*st_r = &q->base;
	return 0;
}

/* bind - parameter i (from 1) takes a copy of text, or NULL */
static int bind(struct store_stmt *st, int i, const char *text)
{
	struct pg_stmt *q = PGQ(st);
	char *v = NULL;

	if (i < 1 || i > q->nparams)
		return -ERANGE;
	if (text && !(v = strdup(text)))
		return -ENOMEM;
	free(q->val[i - 1]);
	q->val[i - 1] = v;
	return 0;
}

static int pg_bind_text(struct store_stmt *st, int i, const char *text)
{
	return bind(st, i, text);
}

static int pg_bind_int(struct store_stmt *st, int i, int64_t v)
{
	char num[24];

	snprintf(num, sizeof num, "%" PRId64, v);
	return bind(st, i, num);
}

static int pg_bind_null(struct store_stmt *st, int i)
{
	return bind(st, i, NULL);
}

/* run - the statement on the server: by the name it was prepared under
 * from its second run on (a failed prepare leaves it unprepared) */
static PGresult *run(struct pg_store *s, struct pg_stmt *q)
{
	const char *const *v = (const char *const *)q->val;
	struct pg_plan *p = q->plan;

	if (p && !p->name[0] && ++p->runs >= 2) {
		PGresult *res;

		snprintf(p->name, sizeof p->name, "f%u", ++s->nplans);
		res = PQprepare(s->conn, p->name, q->sql.s, q->nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			p->name[0] = 0;
		PQclear(res);
	}
	if (p && p->name[0])
		return PQexecPrepared(s->conn, p->name, q->nparams, v, NULL,
				      NULL, 0);
	return PQexecParams(s->conn, q->sql.s, q->nparams, NULL, v, NULL,
			    NULL, 0);
}

/* pg_step - run the statement at the first step, then hand out its rows */
static int pg_step(struct store_stmt *st)
{
	struct pg_stmt *q = PGQ(st);
	struct pg_store *s = PGS(st->s);
	ExecStatusType status;

	if (!q->res) {
		q->res = run(s, q);
		status = PQresultStatus(q->res);
		if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
			int r = pg_fail(s, q->res);

			PQclear(q->res);
			q->res = NULL;
			return r;
		}
		s->changes = strtoll(PQcmdTuples(q->res), NULL, 10);
		q->nrows = status == PGRES_TUPLES_OK ? PQntuples(q->res) : 0;
		q->row = -1;
	}
	if (q->row < q->nrows)
		q->row++;
	return q->row < q->nrows ? STORE_ROW : STORE_DONE;
}

/* pg_reset - ready to run again; the bindings are kept, as in SQLite */
static int pg_reset(struct store_stmt *st)
{
	PQclear(PGQ(st)->res);
	PGQ(st)->res = NULL;
	return 0;
}

static void pg_finalize(struct store_stmt *st)
{
	struct pg_stmt *q = PGQ(st);
	int i;

	PQclear(q->res);
	for (i = 0; i < q->nparams; i++)
		free(q->val[i]);
	free(q->val);
	str_free(&q->sql);
	free(q);
}

/* pg_column_text - column i of the current row, NULL for SQL NULL */
static const char *pg_column_text(struct store_stmt *st, int i)
{
	struct pg_stmt *q = PGQ(st);

	if (!q->res || q->row < 0 || q->row >= q->nrows || i < 0 ||
	    i >= PQnfields(q->res) || PQgetisnull(q->res, q->row, i))
		return NULL;
	return PQgetvalue(q->res, q->row, i);
}

/* pg_column_int - a number; a boolean is 1 or 0, as SQLite gives it */
static int64_t pg_column_int(struct store_stmt *st, int i)
{
	const char *t = pg_column_text(st, i);

	if (!t)
		return 0;
	if (*t == 't')
		return 1;
	return strtoll(t, NULL, 10);
}

static int pg_column_null(struct store_stmt *st, int i)
{
	return pg_column_text(st, i) == NULL;
}

static int64_t pg_changes(struct store *s)
{
	return PGS(s)->changes;
}

/* pg_last_id - the value the session's last INSERT drew from an identity
 * column: callers ask right after inserting into a table whose triggers
 * insert nowhere else */
static int64_t pg_last_id(struct store *s)
{
	int64_t v, changes = PGS(s)->changes;

	if (pg_value(PGS(s), "SELECT lastval()", &v) < 0)
		v = 0;
	PGS(s)->changes = changes;
	return v;
}

static const char *pg_errmsg(const struct store *s)
{
	return PGS(s)->err.len ? PGS(s)->err.s : "no error";
}

static int pg_unreachable(const struct store *s)
{
	return PGS(s)->lost;
}

/* pg_listen - LISTEN on a channel (an identifier: letters, digits, _) */
static int pg_listen(struct store *s, const char *channel)
{
	struct str sql = STR_INIT;
	int r;

	if (!*channel || strspn(channel, "abcdefghijklmnopqrstuvwxyz0123456789_")
	    != strlen(channel))
		return -EINVAL;
	r = str_catf(&sql, "LISTEN %s", channel) ? -ENOMEM :
	    pg_run(PGS(s), sql.s);
	str_free(&sql);
	return r;
}

/* drained - whether a notification had come; each is freed */
static int drained(struct pg_store *s)
{
	PGnotify *n;
	int got = 0;

	while ((n = PQnotifies(s->conn)) != NULL) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}

/* pg_wait - 1 when a notification came (before or within timeout_ms),
 * 0 when none did, -ECONNREFUSED when the server went away */
static int pg_wait(struct store *s, int timeout_ms)
{
	struct pg_store *p = PGS(s);
	struct pollfd pf;
	int r;

	if (PQconsumeInput(p->conn) == 0)
		return pg_fail(p, NULL);
	if (drained(p))
		return 1;
	pf.fd = PQsocket(p->conn);
	pf.events = POLLIN;
	pf.revents = 0;
	if (pf.fd < 0)
		return pg_fail(p, NULL);
	do
		r = poll(&pf, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	if (PQconsumeInput(p->conn) == 0)
		return pg_fail(p, NULL);
	return drained(p);
}

static const struct store_ops pg_ops = {
	pg_close, pg_version, pg_exec, pg_begin, pg_prepare, pg_bind_text,
	pg_bind_int, pg_bind_null, pg_step, pg_reset, pg_finalize,
	pg_column_text, pg_column_int, pg_column_null, pg_changes, pg_last_id,
	pg_errmsg, pg_unreachable, pg_listen, pg_wait,
};

/* migrate_locked - inside the migration's transaction: every migration
 * newer than the database, or -EPROTO for a database newer than us */
static int migrate_locked(struct pg_store *s)
{
	int last = schema_pg_migrations[schema_pg_migration_count - 1].version;
	int v = pg_version(&s->base), i, r = 0;
	struct str sql = STR_INIT;

	if (v < 0)
		return v;
	if (v > last)
		return -EPROTO;
	for (i = 0; i < schema_pg_migration_count && r == 0; i++)
		if (schema_pg_migrations[i].version > v)
			r = pg_run(s, schema_pg_migrations[i].sql);
	if (r == 0 && v < last)
		r = str_catf(&sql, "UPDATE schema_version SET version = %d",
			     last) ? -ENOMEM : pg_run(s, sql.s);
	str_free(&sql);
	return r;
}

/* migrate - bring the schema up to date in one transaction, under the
 * writers' lock (another host may be doing the same); a current schema
 * costs one query. The lock is taken before the transaction begins: a
 * transaction begun earlier could still see the catalog as it was before
 * the other host's migration (a table it made "not there") */
static int migrate(struct pg_store *s)
{
	int last = schema_pg_migrations[schema_pg_migration_count - 1].version;
	int v = pg_version(&s->base), r;

	if (v < 0 || v == last)
		return v < 0 ? v : 0;
	if (v > last)
		return -EPROTO;
	r = pg_run(s, "SELECT pg_advisory_lock(" PG_LOCK ")");
	if (r < 0)
		return r;
	r = pg_run(s, "BEGIN");
	if (r == 0)
		r = migrate_locked(s);
	if (r == 0)
		r = pg_run(s, "COMMIT");
	else if (!s->lost)
		pg_run(s, "ROLLBACK");
	if (!s->lost)
		pg_run(s, "SELECT pg_advisory_unlock(" PG_LOCK ")");
	return r;
}

/* quiet - the server's notices (an index made, say) are not ours to print */
static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* store_pg_open - connect, and create or migrate the schema; the
 * database itself must exist (an empty one is made into a store) */
int store_pg_open(const char *conninfo, int create, struct store **s_r)
{
	struct pg_store *s = calloc(1, sizeof *s);
	int r;

	(void)create;
	if (!s)
		return -ENOMEM;
	s->base.ops = &pg_ops;
	s->base.kind = STORE_PG;
	s->conn = PQconnectdb(conninfo);
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
		keep_words(&open_err, s->conn ? PQerrorMessage(s->conn) :
			   "out of memory");
		r = -ECONNREFUSED;
	} else {
		PQsetNoticeProcessor(s->conn, quiet, NULL);
		r = migrate(s);
		if (r < 0)
			keep_words(&open_err, s->err.s);
	}
	if (r < 0) {
		pg_close(&s->base);
		return r;
	}
	*s_r = &s->base;
	return 0;
}

/* store_open_error - why the last PostgreSQL store did not open */
const char *store_open_error(void)
{
	return open_err.len ? open_err.s : "";
}

/* store_socket - the connection's socket, to poll beside others (vadmin
 * share); -1 for SQLite */
int store_socket(struct store *s)
{
	return s && s->kind == STORE_PG ? PQsocket(PGS(s)->conn) : -1;
}

/* store_notified - the next notification received on a LISTENed
 * channel: 1 with its channel and payload, 0 when none has come,
 * -ECONNREFUSED when the server went away (-EINVAL for SQLite) */
int store_notified(struct store *s, struct str *chan, struct str *payload)
{
	PGnotify *n;
	int r;

	if (!s || s->kind != STORE_PG)
		return -EINVAL;
	if (PQconsumeInput(PGS(s)->conn) == 0)
		return pg_fail(PGS(s), NULL);
	if (!(n = PQnotifies(PGS(s)->conn)))
		return 0;
	r = str_copys(chan, n->relname) || str_copys(payload, n->extra) ?
	    -ENOMEM : 1;
	PQfreemem(n);
	return r;
}
