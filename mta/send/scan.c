/*
 * scan - the queue check: what a crash, a disk error or a hand can leave
 * in the queue, found and (with SCAN_REPAIR) fixed.
 *
 * Nothing is ever deleted except files in queue/tmp/ and drop/NAME.tmp
 * older than 36 hours, which were never acknowledged (their writer died
 * before its rename).
 * Anything else that cannot be used is moved to queue/quarantine/ with a
 * log line saying why, so an admin can look at it, and the rest of the
 * queue flows. At start-up mta-send runs the check with repair and files
 * every good message for delivery.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsx.h"
#include "send.h"

#define TMP_MAX_AGE (36 * 3600)

struct scan {
	struct send *s;
	int flags;
	size_t problems, unfixed;
};

static void problem(struct scan *sc, const char *path, const char *why)
{
	sc->problems++;
	if (sc->flags & SCAN_REPAIR) {
		if (quarantine(sc->s->root, path, why) < 0)
			sc->unfixed++;
	} else
		printf("problem %s: %s\n", path, why);
}

/* check_msg - is PATH a message we wrote and can read whole? On success
 * *due_us is when its first pending recipient is due */
static const char *check_msg(const struct send *s, const char *path,
			     uint64_t *due_us)
{
	struct stat sb;
	struct qenv e;
	struct qrcpt *q = NULL;
	struct str sp = STR_INIT;
	const char *why = NULL;
	off_t off;
	uint64_t len;
	size_t i;
	int fd, r;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? NULL : "cannot be looked at";
	if (S_ISLNK(sb.st_mode))
		return "a symbolic link, not a message file";
	if (S_ISDIR(sb.st_mode))
		return "a directory, not a message file";
	if (!S_ISREG(sb.st_mode))
		return "not a regular file";
	if (sb.st_uid != geteuid())
		return "owned by another user";
	if (sb.st_size == 0)
		return "empty";
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return "cannot be opened";
	qenv_init(&e);
	r = queue_read_env(fd, &e, &off, &len);
	close(fd);
	if (r == -ENOMEM) {
		why = NULL; /* ours, not the file's: deliver it anyway */
		*due_us = 0;
		goto out;
	}
	if (r < 0) {
		why = "damaged (cut short, or an unknown or broken record)";
		goto out;
	}
	*due_us = UINT64_MAX;
	q = calloc(e.nrcpts, sizeof *q);
	if (!q || str_catf(&sp, "%s.s", path) < 0 ||
	    qstatus_read(sp.s, q, e.nrcpts) < 0) {
		*due_us = 0;
		goto out;
	}
	for (i = 0; i < e.nrcpts; i++)
		if (q[i].state == QS_PENDING &&
		    rcpt_due(s, &q[i], now_us()) < *due_us)
			*due_us = rcpt_due(s, &q[i], now_us());
	if (*due_us == UINT64_MAX)
		*due_us = 0; /* all settled: finish it now */
out:
	if (q)
		qrcpt_free(q, e.nrcpts);
	free(q);
	str_free(&sp);
	qenv_free(&e);
	return why;
}

static int name_is_hh(const char *n)
{
	return strlen(n) == 2 && strspn(n, "0123456789abcdef") == 2;
}

