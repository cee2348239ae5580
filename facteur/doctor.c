/*
 * doctor - `facteur doctor`: check a root, one line per check.
 *
 * Each check is a small function in the table at the end (the table
 * and Maildir checks are in doctor_tables.c and doctor_walk.c). It
 * appends its problems to a report with say() ("what; how to fix",
 * joined by "; "), and with --fix what it did with did(), and returns
 * OK, WARN or FAIL; the report is printed as a line of text or, with
 * --json, as an element of one JSON array, from the same fields. Started as root, doctor first becomes the
 * mail user, so that it sees the root as the services will (a file only
 * root can read is a failure) and creates nothing as root (opening the
 * database may make its -wal and -shm files). Problem texts are best
 * effort: without memory for one the check still reports its verdict.
 *
 * The services check is in two halves for the same reason: what only
 * root can see (the programs in a directory the mail user cannot enter,
 * their owners) is looked at before the drop, and whether the mail user
 * can execute them after it, with access(2) under exactly the identity
 * that `facteur run` gives each service (priv_drop), so that a service
 * that could not start is reported before `facteur run` is tried.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "ctl.h"
#include "doctor.h"
#include "facteur.h"
#include "json.h"
#include "listen.h"
#include "msg.h"
#include "name.h"
#include "priv.h"
#include "schema.h"
#include "store.h"

/* uid and gid of nobody where the passwd file has no such name */
#define NOBODY 65534

/* the separator say() puts between a problem and its fix: a control
 * byte, which no format string here holds */
#define SEP '\037'

/* fmt_split - FMT with its first "; " made SEP, in out */
static int fmt_split(struct str *out, const char *fmt)
{
	const char *semi = strstr(fmt, "; ");

	if (!semi)
		return str_copys(out, fmt);
	if (str_copyb(out, fmt, (size_t)(semi - fmt)) < 0 ||
	    str_catc(out, SEP) < 0)
		return -ENOMEM;
	return str_cats(out, semi + 2);
}

/* join - append s (n bytes) to a "; "-joined list */
static void join(struct str *list, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (list->len)
		(void)str_cats(list, "; ");
	(void)str_catb(list, s, n);
}

/* say - append one problem to the check's report, its text line and
 * the two JSON fields from the same formatted text */
int say(struct report *p, int level, const char *fmt, ...)
{
	struct str f = STR_INIT, t = STR_INIT;
	const char *sep;
	va_list ap;
	int r;

	r = fmt_split(&f, fmt);
	va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	if (r == 0)
		r = str_vcatf(&t, f.s, ap);
#pragma GCC diagnostic pop
	va_end(ap);
	if (r == 0) {
		sep = memchr(t.s, SEP, t.len);
		join(&p->what, t.s, sep ? (size_t)(sep - t.s) : t.len);
		if (sep)
			join(&p->fix, sep + 1, t.len - (size_t)(sep + 1 - t.s));
		if (p->line.len)
			(void)str_cats(&p->line, "; ");
		(void)str_catb(&p->line, t.s, sep ? (size_t)(sep - t.s) : t.len);
		if (sep)
			(void)str_catf(&p->line, "; %s", sep + 1);
	}
	str_free(&f);
	str_free(&t);
	return level;
}

/* did - one thing --fix did, for its own output line */
void did(struct report *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)str_vcatf(&p->done, fmt, ap);
	va_end(ap);
	(void)str_catc(&p->done, '\n');
}

/* next_row - step ST while *RC (the prepare's result, then the step's)
 * says there may be a row; 1 when there is one */
int next_row(struct store_stmt *st, int *rc)
{
	if (*rc == 0 || *rc == STORE_ROW)
		*rc = store_step(st);
	return *rc == STORE_ROW;
}

/* beside_run - FN(ARG) on a thread of its own, else here and now */
void beside_run(struct beside_thread *t, void *(*fn)(void *), void *arg)
{
	if (pthread_create(&t->thread, NULL, fn, arg) != 0)
		(void)fn(arg);
	else
		t->threaded = 1;
}

/* beside_end - the thread's work is over: joining will not wait */
void beside_end(struct beside_thread *t)
{
	atomic_store(&t->done, 1);
}

/* beside_ended - beside_end was called */
int beside_ended(struct beside_thread *t)
{
	return atomic_load(&t->done);
}

/* beside_join - wait for the thread, if there is one */
void beside_join(struct beside_thread *t)
{
	if (t->threaded)
		(void)pthread_join(t->thread, NULL);
	t->threaded = 0;
}

