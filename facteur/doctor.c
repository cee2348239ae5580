/*
 * doctor - `facteur doctor`: check a root, one line per check.
 *
 * Each check is a small function in the table at the end. It appends
 * its problems to a string ("what; how to fix", joined by "; ") and
 * returns OK, WARN or FAIL. Started as root, doctor first becomes the
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
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "args.h"
#include "cdbx.h"
#include "ctl.h"
#include "db.h"
#include "facteur.h"
#include "listen.h"
#include "msg.h"
#include "name.h"
#include "priv.h"
#include "schema.h"

/* uid and gid of nobody where the passwd file has no such name */
#define NOBODY 65534

enum { OK, WARN, FAIL };

struct doctor {
	const char *root;
	int as_root;		/* started as root */
	int user_r;		/* priv_mailuser()'s result, when as_root */
	uid_t uid;
	gid_t gid;
	struct str user;	/* control/mailuser */
	sqlite3 *db;		/* opened by the database check */
	struct str path;	/* scratch */
	struct str bindir;	/* where facteur run takes the services from */
	struct str svc_p;	/* services: what was seen before the drop */
	int svc_v;		/* and its verdict */
	unsigned long svc_found;	/* bit i: run_service(i) is a file */
};

/* say - append one problem to the check's line */
static int say(struct str *p, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int say(struct str *p, int level, const char *fmt, ...)
{
	va_list ap;

	if (p->len)
		(void)str_cats(p, "; ");
	va_start(ap, fmt);
	(void)str_vcatf(p, fmt, ap);
	va_end(ap);
	return level;
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

/* check_layout - every directory there, real, and no wider than it must */
static int check_layout(struct doctor *d, struct str *p)
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
		if (want == 0700 && got != 0700)
			v = say(p, FAIL, "%s is mode %04o; run chmod 700 %s",
				path, (unsigned)got, path);
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
static int check_database(struct doctor *d, struct str *p)
{
	const char *path = at(d, "db/accounts.sqlite");
	int last = schema_migrations[schema_migration_count - 1].version;
	struct stat st;
	int r, v;

	if (lstat(path, &st) < 0)
		return say(p, FAIL, "%s: %s; restore it from a backup", path,
			   strerror(errno));
	r = db_open(d->root, 0, &d->db);
	if (r == -EPROTO)
		return say(p, FAIL, "%s has a newer schema than this program; "
			   "install the newer Facteur", path);
	if (r < 0)
		return say(p, FAIL, "cannot open %s: %s; check its owner and "
			   "mode, or restore it", path, msg_err(r));
	v = db_version(d->db);
	if (v != last)
		return say(p, FAIL, "%s is at schema %d, not %d; run vadmin "
			   "rebuild to migrate it", path, v, last);
	return OK;
}

static const struct {
	const char *name;
	unsigned long min, max;
} numerics[] = {
	{"databytes", 0, ULONG_MAX},
	{"queuelifetime", 1, ULONG_MAX},
	{"concurrencylocal", 1, 10000},
	{"concurrencyremote", 1, 10000},
	{"retrybase", 1, ULONG_MAX},
	{"remoteport", 1, 65535},
	{"quotawarn", 0, 100},
	{"quotabounce", 0, 1},
	{"popbeforesmtp", 0, ULONG_MAX},
	{"timeoutsmtpd", 1, ULONG_MAX},
	{"timeoutremote", 1, ULONG_MAX},
	{"timeoutpop3", 1, ULONG_MAX},
	{"maxsessions", 1, ULONG_MAX},
	{"maxperip", 1, ULONG_MAX},
};

static const char *const listen_files[] = {
	"listen.smtp", "listen.submission", "listen.smtps", "listen.pop3",
	"listen.pop3s",
};

/* listen_ok - the services' own parser: ADDR:PORT or [V6]:PORT */
static int listen_ok(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return listen_parse(s, &ss, &len) == 0;
}

/* check_listen - every line of the listen files */
static int check_listen(struct doctor *d, struct str *p)
{
	struct str lines = STR_INIT;
	size_t i, n, k;
	int v = OK, r;

	for (i = 0; i < sizeof listen_files / sizeof listen_files[0]; i++) {
		const char *s;

		r = ctl_get_lines(d->root, listen_files[i], &lines, &n);
		if (r < 0) {
			v = say(p, FAIL, "cannot read control/%s: %s",
				listen_files[i], msg_err(r));
			continue;
		}
		for (k = 0, s = lines.s; k < n; k++, s += strlen(s) + 1)
			if (!listen_ok(s))
				v = say(p, FAIL, "control/%s: line %zu is not "
					"ADDR:PORT or [IPV6]:PORT; fix it",
					listen_files[i], k + 1);
	}
	str_free(&lines);
	return v;
}

/* check_control - the control files that must parse */
static int check_control(struct doctor *d, struct str *p)
{
	struct str s = STR_INIT;
	const char *why = NULL;
	unsigned long u;
	size_t i;
	int r, v = OK;

	for (i = 0; i < sizeof numerics / sizeof numerics[0]; i++) {
		/* read as text: a missing or empty file means the default */
		r = ctl_get(d->root, numerics[i].name, "", &s);
		if (r < 0 || s.len == 0) {
			if (r < 0)
				v = say(p, FAIL, "cannot read control/%s: %s",
					numerics[i].name, msg_err(r));
			continue;
		}
		r = ctl_parse_ulong(s.s, &u);
		if (r < 0)
			v = say(p, FAIL, "control/%s is not a decimal number; "
				"fix it or remove it for the default",
				numerics[i].name);
		else if (u < numerics[i].min || u > numerics[i].max)
			v = say(p, FAIL, "control/%s is %lu, outside %lu-%lu; "
				"fix it or remove it for the default",
				numerics[i].name, u, numerics[i].min,
				numerics[i].max);
	}
	r = ctl_get(d->root, "passwordscheme", "yescrypt", &s);
	if (r < 0)
		v = say(p, FAIL, "cannot read control/passwordscheme: %s",
			msg_err(r));
	else if (!str_eqs(&s, "yescrypt") && !str_eqs(&s, "sha512crypt"))
		v = say(p, FAIL, "control/passwordscheme must be yescrypt or "
			"sha512crypt");
	r = ctl_get(d->root, "me", "", &s);
	if (r < 0)
		v = say(p, FAIL, "cannot read control/me: %s", msg_err(r));
	else if (s.len && name_domain(s.s, s.len, &d->path, &why) < 0)
		v = max(v, say(p, WARN, "control/me is not a host name (%s); "
			       "write this host's name in it",
			       why ? why : "bad syntax"));
	str_free(&s);
	return max(v, check_listen(d, p));
}

/* check_tls - the certificate and key load, match and are in date */
static int check_tls(struct doctor *d, struct str *p)
{
	int fatal, r = cert_check(at(d, "control/tls"), p, &fatal);

	return r == 0 ? OK : fatal ? FAIL : WARN;
}

/* check_mailuser - as root: the user exists and owns the writable dirs */
static int check_mailuser(struct doctor *d, struct str *p)
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

/* check_cdbs - the global tables that every lookup starts from */
static int check_cdbs(struct doctor *d, struct str *p)
{
	static const char *const names[] = {
		"control/assign.cdb", "control/rcpthosts.cdb",
	};
	struct cdbr c;
	size_t i;
	int r, v = OK;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		r = cdbr_open(&c, at(d, names[i]));
		if (r < 0)
			v = say(p, FAIL, "cannot open %s: %s; run vadmin "
				"rebuild", d->path.s, msg_err(r));
		else
			cdbr_close(&c);
	}
	return v;
}

/* check_pending - file work that a committed vadmin change still owes */
static int check_pending(struct doctor *d, struct str *p)
{
	sqlite3_stmt *st = NULL;
	int rc, n = -1;

	if (!d->db)
		return say(p, WARN, "not checked: the database did not open");
	rc = sqlite3_prepare_v2(d->db, "SELECT count(*) FROM pending", -1, &st,
				NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	if (n < 0)
		(void)say(p, FAIL, "cannot read the pending table: %s",
			  db_errmsg(d->db));
	sqlite3_finalize(st);
	if (n < 0)
		return FAIL;
	if (n > 0)
		return say(p, WARN, "an interrupted vadmin change is "
			   "unfinished; run vadmin rebuild");
	return OK;
}

/* check_log - the log directory and current file can be written */
static int check_log(struct doctor *d, struct str *p)
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
	struct str *p = &d->svc_p;
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
static int cannot_run(struct doctor *d, struct str *p, const char *path,
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
static int check_services(struct doctor *d, struct str *p)
{
	struct str path = STR_INIT, user = STR_INIT;
	struct passwd *pw;
	const char *name;
	size_t i;
	int v = d->svc_v;

	if (d->svc_p.len)
		(void)str_catb(p, d->svc_p.s, d->svc_p.len);
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

static const struct {
	const char *name;
	int (*fn)(struct doctor *d, struct str *problem);
} checks[] = {
	{"layout", check_layout},
	{"database", check_database},
	{"control", check_control},
	{"tls", check_tls},
	{"mailuser", check_mailuser},
	{"services", check_services},
	{"cdbs", check_cdbs},
	{"pending", check_pending},
	{"log", check_log},
};

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

/* cmd_doctor - facteur doctor */
int cmd_doctor(const char *root, int argc, char **argv)
{
	struct doctor d = {root, 0, 0, 0, 0, STR_INIT, NULL, STR_INIT,
			   STR_INIT, STR_INIT, OK, 0};
	struct str p = STR_INIT;
	size_t i;
	int failed = 0, v;

	if (argc > 1)
		usage_die("%s %s", argv[1][0] == '-' ? "unknown option" :
			  "unexpected argument", argv[1]);
	become_mailuser(&d);
	for (i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		p.len = 0;
		v = checks[i].fn(&d, &p);
		if (v == OK)
			printf("ok %s\n", checks[i].name);
		else
			printf("%s %s: %s\n", v == FAIL ? "FAIL" : "warn",
			       checks[i].name, p.len ? p.s : "out of memory");
		failed |= v == FAIL;
	}
	if (d.db && sqlite3_close(d.db) != SQLITE_OK)
		msg_warn("cannot close the database: %s", db_errmsg(d.db));
	str_free(&p);
	str_free(&d.user);
	str_free(&d.path);
	str_free(&d.bindir);
	str_free(&d.svc_p);
	if (fflush(stdout) == EOF || ferror(stdout))
		msg_die(EX_TEMP, "cannot write the report: %s",
			strerror(errno));
	return failed ? EX_REFUSED : EX_DONE;
}