/* scan_hh - one msg/HH directory */
static void scan_hh(struct scan *sc, const char *dir, unsigned hh)
{
	struct send *s = sc->s;
	struct str p = STR_INIT, q = STR_INIT;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d) {
		slog("warning: cannot read %s: %s", dir, strerror(errno));
		sc->problems++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		uint64_t a, ino, due = 0;
		const char *why;
		int mv;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		p.len = 0;
		if (str_catf(&p, "%s/%s", dir, n) < 0)
			break;
		if (len > 2 && !strcmp(n + len - 2, ".s")) {
			/* a status file needs its message beside it */
			q.len = 0;
			if (str_catb(&q, p.s, p.len - 2) < 0)
				break;
			if (queue_id_parse(str_cstr(&q) + strlen(dir) + 1,
					   &a, &ino) < 0)
				problem(sc, p.s, "not a queue file name");
			else if (access(q.s, F_OK) < 0 && errno == ENOENT)
				problem(sc, p.s, "a status file without its "
					"message");
			continue;
		}
		if (queue_id_parse(n, &a, &ino) < 0 ||
		    len >= sizeof ((struct msg *)0)->id) {
			problem(sc, p.s, "not a queue file name");
			continue;
		}
		why = check_msg(s, p.s, &due);
		if (why) {
			problem(sc, p.s, why);
			continue;
		}
		if ((ino & 0xff) != hh) {
			/* a hand moved it: put it where readers look */
			q.len = 0;
			if (queue_msg_path(&q, s->root, n, NULL) < 0)
				break;
			sc->problems++;
			if (!(sc->flags & SCAN_REPAIR)) {
				printf("problem %s: belongs in %s\n", p.s, q.s);
				continue;
			}
			mv = renameat2(AT_FDCWD, p.s, AT_FDCWD, q.s,
				       RENAME_NOREPLACE);
			if (mv < 0 && errno == ENOENT) {
				/* msg/HH/ is made on first use: maybe not yet */
				char *sl = strrchr(q.s, '/');

				*sl = 0;
				(void)mkdir(q.s, 0700);
				*sl = '/';
				mv = renameat2(AT_FDCWD, p.s, AT_FDCWD, q.s,
					       RENAME_NOREPLACE);
			}
			if (mv < 0) {
				problem(sc, p.s, "misplaced, and its place "
					"is taken");
				continue;
			}
			slog("moved misplaced %s to %s", p.s, q.s);
			/* its outcomes go with it, or done recipients would
			 * be delivered again */
			if (str_cats(&p, ".s") == 0 && str_cats(&q, ".s") == 0 &&
			    renameat2(AT_FDCWD, p.s, AT_FDCWD, q.s,
				      RENAME_NOREPLACE) < 0 && errno != ENOENT)
				slog("warning: cannot move %s to %s: %s", p.s,
				     q.s, strerror(errno));
			/* directories are read in order: a later one files
			 * it when it is read, an earlier one cannot */
			if ((ino & 0xff) > hh)
				continue;
		}
		/* taken from new/ after the check began: filed already */
		if ((sc->flags & SCAN_LOAD) && !seen_has(s, n))
			(void)sched_restore(s, n, due); /* says why it fails */
	}
	closedir(d);
	str_free(&p);
	str_free(&q);
}

/* scan_dirs - the four directories of queue/: a missing one is a problem,
 * made again by a repair */
static int scan_dirs(struct scan *sc, struct str *p)
{
	static const char *const dirs[] = {"tmp", "new", "msg", "quarantine"};
	size_t i;

	for (i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		p->len = 0;
		if (str_catf(p, "%s/queue/%s", sc->s->root, dirs[i]) < 0)
			return -ENOMEM;
		if (fsx_is_dir(p->s) == 1)
			continue;
		if (!(sc->flags & SCAN_REPAIR)) {
			printf("problem %s: missing\n", p->s);
			sc->problems++;
			continue;
		}
		if (fsx_mkdir(p->s, 0700) < 0) {
			int e = errno;

			slog("cannot make %s: %s", p->s, strerror(e));
			return -e;
		}
	}
	return 0;
}

/* scan_unfinished - what writers that died left, never acknowledged, once
 * older than 36 hours: anything in queue/tmp/ (what is not a file is a
 * problem), or with DROP, NAME.tmp in drop/ (a local user's sendmail;
 * finished drop files are drop.c's) */
