/*
 * doctor_tables - the checks of the generated tables against their
 * sources: `domains` (every hosted domain of the database is in
 * rcpthosts.cdb and assign.cdb, an alias pointing at its real domain)
 * and `cdb-age` (the tables are not older than what they are made
 * from; on a PostgreSQL root, this host's watcher has applied the
 * shared change log), and the one repair --fix makes of them: running the vadmin
 * (or mta-rules) beside this program, never writing a table itself, so
 * that one program only ever makes them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "args.h"
#include "cdbx.h"
#include "doctor.h"
#include "msg.h"

/* what --fix may run: bit NEED_VADMIN vadmin rebuild, NEED_RULES
 * mta-rules */
#define NEED_VADMIN 1
#define NEED_RULES 2

/* the database may be written this long after the last table vadmin
 * made: vadmin clears its pending rows after the files (docs/vadmin.md) */
#define SLACK 60

/* the domains reported by name before only a count is given */
#define NAMED 5

/* run_sibling - run PROG (beside this program) --root ROOT [ARG] and
 * wait; its output goes to our stderr, so that --json stays JSON */
static int run_sibling(struct doctor *d, struct report *p, const char *prog,
		       const char *arg)
{
	struct str path = STR_INIT;
	char *argv[5];
	int st, r = args_sibling(&path, prog);
	pid_t pid;

	if (r < 0) {
		str_free(&path);
		(void)say(p, FAIL, "cannot find %s beside this program: %s",
			  prog, msg_err(r));
		return r;
	}
	argv[0] = path.s;
	argv[1] = (char *)"--root";
	argv[2] = (char *)d->root;
	argv[3] = (char *)arg;
	argv[4] = NULL;
	(void)fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (dup2(2, 1) < 0)
			_exit(127);
		execv(path.s, argv);
		_exit(127);
	}
	r = pid < 0 ? -errno : 0;
	while (r == 0 && waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			r = -errno;
	if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		r = -EIO;
	if (r == 0)
		did(p, "ran %s --root %s%s%s", path.s, d->root, arg ? " " : "",
		    arg ? arg : "");
	else
		(void)say(p, FAIL, "%s --root %s%s%s failed (%s); run it by "
			  "hand and read its message", path.s, d->root,
			  arg ? " " : "", arg ? arg : "", msg_err(r));
	str_free(&path);
	return r;
}

/* regen - --fix: the programs NEED calls for, each once a doctor run */
static int regen(struct doctor *d, struct report *p, int need)
{
	int r = 0;

	need &= ~d->regen;
	if (need & NEED_VADMIN && (r = run_sibling(d, p, "vadmin",
						   "rebuild")) == 0)
		d->regen |= NEED_VADMIN;
	if (r == 0 && need & NEED_RULES &&
	    (r = run_sibling(d, p, "mta-rules", NULL)) == 0)
		d->regen |= NEED_RULES;
	return r;
}

/* rescan - a check's scan, and with --fix its regeneration and a second
 * scan, whose verdict stands (what was fixed is not reported again) */
static int rescan(struct doctor *d, struct report *p,
		  int (*scan)(struct doctor *, struct report *, int *))
{
	int need = 0, v = scan(d, p, &need);

	if (v == OK || !d->fix || !need || regen(d, p, need) < 0)
		return v;
	p->line.len = p->what.len = p->fix.len = 0;
	need = 0;
	return scan(d, p, &need);
}

/* check_cdbs - the global tables that every lookup starts from */
static int cdbs_scan(struct doctor *d, struct report *p, int *need)
{
	static const char *const names[] = {
		"control/assign.cdb", "control/rcpthosts.cdb",
	};
	struct cdbr c;
	size_t i;
	int r, v = OK;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		d->path.len = 0;
		r = str_catf(&d->path, "%s/%s", d->root, names[i]);
		if (r == 0)
			r = cdbr_open(&c, d->path.s);
		if (r < 0)
			v = say(p, FAIL, "cannot open %s: %s; run vadmin "
				"rebuild", str_cstr(&d->path), msg_err(r));
		if (r < 0)
			*need |= NEED_VADMIN;
		else
			cdbr_close(&c);
	}
	return v;
}

int check_cdbs(struct doctor *d, struct report *p)
{
	return rescan(d, p, cdbs_scan);
}

/* why - the reason a lookup failed, when it is not the plain absence
 * of the key: " (the file is missing)", " (ERROR)", in S */
static const char *why(struct str *s, int r)
{
	s->len = 0;
	if (r == -ENODATA)
		(void)str_cats(s, " (the file is missing)");
	else if (r != -ENOENT)
		(void)str_catf(s, " (%s)", msg_err(r));
	return str_cstr(s);
}

/* listed - is DOMAIN in rcpthosts.cdb and, naming REAL, in assign.cdb?
 * the problem said, when not */