/* report_cat - append what src says to dst */
static void report_cat(struct report *dst, const struct report *src)
{
	join(&dst->what, src->what.s, src->what.len);
	join(&dst->fix, src->fix.s, src->fix.len);
	join(&dst->line, src->line.s, src->line.len);
	(void)str_catb(&dst->done, src->done.s, src->done.len);
}

void report_reset(struct report *p)
{
	p->line.len = p->what.len = p->fix.len = p->done.len = 0;
}

void report_free(struct report *p)
{
	str_free(&p->line);
	str_free(&p->what);
	str_free(&p->fix);
	str_free(&p->done);
}

/* max - the worse of two verdicts */
static int max(int a, int b)
{
	return a > b ? a : b;
}

/* at - ROOT/NAME in the scratch string */
static const char *at(struct doctor *d, const char *name)
{
	d->path.len = 0;
	if (str_catf(&d->path, "%s/%s", d->root, name) < 0)
		return d->root;
	return d->path.s;
}

/* fixed_top - --fix: domains/ itself made 0700 like everything below it
 * (doctor_walk.c), by the same careful chmod; the other directories of
 * the layout are root's to set (facteur init), so only reported */
static int fixed_top(struct doctor *d, struct report *p, const char *rel,
		     const struct stat *st)
{
	int rootfd, r;

	if (!d->fix || strcmp(rel, "domains") != 0)
		return 0;
	rootfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return 0;
	r = fix_mode(d, p, rootfd, rel, rel, st, 0700);
	(void)close(rootfd);
	return r == 0;
}

/* check_layout - every directory there, real, and no wider than it must */
static int check_layout(struct doctor *d, struct report *p)
{
	const char *trig;
	struct stat st;
	size_t i;
	int v = OK;

	if (lstat(d->root, &st) < 0 || !S_ISDIR(st.st_mode))
		return say(p, FAIL, "%s is not a directory; make a root with "
			   "facteur init --root %s", d->root, d->root);
	if (st.st_mode & 022)
		v = say(p, FAIL, "%s is writable by others; run chmod go-w %s",
			d->root, d->root);
	if (access(d->root, X_OK) < 0)
		v = say(p, FAIL, "the mail user cannot enter %s; run chmod "
			"755 %s", d->root, d->root);
	for (i = 0; i < layout_count; i++) {
		const char *path = at(d, layout_dirs[i].path);
		mode_t want = layout_dirs[i].mode, got;

		if (lstat(path, &st) < 0) {
			v = say(p, FAIL, "%s is missing (%s); run mkdir -m "
				"%o %s", path, strerror(errno), (unsigned)want,
				path);
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			v = say(p, FAIL, "%s is not a directory; move it away "
				"and run mkdir -m %o %s", path, (unsigned)want,
				path);
			continue;
		}
		got = st.st_mode & 07777;
		/* mail and passwords: nobody but the mail user may look */
		if (want == 0700 && got != 0700) {
			if (!fixed_top(d, p, layout_dirs[i].path, &st))
				v = say(p, FAIL, "%s is mode %04o; run chmod "
					"700 %s", path, (unsigned)got, path);
		}
		/* drop/: open to all for writing, so only with the sticky
		 * bit and without read, exactly */
		else if (want & S_ISVTX) {
			if (got != want)
				v = say(p, FAIL, "%s is mode %04o; run chmod "
					"%o %s", path, (unsigned)got,
					(unsigned)want, path);
		} else if (got & 022)
			v = say(p, FAIL, "%s is writable by others; run chmod "
				"go-w %s", path, path);
	}
	trig = at(d, "drop/trigger");
	if (lstat(trig, &st) < 0 || !S_ISFIFO(st.st_mode))
		v = max(v, say(p, WARN, "%s is missing or not a FIFO; local "
			       "users' mail waits until mta-send is "
			       "restarted; move it away and run mkfifo -m "
			       "622 %s", trig, trig));
	return v;
}

