/*
 * vimport - `vadmin import FILE`: many users in one transaction.
 *
 * Each line is `USER@DOMAIN PASSWORD_OR_HASH [QUOTA]`; blank lines and
 * lines starting with '#' are skipped; without QUOTA a user gets its
 * domain's default. A value starting with '$' must be a "$y$" or "$6$"
 * hash and is stored as it is; anything else is hashed as a clear
 * password (which costs a yescrypt computation per user: import hashes
 * when speed matters). Any bad line refuses the whole file, naming the
 * line, and nothing changes. Lines go to the database BATCH at a time:
 * one query finds which of them already exist as users or aliases, one
 * INSERT adds them, so a PostgreSQL store across a network costs two
 * round trips a batch instead of three a line; a line's own fault
 * (syntax, domain, secret) first has the lines before it checked, so the
 * line named is the first bad one, as when each line was asked alone.
 * Mailboxes are created after every line has been checked, by one worker
 * process per CPU (mkdir is most of the cost of an import), without an
 * fsync each, and made durable by one syncfs() before COMMIT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "num.h"
#include "pw.h"
#include "vadmin.h"
#include "vimpline.h"

/* lines checked and inserted together: 500 rows of 9 parameters stay
 * far below SQLite's 32,766 and PostgreSQL's 65,535; a round trip for
 * 500 users costs nothing beside their rows */
#define BATCH 500

/* a line checked and hashed, waiting in the batch for its database
 * checks and its INSERT */
struct row {
	unsigned long lineno;
	int64_t did;
	struct quota q;
	struct str local, domain, hash, cram, maildir;
};

struct imp {
	struct str local, domain, last_domain;
	struct str dirs; /* MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS \0 ... */
	int64_t last_did;
	struct quota last_q; /* last_did's default quota, asked once */
	struct row rows[BATCH];
	unsigned n;
	struct store_stmt *check, *ins; /* for a full batch, kept */
};

/* batch_sql - HEAD, then N rows of PER numbered placeholders (2: a
 * domain id and a local part; 9: a users row) joined by ", ", then TAIL */
static void batch_sql(struct str *out, const char *head, unsigned n,
		      unsigned per, const char *tail)
{
	unsigned i;
	int r = str_cats(out, head);

	for (i = 0; r == 0 && i < n; i++) {
		r = str_cats(out, i ? ", " : "");
		if (r == 0 && per == 2)
			r = str_catf(out, "(CAST(?%u AS BIGINT), ?%u)",
				     2 * i + 1, 2 * i + 2);
		else if (r == 0)
			r = str_catf(out, "(?%u, ?%u, ?%u, ?%u, '', ?%u, ?%u, "
				     "0, ?%u, ?%u, ?%u)", 9 * i + 1, 9 * i + 2,
				     9 * i + 3, 9 * i + 4, 9 * i + 5,
				     9 * i + 6, 9 * i + 7, 9 * i + 8,
				     9 * i + 9);
	}
	if (r == 0)
		r = str_cats(out, tail);
	if (r)
		vfail(EX_TEMP, "out of memory");
}

/* batch_prep - the check (users and aliases already there) or the INSERT
 * of N rows: one round trip for a batch, not one a line, which is what
 * an import into a PostgreSQL store across a network would wait on */
static struct store_stmt *batch_prep(struct vctx *c, int check, unsigned n)
{
	struct str sql = STR_INIT, vals = STR_INIT;
	struct store_stmt *st;

	if (check) {
		batch_sql(&vals, "", n, 2, "");
		if (str_catf(&sql, "SELECT 0, domain_id, local FROM users WHERE "
			     "(domain_id, local) IN (VALUES %s) UNION ALL "
			     "SELECT 1, domain_id, local FROM aliases WHERE "
			     "(domain_id, local) IN (VALUES %s)", vals.s,
			     vals.s))
			vfail(EX_TEMP, "out of memory");
	} else {
		batch_sql(&sql, "INSERT INTO users(domain_id, local, hash, "
			  "cram, name, quota_bytes, quota_msgs, flags, "
			  "maildir, created, bucket) VALUES ", n, 9, "");
	}
	st = m_prep(c, sql.s);
	str_free(&sql);
	str_free(&vals);
	return st;
}