static int listed(struct doctor *d, struct report *p, const char *domain,
		  const char *real)
{
	struct acct_domain ad = {STR_INIT, STR_INIT, 0};
	struct str path = STR_INIT, v = STR_INIT;
	int r, bad = OK;

	r = str_catf(&path, "%s/control/rcpthosts.cdb", d->root);
	if (r == 0)
		r = cdbx_lookup(path.s, domain, strlen(domain), &v);
	if (r < 0)
		bad = say(p, FAIL, "%s is not in control/rcpthosts.cdb%s; "
			  "run vadmin rebuild", domain, why(&v, r));
	r = acct_domain(d->root, domain, &ad);
	if (r < 0)
		bad = say(p, FAIL, "%s is not in control/assign.cdb%s; run "
			  "vadmin rebuild", domain, why(&v, r));
	else if (!str_eqs(&ad.real, real))
		bad = say(p, FAIL, "control/assign.cdb sends %s to %s, not %s; "
			  "run vadmin rebuild", domain, str_cstr(&ad.real),
			  real);
	acct_domain_free(&ad);
	str_free(&path);
	str_free(&v);
	return bad;
}

/* domains_scan - every domain of the database against the two tables */
static int domains_scan(struct doctor *d, struct report *p, int *need)
{
	static const char sql[] =
		"SELECT a.name, r.name, a.alias_of IS NOT NULL, "
		"r.alias_of IS NOT NULL FROM domains a LEFT JOIN domains r "
		"ON r.id = coalesce(a.alias_of, a.id) ORDER BY a.name";
	struct store_stmt *st = NULL;
	int rc, v = OK, bad = 0;

	if (!d->db)
		return say(p, WARN, "not checked: the database did not open");
	rc = store_prepare(d->db, sql, &st);
	while (next_row(st, &rc)) {
		const char *name = (const char *)store_column_text(st, 0);
		const char *real = (const char *)store_column_text(st, 1);

		if (!name)
			continue;
		if (!real || store_column_int(st, 3)) {
			v = say(p, FAIL, "alias domain %s points at no real "
				"domain; remove it with vadmin deldomain %s and "
				"add it again with vadmin aliasdomain", name,
				name);
			continue;
		}
		if (bad < NAMED && listed(d, p, name, real) != OK)
			bad++, v = FAIL, *need |= NEED_VADMIN;
	}
	if (rc != STORE_DONE)
		v = say(p, FAIL, "cannot read the domains table: %s",
			store_errmsg(d->db));
	store_finalize(st);
	if (bad == NAMED)
		(void)say(p, FAIL, "there may be more; run vadmin check");
	return v;
}

int check_domains(struct doctor *d, struct report *p)
{
	return rescan(d, p, domains_scan);
}

/* mtime_at - DIR/NAME's modification time (a link's own); -errno */
static int mtime_at(int dfd, const char *name, struct timespec *t,
		    off_t *size)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*t = st.st_mtim;
	if (size)
		*size = st.st_size;
	return 0;
}

/* newer - a later than b */
static int newer(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec != b->tv_sec ? a->tv_sec > b->tv_sec :
		a->tv_nsec > b->tv_nsec;
}

/* newest_in - the newest *.cdb of the directory ROOT/DIR into *t */
static void newest_in(struct doctor *d, const char *dir, struct timespec *t)
{
	struct str path = STR_INIT;
	struct timespec m = {0, 0};
	struct dirent *e;
	DIR *dp = NULL;
	size_t n;

	if (str_catf(&path, "%s/%s", d->root, dir) == 0)
		dp = opendir(path.s);
	while (dp && (e = readdir(dp)) != NULL) {
		n = strlen(e->d_name);
		if (n > 4 && strcmp(e->d_name + n - 4, ".cdb") == 0 &&
		    mtime_at(dirfd(dp), e->d_name, &m, NULL) == 0 &&
		    newer(&m, t))
			*t = m;
	}
	if (dp)
		(void)closedir(dp);
	str_free(&path);
}

/* db_time - when the database last changed: the file, or its -wal when
 * that holds anything (opening the database, as doctor did, makes an
 * empty one) */
static int db_time(struct doctor *d, struct timespec *t)
{
	struct timespec w = {0, 0};
	off_t size = 0;
	int dfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (dfd < 0)
		return -errno;
	r = mtime_at(dfd, "db/accounts.sqlite", t, NULL);
	if (r == 0 && mtime_at(dfd, "db/accounts.sqlite-wal", &w, &size) == 0
	    && size > 0 && newer(&w, t))
		*t = w;
	(void)close(dfd);
	return r;
}

/* vadmin_age - the newest table vadmin made against the database: one
 * domain's change rewrites that domain's tables alone, so only the
 * newest of them tells whether vadmin saw the database's last change */