/* check_database - it opens and its schema is current (db_open migrates) */
static int check_database(struct doctor *d, struct report *p)
{
	const char *path = at(d, "db/accounts.sqlite");
	int last = schema_migrations[schema_migration_count - 1].version;
	char *conninfo = NULL;
	struct stat st;
	int r, v;

	/* a PostgreSQL root has no SQLite file to want */
	r = store_accountdb(d->root, &conninfo) == 0 && !conninfo;
	free(conninfo);
	if (r && lstat(path, &st) < 0)
		return say(p, FAIL, "%s: %s; restore it from a backup", path,
			   strerror(errno));
	r = store_open(d->root, 0, &d->db);
	if (r == -ECONNREFUSED)
		return say(p, FAIL, "cannot reach the account database named "
			   "by control/accountdb (%s); start it or fix the "
			   "string", store_open_error());
	if (r == -EPROTO)
		return say(p, FAIL, "%s has a newer schema than this program; "
			   "install the newer Facteur", path);
	if (r < 0)
		return say(p, FAIL, "cannot open %s: %s; check its owner and "
			   "mode, or restore it", path, msg_err(r));
	/* PostgreSQL's migrations are numbered on their own (schema/pg/) */
	if (store_kind(d->db) == STORE_PG) {
		path = "the PostgreSQL account database";
		last = schema_pg_migrations[schema_pg_migration_count - 1]
		       .version;
	}
	v = store_version(d->db);
	if (v != last)
		return say(p, FAIL, "%s is at schema %d, not %d; run vadmin "
			   "rebuild to migrate it", path, v, last);
	return OK;
}

/* check_listen - every listen address answers (doctor_net.c); their
 * syntax is in the control check */
static int check_listen(struct doctor *d, struct report *p)
{
	return check_listen_greet(d, p);
}

/* check_control - the control files that must parse (doctor_ctl.c,
 * which checks the listen lines too) */
static int check_control(struct doctor *d, struct report *p)
{
	return check_control_files(d, p);
}

/* check_tls - the certificate and key (doctor_net.c) */
static int check_tls(struct doctor *d, struct report *p)
{
	return check_tls_files(d, p);
}

/* check_mailuser - as root: the user exists and owns the writable dirs */
static int check_mailuser(struct doctor *d, struct report *p)
{
	static const char *const owned[] = {
		"domains", "queue", "db", "open-smtp", "log", "drop",
	};
	struct stat st;
	size_t i;
	int v = OK;

	if (!d->as_root)
		return OK;
	if (d->user_r == -ENOENT)
		return say(p, FAIL, "user %s (control/mailuser) does not "
			   "exist; run useradd --system --user-group "
			   "--no-create-home %s", d->user.s, d->user.s);
	if (d->user_r < 0)
		return say(p, FAIL, "%s (the other checks ran as nobody)",
			   priv_error(d->user_r));
	for (i = 0; i < sizeof owned / sizeof owned[0]; i++) {
		const char *path = at(d, owned[i]);

		if (lstat(path, &st) == 0 && st.st_uid != d->uid)
			v = say(p, FAIL, "%s belongs to uid %lu, not %s; run "
				"chown -R %s: %s", path,
				(unsigned long)st.st_uid, d->user.s, d->user.s,
				path);
	}
	return v;
}

/* check_pending - file work that a committed vadmin change still owes */
static int check_pending(struct doctor *d, struct report *p)
{
	struct store_stmt *st = NULL;
	int rc, n = -1;

	if (!d->db)
		return say(p, WARN, "not checked: the database did not open");
	rc = store_prepare(d->db, "SELECT count(*) FROM pending", &st);
	if (rc == 0 && store_step(st) == STORE_ROW)
		n = store_column_int(st, 0);
	if (n < 0)
		(void)say(p, FAIL, "cannot read the pending table: %s",
			  store_errmsg(d->db));
	store_finalize(st);
	if (n < 0)
		return FAIL;
	if (n > 0)
		return say(p, WARN, "an interrupted vadmin change is "
			   "unfinished; run vadmin rebuild");
	return OK;
}

/* check_log - the log directory and current file can be written */
static int check_log(struct doctor *d, struct report *p)
{
	const char *dir = at(d, "log");
	struct stat st;

	if (access(dir, W_OK | X_OK) < 0)
		return say(p, FAIL, "cannot write in %s: %s; give it to the "
			   "mail user", dir, strerror(errno));
	dir = at(d, "log/current");
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? OK : say(p, FAIL, "%s: %s", dir,
						   strerror(errno));
	if (!S_ISREG(st.st_mode))
		return say(p, FAIL, "%s is not a regular file; move it away",
			   dir);
	if (access(dir, W_OK) < 0)
		return say(p, FAIL, "cannot write %s: %s; give it to the mail "
			   "user", dir, strerror(errno));
	return OK;
}

/* services_seen - before the drop: the directory and programs that
 * facteur run would use, by run's own rules (run_service, run_trusted) */