static int scan_unfinished(struct scan *sc, struct str *p, struct str *f,
			   int drop, time_t now)
{
	const char *what = drop ? "local submission" : "injection";
	struct dirent *de;
	struct stat sb;
	DIR *d;

	p->len = 0;
	if (str_catf(p, drop ? "%s/drop" : "%s/queue/tmp", sc->s->root) < 0)
		return -ENOMEM;
	if ((d = opendir(p->s)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t len = strlen(n);

		if (drop ? len <= 4 || strcmp(n + len - 4, ".tmp") :
		    !strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		f->len = 0;
		if (str_catf(f, "%s/%s", p->s, n) < 0 || lstat(f->s, &sb) < 0 ||
		    (drop && S_ISDIR(sb.st_mode)) ||
		    now - sb.st_mtime < TMP_MAX_AGE)
			continue;
		if (!drop && !S_ISREG(sb.st_mode)) {
			problem(sc, f->s, "not a file, in queue/tmp");
		} else if (!(sc->flags & SCAN_REPAIR)) {
			printf("problem %s: an unfinished %s older than 36 "
			       "hours\n", f->s, what);
			sc->problems++;
		} else if (unlink(f->s) < 0) {
			continue;
		} else if (drop) {
			slog("removed %s: an unfinished local submission from "
			     "uid %lu, never acknowledged", f->s,
			     (unsigned long)sb.st_uid);
		} else {
			slog("removed %s: an unfinished injection, never "
			     "acknowledged", f->s);
		}
	}
	closedir(d);
	return 0;
}

/* scan_msg - msg/: anything but the 256 HH directories goes aside first;
 * then, for --check, each HH in order, so that a misplaced file moved to
 * its own directory is checked exactly once (the daemon reads them from
 * its loop: scan_step) */
static int scan_msg(struct scan *sc, struct str *p, struct str *f)
{
	struct str names = STR_INIT;
	struct dirent *de;
	size_t k;
	DIR *d;

	p->len = 0;
	if (str_catf(p, "%s/queue/msg", sc->s->root) < 0)
		return -ENOMEM;
	if ((d = opendir(p->s)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		f->len = 0;
		if (str_catf(f, "%s/%s", p->s, n) < 0)
			break;
		if (!name_is_hh(n) || fsx_is_dir(f->s) != 1)
			(void)str_catb(&names, f->s, f->len + 1);
	}
	closedir(d);
	for (k = 0; k < names.len; k += strlen(names.s + k) + 1)
		problem(sc, names.s + k, "not a hashed queue directory");
	for (k = 0; !(sc->flags & SCAN_LOAD) && k < 256; k++) {
		f->len = 0;
		if (str_catf(f, "%s/%02x", p->s, (unsigned)k) < 0)
			break;
		if (fsx_is_dir(f->s) == 1)
			scan_hh(sc, f->s, (unsigned)k);
	}
	str_free(&names);
	return 0;
}

/* new_problem - why a file of new/ would be refused by the pickup, or
 * NULL */
static const char *new_problem(struct scan *sc, const char *name,
			       const char *path, struct str *q)
{
	uint64_t a, ino, due;
	const char *why;

	why = queue_id_parse(name, &a, &ino) < 0 ? "not a queue file name" :
	      check_msg(sc->s, path, &due);
	if (!why && queue_msg_path(q, sc->s->root, name, NULL) == 0 &&
	    access(q->s, F_OK) == 0)
		why = "a message with this id is already queued";
	return why;
}

/* scan_new - new/, for --check only: the daemon checks each file again
 * when it takes it */
static int scan_new(struct scan *sc, struct str *p, struct str *f)
{
	struct str q = STR_INIT;
	struct dirent *de;
	const char *why;
	DIR *d;

	p->len = 0;
	if (str_catf(p, "%s/queue/new", sc->s->root) < 0)
		return -ENOMEM;
	if ((d = opendir(p->s)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		f->len = 0;
		if (str_catf(f, "%s/%s", p->s, de->d_name) < 0)
			break;
		why = new_problem(sc, de->d_name, f->s, &q);
		if (why)
			problem(sc, f->s, why);
	}
	closedir(d);
	str_free(&q);
	return 0;
}

/* scan_queue - check (and repair) the whole queue; with SCAN_LOAD every
 * good message in msg/ is filed for delivery */
int scan_queue(struct send *s, int flags, size_t *problems,
	       size_t *unfixed)
{
	struct scan sc = {s, flags, 0, 0};
	struct str p = STR_INIT, f = STR_INIT;
	time_t now = time(NULL);
	int r;

	r = scan_dirs(&sc, &p);
	if (r == 0)
		r = scan_unfinished(&sc, &p, &f, 0, now);
	if (r == 0)
		r = scan_unfinished(&sc, &p, &f, 1, now);
	if (r == 0)
		r = scan_msg(&sc, &p, &f);
	if (r == 0 && !(flags & SCAN_LOAD))
		r = scan_new(&sc, &p, &f);
	str_free(&p);
	str_free(&f);
	if (r < 0)
		return r;
	*problems = sc.problems;
	*unfixed = sc.unfixed;
	s->scan_next = flags & SCAN_LOAD ? 0 : 256;
	s->scan_flags = flags;
	return 0;
}

/* scan_step - check and file one more msg/HH/ directory; 0 once all are
 * done (then the ids remembered meanwhile are forgotten) */
int scan_step(struct send *s)
{
	struct scan sc = {s, s->scan_flags, 0, 0};
	struct str d = STR_INIT;

	if (s->scan_next >= 256)
		return 0;
	if (str_catf(&d, "%s/queue/msg/%02x", s->root, s->scan_next) == 0 &&
	    fsx_is_dir(d.s) == 1)
		scan_hh(&sc, d.s, s->scan_next);
	str_free(&d);
	s->scan_next++;
	s->scan_problems += sc.problems;
	s->scan_unfixed += sc.unfixed;
	if (s->scan_next < 256)
		return 1;
	seen_free(s);
	s->stat_n = (size_t)-1; /* queue/stat is written from now on */
	slog("queue check done: %zu message%s queued, %zu problem%s "
	     "repaired%s", s->nmsgs, s->nmsgs == 1 ? "" : "s",
	     s->scan_problems, s->scan_problems == 1 ? "" : "s",
	     s->scan_unfixed ? ", some could not be (see above)" : "");
	return 0;
}

static size_t seen_hash(const char *id, size_t cap)
{
	uint64_t h = 1469598103934665603ULL;

	while (*id)
		h = (h ^ (unsigned char)*id++) * 1099511628211ULL;
	return (size_t)h & (cap - 1);
}

/* seen_add - remember an id taken from new/ while the check runs */
int seen_add(struct send *s, const char *id)
{
	size_t i;

	if (s->scan_next >= 256)
		return 0;
	if (2 * (s->seen_n + 1) > s->seen_cap) {
		size_t cap = s->seen_cap ? s->seen_cap * 2 : 256, k;
		char **t = calloc(cap, sizeof *t);

		if (!t)
			return -ENOMEM;
		for (k = 0; k < s->seen_cap; k++)
			if (s->seen[k]) {
				for (i = seen_hash(s->seen[k], cap); t[i];
				     i = (i + 1) & (cap - 1))
					;
				t[i] = s->seen[k];
			}
		free(s->seen);
		s->seen = t;
		s->seen_cap = cap;
	}
	for (i = seen_hash(id, s->seen_cap); s->seen[i];
	     i = (i + 1) & (s->seen_cap - 1))
		if (!strcmp(s->seen[i], id))
			return 0;
	s->seen[i] = strdup(id);
	if (!s->seen[i])
		return -ENOMEM;
	s->seen_n++;
	return 0;
}

int seen_has(const struct send *s, const char *id)
{
	size_t i;

	if (!s->seen_cap)
		return 0;
	for (i = seen_hash(id, s->seen_cap); s->seen[i];
	     i = (i + 1) & (s->seen_cap - 1))
		if (!strcmp(s->seen[i], id))
			return 1;
	return 0;
}

void seen_free(struct send *s)
{
	size_t i;

	for (i = 0; i < s->seen_cap; i++)
		free(s->seen[i]);
	free(s->seen);
	s->seen = NULL;
	s->seen_n = s->seen_cap = 0;
}