static int vadmin_age(struct doctor *d, struct report *p, int *need)
{
	struct timespec db = {0, 0}, t = {0, 0};
	int r = db_time(d, &db);

	if (r < 0)
		return say(p, WARN, "cannot read the time of "
			   "db/accounts.sqlite: %s", msg_err(r));
	newest_in(d, "control", &t);
	newest_in(d, "control/domains", &t);
	newest_in(d, "control/passwd", &t);
	if (db.tv_sec <= t.tv_sec + SLACK)
		return OK;
	*need |= NEED_VADMIN;
	if (t.tv_sec == 0 && t.tv_nsec == 0)
		return say(p, WARN, "vadmin made no table yet; run vadmin "
			   "rebuild");
	return say(p, WARN, "db/accounts.sqlite changed %lld s after the "
		   "newest table vadmin made, not by vadmin; run vadmin "
		   "rebuild", (long long)(db.tv_sec - t.tv_sec));
}

/* rules_age - relayrules.cdb is not older than relayrules */
static int rules_age(struct doctor *d, struct report *p, int *need)
{
	struct timespec src = {0, 0}, cdb = {0, 0};
	int dfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), v = OK;

	if (dfd < 0)
		return say(p, WARN, "cannot open %s: %s", d->root,
			   strerror(errno));
	if (mtime_at(dfd, "control/relayrules", &src, NULL) < 0)
		v = OK;		/* no rules file: the default, no table */
	else if (mtime_at(dfd, "control/relayrules.cdb", &cdb, NULL) < 0)
		v = say(p, WARN, "control/relayrules.cdb is missing; run "
			"mta-rules");
	else if (newer(&src, &cdb))
		v = say(p, WARN, "control/relayrules.cdb is older than "
			"control/relayrules; run mta-rules");
	if (v != OK)
		*need |= NEED_RULES;
	(void)close(dfd);
	return v;
}

/* log_value - one number of the change log's tables, -1 when unread */
static int64_t log_value(struct doctor *d, const char *sql)
{
	struct store_stmt *st = NULL;
	int64_t v = -1;
	int rc = store_prepare(d->db, sql, &st);

	if (next_row(st, &rc))
		v = store_column_int(st, 0);
	store_finalize(st);
	return v;
}

/* watch_age - a PostgreSQL root's tables follow the shared log through
 * its `vadmin watch`: the last change it applied (db/changes.seen)
 * against the log's last; a file's age says nothing there, as the
 * database is not a file of this host's */
static int watch_age(struct doctor *d, struct report *p)
{
	int64_t seen, last, pruned;
	int r;

	if (!d->db)
		return say(p, WARN, "not checked: the database did not open");
	last = log_value(d, "SELECT CASE WHEN is_called THEN last_value "
			 "ELSE 0 END FROM changes_id_seq");
	pruned = log_value(d, "SELECT upto FROM changes_pruned");
	if (last < 0 || pruned < 0)
		return say(p, WARN, "cannot read the change log: %s",
			   store_errmsg(d->db));
	r = store_seen(d->root, &seen);
	if (r == -ENOENT)
		return say(p, WARN, "vadmin watch has not brought this host's "
			   "tables up to the account database yet (no "
			   "db/changes.seen); start facteur run");
	if (r < 0)
		return say(p, WARN, "cannot read db/changes.seen: %s; remove it "
			   "so that vadmin watch regenerates every table",
			   msg_err(r));
	if (seen < pruned)
		return say(p, WARN, "the change log was pruned past this host's "
			   "mark (%lld, down more than 7 days?); vadmin watch "
			   "regenerates every table when it starts: start "
			   "facteur run", (long long)seen);
	if (seen < last)
		return say(p, WARN, "changes %lld to %lld of the account "
			   "database are not in this host's tables yet; is "
			   "vadmin watch running (facteur run)?",
			   (long long)seen + 1, (long long)last);
	return OK;
}

static int age_scan(struct doctor *d, struct report *p, int *need)
{
	int v = d->db && store_kind(d->db) == STORE_PG ? watch_age(d, p) :
		vadmin_age(d, p, need);
	int w = rules_age(d, p, need);

	return v > w ? v : w;
}

int check_cdb_age(struct doctor *d, struct report *p)
{
	return rescan(d, p, age_scan);
}

/* check_passwords - SPEC.md: MD5-crypt ($1$) hashes, which a move from
 * vpopmail keeps so that nobody's password changes, still log in; doctor
 * warns with their count so that those users are asked for a new one */
int check_passwords(struct doctor *d, struct report *p)
{
	static const char sql[] =
		"SELECT count(*) FROM users WHERE substr(hash, 1, 3) = '$1$'";
	struct store_stmt *st = NULL;
	long long n = 0;
	int rc;

	if (!d->db)
		return say(p, WARN, "not checked: the database did not open");
	rc = store_prepare(d->db, sql, &st);
	if (next_row(st, &rc))
		n = store_column_int(st, 0);
	store_finalize(st);
	if (rc != STORE_ROW && rc != STORE_DONE)
		return say(p, WARN, "cannot read the users table: %s",
			   store_errmsg(d->db));
	if (n)
		return say(p, WARN, "%lld user%s an MD5-crypt ($1$) password "
			   "hash, which a guesser breaks quickly; give each a "
			   "new password (vadmin passwd USER@DOMAIN), which "
			   "control/passwordscheme then hashes", n,
			   n == 1 ? " has" : "s have");
	return OK;
}