static void services_seen(struct doctor *d)
{
	struct report *p = &d->svc_p;
	struct stat st;
	const char *name, *path;
	size_t i;
	/* "DIR/": the directory facteur run takes the services from */
	int r = args_sibling(&d->bindir, "");

	if (r == 0 && d->bindir.len > 1)
		str_trunc(&d->bindir, d->bindir.len - 1);
	if (r < 0) {
		d->svc_v = say(p, WARN, "cannot find the directory of this "
			       "program: %s", msg_err(r));
		return;
	}
	if (stat(d->bindir.s, &st) < 0 || !run_trusted(&st)) {
		d->svc_v = say(p, FAIL, "%s is not root's alone, so facteur "
			       "run starts no service from it; run chown root "
			       "%s && chmod go-w %s", d->bindir.s, d->bindir.s,
			       d->bindir.s);
		return;
	}
	for (i = 0; (name = run_service(i)) != NULL; i++) {
		d->path.len = 0;
		if (str_catf(&d->path, "%s/%s", d->bindir.s, name) < 0)
			continue;
		path = d->path.s;
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			d->svc_v = max(d->svc_v, say(p, WARN, "%s is missing, "
				"so facteur run will not start %s; run make "
				"install", path, name));
		else if (!run_trusted(&st))
			d->svc_v = say(p, FAIL, "%s is not root's alone, so "
				       "facteur run will not start it; run "
				       "chown root %s && chmod go-w %s", path,
				       path, path);
		else if (i < sizeof d->svc_found * CHAR_BIT)
			d->svc_found |= 1UL << i;
	}
}

/* blocker - the first directory of PATH that this process cannot enter,
 * in the scratch string; NULL when every one can be entered */
