/*
 * runlog - the log sink of `facteur run`.
 *
 * Every line goes to ROOT/log/current with one write(2) (O_APPEND, so
 * services that log there directly do not interleave within a line) and
 * is copied to stdout. Lines from a child that already start with a
 * log_format() timestamp are kept as they are; others are wrapped with
 * the child's name and pid. Control bytes become '?' either way, so one
 * line stays one event. Past RUNLOG_ROTATE bytes, current is renamed to
 * current.YYYYMMDDTHHMMSSZ (a "-N" suffix if that name is taken: names
 * still sort in time order), a new current is opened and all but the
 * RUNLOG_KEEP newest rotated files are removed. Started as root, the
 * files it creates are given to the mail user at once, so nothing in
 * the root is left owned by root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "facteur.h"
#include "fsx.h"
#include "log.h"
#include "msg.h"
#include "utf8.h"

#define RUNLOG_ROTATE (16L * 1024 * 1024)
#define RUNLOG_KEEP 10
#define RUNLOG_TRIES 1000

/* open_current - open (or create and give away) ROOT/log/current */
static int open_current(struct runlog *rl)
{
	struct str path = STR_INIT;
	struct stat st;
	/* O_NONBLOCK: a FIFO planted as current must not hang us */
	int fl = O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int fd = -1, r = str_catf(&path, "%s/log/current", rl->root);

	if (r == 0) {
		fd = open(path.s, fl | O_CREAT | O_EXCL, 0600);
		if (fd >= 0 && rl->chown && fchown(fd, rl->uid, rl->gid) < 0)
			r = -errno;
		else if (fd < 0 && errno == EEXIST)
			fd = open(path.s, fl);
		if (fd < 0)
			r = -errno;
	}
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r == 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	/* log/ is the mail user's: a hard link it planted as current (to a
	 * file of root's) has two links or another owner; we never append
	 * to that as root */
	else if (r == 0 && (st.st_nlink != 1 ||
			    st.st_uid != (rl->chown ? rl->uid : geteuid())))
		r = -EPERM;
	str_free(&path);
	if (r < 0 && fd >= 0)
		close(fd);
	return r < 0 ? r : fd;
}

/* runlog_open - start the sink; the log file is opened before anything */
int runlog_open(struct runlog *rl, const char *root, int chown, uid_t uid,
		gid_t gid)
{
	rl->root = root;
	rl->chown = chown;
	rl->uid = uid;
	rl->gid = gid;
	rl->stdout_ok = 1;
	rl->line = (struct str)STR_INIT;
	rl->fd = open_current(rl);
	return rl->fd < 0 ? rl->fd : 0;
}

/* cmp_names - qsort order of rotated names: by name, which is by time */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* is_rotated - current.DIGITS..., and not a temporary file */
static int is_rotated(const char *n)
{
	return !strncmp(n, "current.", 8) && n[8] >= '0' && n[8] <= '9' &&
	       !strstr(n, ".tmp");
}

/* prune - remove all but the RUNLOG_KEEP newest rotated files */
static int prune(int dfd)
{
	struct str names = STR_INIT;
	char **v = NULL;
	size_t n = 0, i;
	struct dirent *de;
	DIR *d = fdopendir(dfd);
	int r = 0;

	if (!d) {
		close(dfd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (!is_rotated(de->d_name))
			continue;
		r = str_catb(&names, de->d_name, strlen(de->d_name) + 1);
		n++;
	}
	if (r == 0 && n > RUNLOG_KEEP && !(v = calloc(n, sizeof *v)))
		r = -ENOMEM;
	if (r == 0 && v) {
		char *s = names.s;

		for (i = 0; i < n; i++, s += strlen(s) + 1)
			v[i] = s;
		qsort(v, n, sizeof *v, cmp_names);
		for (i = 0; i < n - RUNLOG_KEEP; i++)
			if (unlinkat(dirfd(d), v[i], 0) < 0 && errno != ENOENT)
				r = -errno;
	}
	free(v);
	str_free(&names);
	closedir(d);
	return r;
}

/* rename_away - current to current.STAMP[-N], never over an old file */
static int rename_away(const char *cur, struct str *to)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t base;
	int i;

	if (!gmtime_r(&now, &tm) ||
	    !strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm))
		return -EOVERFLOW;
	if (str_catf(to, ".%s", stamp) < 0)
		return -ENOMEM;
	base = to->len;
	for (i = 1; i <= RUNLOG_TRIES; i++) {
		if (renameat2(AT_FDCWD, cur, AT_FDCWD, to->s,
			      RENAME_NOREPLACE) == 0)
			return 0;
		/* file systems without RENAME_NOREPLACE: link cannot
		 * replace either, and unlink then leaves only the new name */
		if ((errno == EINVAL || errno == ENOSYS) &&
		    link(cur, to->s) == 0)
			return unlink(cur) < 0 ? -errno : 0;
		if (errno != EEXIST)
			return -errno;
		str_trunc(to, base);
		if (str_catf(to, "-%d", i) < 0)
			return -ENOMEM;
	}
	return -EEXIST;
}