/* first_taken - the first row of the batch whose user or alias the
 * database already has: its index, *alias_r saying which; -1 for none */
static int first_taken(struct vctx *c, struct imp *im, struct store_stmt *st,
		       int *alias_r)
{
	int first = -1, rc;
	unsigned i;

	for (i = 0; i < im->n; i++) {
		store_bind_int(st, (int)(2 * i + 1), im->rows[i].did);
		store_bind_text(st, (int)(2 * i + 2), im->rows[i].local.s);
	}
	while ((rc = store_step(st)) == STORE_ROW) {
		int alias = (int)store_column_int(st, 0);
		int64_t did = store_column_int(st, 1);
		const char *local = m_col(st, 2);

		for (i = 0; i < im->n; i++)
			if (im->rows[i].did == did &&
			    str_eqs(&im->rows[i].local, local))
				break;
		/* a line's user is checked before its alias, as adduser does */
		if (i < im->n && ((int)i < first || first < 0 ||
				  ((int)i == first && !alias))) {
			first = (int)i;
			*alias_r = alias;
		}
	}
	if (rc != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	return first;
}

/* insert_rows - the batch's users, in one statement */
static void insert_rows(struct vctx *c, struct imp *im, struct store_stmt *st)
{
	int64_t now = (int64_t)time(NULL);
	unsigned i;
	int r;

	for (i = 0; i < im->n; i++) {
		struct row *w = &im->rows[i];
		int p = (int)(9 * i);

		store_bind_int(st, p + 1, w->did);
		store_bind_text(st, p + 2, w->local.s);
		store_bind_text(st, p + 3, w->hash.s);
		if (w->cram.len)
			store_bind_text(st, p + 4, w->cram.s);
		else
			store_bind_null(st, p + 4);
		store_bind_int(st, p + 5, (int64_t)w->q.bytes);
		store_bind_int(st, p + 6, (int64_t)w->q.msgs);
		store_bind_text(st, p + 7, w->maildir.s);
		store_bind_int(st, p + 8, now);
		store_bind_int(st, p + 9, acct_bucket(w->local.s,
						      w->local.len));
	}
	r = store_step(st);
	/* the check and the lock leave no way to this but a bug */
	if (r == -EEXIST)
		vfail(EX_REFUSED, "lines %lu-%lu: a user appears twice; nothing "
		      "was imported", im->rows[0].lineno,
		      im->rows[im->n - 1].lineno);
	if (r != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
}

/* flush - the batch's database checks, each failure named by its line as
 * when they were asked a line at a time, then its INSERT */
static void flush(struct vctx *c, struct imp *im)
{
	struct store_stmt *check = im->check, *ins = im->ins;
	int alias = 0, i;

	if (!im->n)
		return;
	if (im->n < BATCH) {
		check = batch_prep(c, 1, im->n);
		ins = batch_prep(c, 0, im->n);
	}
	store_reset(check);
	i = first_taken(c, im, check, &alias);
	if (i >= 0 && alias)
		vfail(EX_REFUSED, "line %lu: %s@%s is an alias; nothing was "
		      "imported", im->rows[i].lineno, im->rows[i].local.s,
		      im->rows[i].domain.s);
	if (i >= 0)
		vfail(EX_REFUSED, "line %lu: user %s@%s already exists; nothing "
		      "was imported", im->rows[i].lineno, im->rows[i].local.s,
		      im->rows[i].domain.s);
	store_reset(ins);
	insert_rows(c, im, ins);
	if (check != im->check) {
		store_finalize(check);
		store_finalize(ins);
	}
	im->n = 0;
}

/* refuse - a line's own fault: the lines before it are checked first, so
 * that the first bad line of the file is the one named */
static _Noreturn void refuse(struct vctx *c, struct imp *im, const char *fmt,
			     ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void refuse(struct vctx *c, struct imp *im, const char *fmt,
			     ...)
{
	struct str m = STR_INIT;
	va_list ap;
	int r;

	flush(c, im);
	va_start(ap, fmt);
	r = str_vcatf(&m, fmt, ap);
	va_end(ap);
	vfail(EX_REFUSED, "%s", r ? "refused (out of memory)" : m.s);
}

/* line_domain - the id of the line's domain (asked once a run of lines
 * naming it), its default quota in im->last_q */
static int64_t line_domain(struct vctx *c, struct imp *im,
			   unsigned long lineno)
{
	int64_t did, alias_of = 0;

	if (im->last_did && str_eqs(&im->last_domain, im->domain.s))
		return im->last_did;
	did = m_domain_id(c, im->domain.s, &alias_of);
	if (!did || alias_of)
		refuse(c, im, "line %lu: domain %s %s; nothing was imported",
		       lineno, im->domain.s, did ? "is an alias domain" :
		       "does not exist");
	if (str_copys(&im->last_domain, im->domain.s))
		vfail(EX_TEMP, "out of memory");
	im->last_did = did;
	m_domain_quota(c, did, &im->last_q);
	m_pending(c, "cdb", im->domain.s);
	return did;
}

/* bad_secret - a line whose secret is refused: its user and alias
 * checks come first, as before its secret is looked at */
static void bad_secret(struct vctx *c, struct imp *im, int64_t did,
		       const char *secret, unsigned long lineno)
{
	const char *why = NULL;

	if (secret[0] == '$' && pw_hash_ok(secret) < 0)
		why = "hash";
	else if (secret[0] != '$')
		why = vpassword_problem(secret);
	if (!why)
		return;
	flush(c, im);
	if (m_user_id(c, did, im->local.s))
		vfail(EX_REFUSED, "line %lu: user %s@%s already exists; nothing "
		      "was imported", lineno, im->local.s, im->domain.s);
	if (m_is_alias(c, did, im->local.s))
		vfail(EX_REFUSED, "line %lu: %s@%s is an alias; nothing was "
		      "imported", lineno, im->local.s, im->domain.s);
	if (secret[0] == '$')
		vfail(EX_REFUSED, "line %lu: '%.3s...' is not a $y$ (yescrypt) "
		      "or $6$ (SHA-512) hash; nothing was imported", lineno,
		      secret);
	vfail(EX_REFUSED, "line %lu: %s; nothing was imported", lineno, why);
}

/* in_batch - whether the batch already has LOCAL in domain DID */
static int in_batch(const struct imp *im, int64_t did, const struct str *local)
{
	unsigned i;

	for (i = 0; i < im->n; i++)
		if (im->rows[i].did == did && im->rows[i].local.len ==
		    local->len && !memcmp(im->rows[i].local.s, local->s,
					  local->len))
			return 1;
	return 0;
}

/* import_line - validate one user (LINE, N bytes as read) and add it to
 * the batch */
static int import_line(struct vctx *c, struct imp *im, char *line, size_t n,
			unsigned long lineno)
{
	struct vimp_line l;
	char *secret;
	struct quota q;
	const char *why = "";
	struct row *w;
	int64_t did;

	switch (vimp_parse(line, n, &l, &im->local, &im->domain, &why)) {
	case VIMP_SKIP:
		return 0;
	case VIMP_NUL:
		refuse(c, im, "line %lu: contains a NUL byte; nothing "
		       "was imported", lineno);
	case VIMP_FIELDS:
		refuse(c, im, "line %lu: want 'USER@DOMAIN PASSWORD_OR_HASH "
		       "[QUOTA]'; nothing was imported", lineno);
	case VIMP_ADDR:
		refuse(c, im, "line %lu: invalid address '%s': it %s; nothing "
		       "was imported", lineno, l.addr, why);
	case VIMP_QUOTA:
		refuse(c, im, "line %lu: invalid quota '%s'; nothing was "
		       "imported", lineno, l.qs);
	default:
		break;
	}
	secret = l.secret;
	q = l.q;
	/* without a QUOTA field the user gets the domain's, as with adduser */
	did = line_domain(c, im, lineno);
	if (!l.qs)
		q = im->last_q;
	bad_secret(c, im, did, secret, lineno);
	/* the same user twice in a batch: the first goes in, so that the
	 * database's check names the second line, as it always has */
	if (in_batch(im, did, &im->local))
		flush(c, im);
	w = &im->rows[im->n];
	if (secret[0] == '$')
		m_make_secret(c, NULL, secret, &w->hash, &w->cram);
	else
		m_make_secret(c, secret, NULL, &w->hash, &w->cram);
	w->lineno = lineno;
	w->did = did;
	w->q = q;
	w->maildir.len = 0;
	if (str_copyb(&w->local, im->local.s, im->local.len) ||
	    str_copyb(&w->domain, im->domain.s, im->domain.len) ||
	    str_catf(&w->maildir, "domains/%s/%s/Maildir", im->domain.s,
		     im->local.s))
		vfail(EX_TEMP, "out of memory");
	if (str_catb(&im->dirs, w->maildir.s, w->maildir.len + 1) ||
	    str_catf(&im->dirs, "%llu", (unsigned long long)q.bytes) ||
	    str_catc(&im->dirs, 0) ||
	    str_catf(&im->dirs, "%llu", (unsigned long long)q.msgs) ||
	    str_catc(&im->dirs, 0))
		vfail(EX_TEMP, "out of memory");
	if (++im->n == BATCH)
		flush(c, im);
	return 1;
}

/* make_maildirs - worker w of n creates every n-th Maildir of the list */
static int make_maildirs(struct vctx *c, const struct str *dirs, unsigned w,
			 unsigned n)
{
	size_t i = 0;
	unsigned k = 0;

	while (i < dirs->len) {
		const char *md = dirs->s + i;
		const char *qb = md + strlen(md) + 1;
		const char *qm = qb + strlen(qb) + 1;
		struct quota q = {0, 0};
		int r;

		/* written by import_line() from a checked quota: always digits */
		(void)num_parse(qb, UINT64_MAX, &q.bytes);
		(void)num_parse(qm, UINT64_MAX, &q.msgs);
		i = (size_t)(qm - dirs->s) + strlen(qm) + 1;
		if (k++ % n != w)
			continue;
		r = m_make_maildir(c, md, &q, 0);
		if (r < 0) {
			msg_warn("cannot create %s/%s: %s; nothing was imported",
				 c->root, md, msg_err(r));
			return r;
		}
	}
	return 0;
}

/* make_all_maildirs - run the workers and wait for every one of them */
static void make_all_maildirs(struct vctx *c, const struct str *dirs)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (unsigned)ncpu, w;
	int failed = 0, status;

	fflush(NULL);
	for (w = 0; w < n; w++) {
		pid_t pid = fork();

		if (pid < 0)
			vfail(EX_TEMP, "cannot fork: %s", strerror(errno));
		/* _exit: the child owns nothing the parent must flush */
		if (pid == 0)
			_exit(make_maildirs(c, dirs, w, n) < 0 ? EX_TEMP : 0);
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	if (failed)
		vfail(EX_TEMP, "creating the mailboxes failed; nothing was "
		      "imported");
}

/* imp_free - everything the import held */
static void imp_free(struct imp *im)
{
	unsigned i;

	for (i = 0; i < BATCH; i++) {
		str_free(&im->rows[i].local);
		str_free(&im->rows[i].domain);
		str_free(&im->rows[i].hash);
		str_free(&im->rows[i].cram);
		str_free(&im->rows[i].maildir);
	}
	store_finalize(im->check);
	store_finalize(im->ins);
	str_free(&im->local);
	str_free(&im->domain);
	str_free(&im->last_domain);
	str_free(&im->dirs);
	free(im);
}

/* m_import - every line of FILE ("-": standard input), or none of them */
unsigned long m_import(struct vctx *c, const char *file)
{
	struct imp *im = calloc(1, sizeof *im);
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0, users = 0;

	if (!im)
		vfail(EX_TEMP, "out of memory");
	if (!f)
		vfail(EX_REFUSED, "cannot open %s: %s", file, strerror(errno));
	im->check = batch_prep(c, 1, BATCH);
	im->ins = batch_prep(c, 0, BATCH);
	m_bulk(c->db, 1);
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		users += (unsigned long)import_line(c, im, line, (size_t)n,
						    lineno);
	}
	if (ferror(f))
		vfail(EX_TEMP, "cannot read %s: %s", file, strerror(errno));
	flush(c, im);
	m_bulk(c->db, 0);
	free(line);
	if (f != stdin)
		fclose(f);
	make_all_maildirs(c, &im->dirs);
	/* one flush of every new directory instead of an fsync each */
	m_syncfs(c, "");
	imp_free(im);
	return users;
}