static const char *blocker(struct doctor *d, const char *path)
{
	const char *slash;

	for (slash = strchr(path + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		d->path.len = 0;
		if (str_catb(&d->path, path, (size_t)(slash - path)) < 0)
			return NULL;
		if (access(d->path.s, X_OK) < 0)
			return d->path.s;
	}
	return NULL;
}

/* cannot_run - one service that its user cannot execute, and the fix */
static int cannot_run(struct doctor *d, struct report *p, const char *path,
		      const char *user, int e)
{
	const char *dir = blocker(d, path);

	if (dir)
		return say(p, FAIL, "cannot execute %s as %s: %s; %s cannot "
			   "enter %s: run chmod o+x %s, or install Facteur "
			   "where every user can reach it (make install "
			   "PREFIX=/usr/local)", path, user, strerror(e), user,
			   dir, dir);
	return say(p, FAIL, "cannot execute %s as %s: %s; run chmod 755 %s",
		   path, user, strerror(e), path);
}

/* check_services - every service facteur run starts can be executed by
 * the user it runs as (this process, after become_mailuser) */
static int check_services(struct doctor *d, struct report *p)
{
	struct str path = STR_INIT, user = STR_INIT;
	struct passwd *pw;
	const char *name;
	size_t i;
	int v = d->svc_v;

	report_cat(p, &d->svc_p);
	if (d->as_root && d->user_r < 0)
		return max(v, say(p, WARN, "not checked: no usable mail user "
				  "(see the mailuser check)"));
	pw = d->as_root ? NULL : getpwuid(geteuid());
	if (d->as_root)
		(void)str_copyb(&user, d->user.s, d->user.len);
	else if (pw)
		(void)str_copys(&user, pw->pw_name);
	else
		(void)str_catf(&user, "uid %lu", (unsigned long)geteuid());
	for (i = 0; (name = run_service(i)) != NULL; i++) {
		if (i >= sizeof d->svc_found * CHAR_BIT ||
		    !(d->svc_found >> i & 1))
			continue;
		path.len = 0;
		if (str_catf(&path, "%s/%s", d->bindir.s, name) < 0)
			continue;
		if (access(path.s, X_OK) < 0)
			v = cannot_run(d, p, path.s, str_cstr(&user), errno);
	}
	str_free(&path);
	str_free(&user);
	return v;
}

/* A check that waits on the network runs beside the others: begun
 * right after the database check (which opens what it reads), ended
 * when its line is due. forks: it starts children, so it is begun
 * before any thread of doctor's exists (a child forked from a threaded
 * process may find a lock held by another thread, e.g. the allocator's
 * under a sanitizer); the others begin after it. */
struct beside {
	int forks;
	int (*start)(struct doctor *d, struct report *p, void **job_r);
	int (*done)(void *job);		/* the finish would not wait */
	int (*finish)(void *job, struct report *p);	/* the verdict */
};

static const struct beside mx_beside = {
	0, check_mx_start, check_mx_done, check_mx_finish,
};
static const struct beside dkim_beside = {
	0, check_dkim_start, check_dkim_done, check_dkim_finish,
};
static const struct beside queue_beside = {
	1, check_queue_start, check_queue_done, check_queue_finish,
};

static const struct {
	const char *name;
	int (*fn)(struct doctor *d, struct report *problem);
	const struct beside *beside;	/* instead of fn */
} checks[] = {
	{"layout", check_layout, NULL},
	{"database", check_database, NULL},
	{"control", check_control, NULL},
	{"tls", check_tls, NULL},
	{"listen", check_listen, NULL},
	{"mx", NULL, &mx_beside},
	{"dkim", NULL, &dkim_beside},
	{"srs", check_srs, NULL},
	{"mailuser", check_mailuser, NULL},
	{"services", check_services, NULL},
	{"cdbs", check_cdbs, NULL},
	{"domains", check_domains, NULL},
	{"cdb-age", check_cdb_age, NULL},
	{"passwords", check_passwords, NULL},
	{"pending", check_pending, NULL},
	{"maildirs", check_maildirs, NULL},
	{"log", check_log, NULL},
	{"queue", NULL, &queue_beside},
	{"relay", check_relay, NULL},
};

#define NCHECKS (sizeof checks / sizeof checks[0])

enum { NOT_YET, BEGUN, JUDGED };

/* one doctor run: every check's report and state, printed in order */
struct run {
	struct doctor *d;
	struct report p[NCHECKS];
	int v[NCHECKS];
	int state[NCHECKS];
	void *job[NCHECKS];
	int64_t ms[NCHECKS];	/* this thread's time in the check */
	size_t printed;		/* checks whose lines are out */
	int json, timing, failed;
};

static const char *const level_names[] = {"ok", "warn", "FAIL"};

/* put_text - S (N bytes) and a newline, a control byte as '?': the
 * paths below domains/ are any bytes, and the report goes to terminals */
static void put_text(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		putchar((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' :
			s[i]);
	putchar('\n');
}

/* emit_text - the "fixed" lines of one check, then its line */
static void emit_text(const char *name, int v, const struct report *p)
{
	const char *s = p->done.s, *end = s + p->done.len, *nl;

	for (; s && s < end && (nl = memchr(s, '\n', (size_t)(end - s)));
	     s = nl + 1) {
		printf("fixed %s: ", name);
		put_text(s, (size_t)(nl - s));
	}
	if (v == OK)
		printf("ok %s\n", name);
	else if (p->line.len) {
		printf("%s %s: ", level_names[v], name);
		put_text(p->line.s, p->line.len);
	} else
		printf("%s %s: out of memory\n", level_names[v], name);
}

/* emit_json - one element of the array: the same report as emit_text */
static void emit_json(const char *name, int v, const struct report *p,
		      int first)
{
	const char *s = p->done.s, *end = s + p->done.len, *nl;
	int n = 0;

	printf("%s{\"check\": ", first ? "[\n" : ",\n");
	json_put_str(name, strlen(name));
	printf(", \"status\": ");
	json_put_str(level_names[v], strlen(level_names[v]));
	printf(", \"message\": ");
	json_put_str(p->what.s ? p->what.s : "", p->what.len);
	printf(", \"fix\": ");
	json_put_str(p->fix.s ? p->fix.s : "", p->fix.len);
	printf(", \"fixed\": [");
	for (; s && s < end && (nl = memchr(s, '\n', (size_t)(end - s)));
	     s = nl + 1, n++) {
		printf("%s", n ? ", " : "");
		json_put_str(s, (size_t)(nl - s));
	}
	printf("]}");
}

/* become_mailuser - as root, take the mail user's identity for good;
 * when control/mailuser names no usable user, nobody's: the checks open
 * files the mail user can plant (db/, a hard link as accounts.sqlite-shm
 * that SQLite would rewrite and chown), so they never run as root */
static void become_mailuser(struct doctor *d)
{
	struct passwd *pw;
	int r;

	d->as_root = geteuid() == 0;
	if (ctl_get(d->root, "mailuser", MAILUSER_DEFAULT, &d->user) < 0 &&
	    str_copys(&d->user, MAILUSER_DEFAULT) < 0)
		msg_die(EX_TEMP, "out of memory");
	services_seen(d);
	if (!d->as_root)
		return;
	d->user_r = priv_mailuser(d->root, &d->uid, &d->gid);
	if (d->user_r < 0) {
		errno = 0;
		pw = getpwnam("nobody");
		r = priv_drop(pw ? pw->pw_uid : NOBODY, pw ? pw->pw_gid : NOBODY);
		if (r < 0)
			msg_die(EX_TEMP, "cannot become user nobody: %s",
				msg_err(r));
		return;
	}
	r = priv_drop(d->uid, d->gid);
	if (r < 0)
		msg_die(EX_TEMP, "cannot become user %s: %s", d->user.s,
			msg_err(r));
}

/* options - --json, --fix, --timing; the rest is a usage error */
static void options(struct doctor *d, int *json, int *timing, int argc,
		    char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*json = 1;
		else if (strcmp(argv[i], "--fix") == 0)
			d->fix = 1;
		else if (strcmp(argv[i], "--timing") == 0)
			*timing = 1;
		else
			usage_die("%s %s", argv[i][0] == '-' ?
				  "unknown option" : "unexpected argument",
				  argv[i]);
	}
}

/* begin_beside - start the checks that run beside the others, those
 * that fork first */
static void begin_beside(struct run *r)
{
	const struct beside *b;
	int64_t t0;
	size_t i;
	int pass;

	for (pass = 1; pass >= 0; pass--)
		for (i = 0; i < NCHECKS; i++) {
			b = checks[i].beside;
			if (!b || b->forks != pass)
				continue;
			t0 = now_ms();
			(void)b->start(r->d, &r->p[i], &r->job[i]);
			r->ms[i] += now_ms() - t0;
			r->state[i] = BEGUN;
		}
}

/* judged - check I has its verdict, taken now from a check begun beside
 * if WAIT or if that does not wait */
static int judged(struct run *r, size_t i, int wait)
{
	const struct beside *b = checks[i].beside;
	int64_t t0;

	if (r->state[i] == BEGUN && (wait || b->done(r->job[i]))) {
		t0 = now_ms();
		r->v[i] = b->finish(r->job[i], &r->p[i]);
		r->ms[i] += now_ms() - t0;
		r->job[i] = NULL;
		r->state[i] = JUDGED;
	}
	return r->state[i] == JUDGED;
}

/* flush - print the lines of the checks judged, in the table's order,
 * up to the first that is not (waiting for it if WAIT) */
static void flush(struct run *r, int wait)
{
	size_t i;

	for (; r->printed < NCHECKS && judged(r, r->printed, wait);
	     r->printed++) {
		i = r->printed;
		if (r->timing)
			msg_warn("timing %s %lld", checks[i].name,
				 (long long)r->ms[i]);
		if (r->json)
			emit_json(checks[i].name, r->v[i], &r->p[i], i == 0);
		else
			emit_text(checks[i].name, r->v[i], &r->p[i]);
		r->failed |= r->v[i] == FAIL;
		report_free(&r->p[i]);
	}
}

/* cmd_doctor - facteur doctor [--json] [--fix] [--timing]; --timing
 * (for bench/doctor_bench.py) puts each check's milliseconds on stderr,
 * so that the report on stdout stays what it is: for a check run beside
 * the others, the time the others waited for it */
int cmd_doctor(const char *root, int argc, char **argv)
{
	struct doctor d = {.root = root, .user = STR_INIT, .path = STR_INIT,
			   .bindir = STR_INIT, .svc_p = REPORT_INIT};
	struct run r = {.d = &d};
	int64_t t0;
	size_t i;

	options(&d, &r.json, &r.timing, argc, argv);
	become_mailuser(&d);
	for (i = 0; i < NCHECKS; i++) {
		if (checks[i].beside)
			continue;
		t0 = now_ms();
		r.v[i] = checks[i].fn(&d, &r.p[i]);
		r.ms[i] = now_ms() - t0;
		r.state[i] = JUDGED;
		if (checks[i].fn == check_database)
			begin_beside(&r);
		flush(&r, 0);
	}
	flush(&r, 1);
	if (r.json)
		printf("\n]\n");
	if (d.db && store_close(d.db) != 0)
		msg_warn("cannot close the database: %s", store_errmsg(d.db));
	report_free(&d.svc_p);
	str_free(&d.user);
	str_free(&d.path);
	str_free(&d.bindir);
	if (fflush(stdout) == EOF || ferror(stdout))
		msg_die(EX_TEMP, "cannot write the report: %s",
			strerror(errno));
	return r.failed ? EX_REFUSED : EX_DONE;
}