/* rotate - move current aside, open a new one, prune the old ones */
static int rotate(struct runlog *rl)
{
	struct str cur = STR_INIT, to = STR_INIT;
	int fd = -1, dfd, r;

	r = str_catf(&cur, "%s/log/current", rl->root);
	if (r == 0)
		r = str_copyb(&to, cur.s, cur.len);
	if (r == 0)
		r = rename_away(cur.s, &to);
	if (r == 0)
		r = fsx_fsync_parent(cur.s);
	if (r == 0 && (fd = open_current(rl)) < 0)
		r = fd;
	if (r == 0) {
		close(rl->fd);
		rl->fd = fd;
		str_trunc(&cur, cur.len - strlen("/current"));
		dfd = open(cur.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			   O_CLOEXEC);
		r = dfd < 0 ? -errno : prune(dfd);
	}
	str_free(&cur);
	str_free(&to);
	return r;
}

/* runlog_line - write one finished line (newline included) */
int runlog_line(struct runlog *rl, const char *line, size_t len)
{
	struct stat st;
	int r = fsx_write_all(rl->fd, line, len);

	if (r < 0)
		msg_warn("cannot write %s/log/current: %s", rl->root,
			 msg_err(r));
	/* a closed stdout must not stop the log */
	if (rl->stdout_ok && fsx_write_all(1, line, len) < 0)
		rl->stdout_ok = 0;
	if (fstat(rl->fd, &st) == 0 && st.st_size > RUNLOG_ROTATE) {
		int e = rotate(rl);

		if (e < 0)
			msg_warn("cannot rotate %s/log/current: %s", rl->root,
				 msg_err(e));
	}
	return r;
}

/* fmt_line - log_format() with variadic arguments */
static int fmt_line(struct str *out, const char *svc, pid_t pid,
		    const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fmt_line(struct str *out, const char *svc, pid_t pid,
		    const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_format(out, svc, pid, fmt, ap);
	va_end(ap);
	return r;
}

/* runlog_say - one event of facteur run itself */
void runlog_say(struct runlog *rl, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_format(&rl->line, "facteur", getpid(), fmt, ap);
	va_end(ap);
	if (r == 0)
		(void)runlog_line(rl, rl->line.s, rl->line.len);
	else
		msg_warn("cannot format a log line: %s", msg_err(r));
}

/* stamped - the line starts with log_format()'s timestamp and a space */
static int stamped(const char *s, size_t len)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.ddddddZ ";
	size_t i;

	if (len < sizeof pat - 1)
		return 0;
	for (i = 0; i < sizeof pat - 1; i++)
		if (pat[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != pat[i])
			return 0;
	return 1;
}

/* runlog_child - one line (no newline) that a child printed */
void runlog_child(struct runlog *rl, const char *prog, pid_t pid,
		  const char *line, size_t len)
{
	struct str clean = STR_INIT;
	int r = str_copyb(&clean, line, len);

	if (r == 0)
		utf8_mask(clean.s, clean.len);
	if (r == 0 && stamped(clean.s, clean.len)) {
		r = str_catc(&clean, '\n');
		if (r == 0)
			(void)runlog_line(rl, clean.s, clean.len);
	} else if (r == 0) {
		r = fmt_line(&rl->line, prog, pid, "%s", clean.s);
		if (r == 0)
			(void)runlog_line(rl, rl->line.s, rl->line.len);
	}
	if (r < 0)
		msg_warn("cannot log a line of %s: %s", prog, msg_err(r));
	str_free(&clean);
}

/* runlog_close - close the log file */
void runlog_close(struct runlog *rl)
{
	if (rl->fd >= 0)
		close(rl->fd);
	rl->fd = -1;
	str_free(&rl->line);
}
