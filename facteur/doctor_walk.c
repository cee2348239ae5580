/*
 * doctor_walk - the `maildirs` check: everything below domains/, and
 * each user's Maildir.
 *
 * Below domains/ directories are 0700 and files 0600, all the mail
 * user's; a message file with an x bit (vpopmail's classic fault) is
 * counted apart. The walk goes by descriptors, openat and fstatat with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so a symbolic link is seen as one
 * and never followed; a link is a failure that --fix leaves alone (what
 * it points at is not the root's). --fix changes modes only through a
 * descriptor of the entry itself, after checking that it is still the
 * entry looked at, a directory or a regular file with one link, and
 * this process's own: nothing outside the root can be reached so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "doctor.h"
#include "maildir.h"
#include "msg.h"

/* the paths named for a kind before only the count goes on */
#define NAMED 3

enum kind { K_DIRMODE, K_XBIT, K_FILEMODE, K_OWNER, K_LINK, K_OTHER,
	    K_NOSUB, K_NOSIZE, K_COUNT };

static const struct {
	int level;
	const char *what;
	const char *fix;
} kinds[K_COUNT] = {
	{FAIL, "directories not mode 0700", "run facteur doctor --fix (chmod "
	 "700)"},
	{FAIL, "message files with an x bit", "run facteur doctor --fix "
	 "(chmod 600)"},
	{FAIL, "files open to group or others", "run facteur doctor --fix "
	 "(chmod 600)"},
	{FAIL, "entries not the mail user's", "give them to the mail user "
	 "(chown USER:)"},
	{FAIL, "symbolic links (never followed)", "remove them by hand after "
	 "looking at what they point at"},
	{FAIL, "entries neither file nor directory", "move them away"},
	{FAIL, "Maildirs without cur/, new/ or tmp/", "run vadmin check "
	 "--repair"},
	{WARN, "users with a quota and no maildirsize", "run vadmin check "
	 "--repair"},
};

struct walk {
	struct doctor *d;
	struct report *p;	/* --fix's lines go to its done */
	uid_t uid;		/* the mail user: this process */
	struct str rel;		/* the entry's path below the root */
	unsigned long n[K_COUNT];
	struct str first[K_COUNT];	/* the first NAMED paths, NUL-ended */
};

/* note - one finding of KIND at the current path */
static void note(struct walk *w, enum kind k)
{
	if (w->n[k]++ >= NAMED)
		return;
	(void)str_catb(&w->first[k], w->rel.s, w->rel.len + 1);
}

/* walk_free - what a walk holds */
static void walk_free(struct walk *w)
{
	size_t k;

	str_free(&w->rel);
	for (k = 0; k < K_COUNT; k++)
		str_free(&w->first[k]);
}

/* merge - add what SRC found after what DST found, as if one walk had
 * gone through both in turn: the counts summed, the first NAMED paths
 * and the --fix lines in that order */
static void merge(struct walk *dst, const struct walk *src,
		  const struct report *src_p)
{
	const char *s;
	size_t k, named;

	for (k = 0; k < K_COUNT; k++) {
		named = dst->n[k] < NAMED ? dst->n[k] : NAMED;
		for (s = src->first[k].s; named < NAMED && s &&
		     s < src->first[k].s + src->first[k].len; named++) {
			(void)str_catb(&dst->first[k], s, strlen(s) + 1);
			s += strlen(s) + 1;
		}
		dst->n[k] += src->n[k];
	}
	(void)str_catb(&dst->p->done, src_p->done.s, src_p->done.len);
}

/* fix_mode - chmod NAME (in DFD; REL below the root, for the report)
 * to WANT through its own descriptor, when it is still ST, this
 * process's user's, and a directory or a single-link file: a link or a
 * swapped entry is never followed out of the root */
int fix_mode(struct doctor *d, struct report *p, int dfd, const char *name,
	     const char *rel, const struct stat *st, mode_t want)
{
	int dir = S_ISDIR(st->st_mode), fd, r = 0;
	uid_t uid = geteuid();
	struct stat now;

	if (st->st_uid != uid || (!dir && st->st_nlink != 1))
		return -EPERM;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &now) < 0)
		r = -errno;
	else if (now.st_dev != st->st_dev || now.st_ino != st->st_ino ||
		 now.st_uid != uid || (now.st_mode & S_IFMT) !=
		 (st->st_mode & S_IFMT) || (!dir && now.st_nlink != 1))
		r = -EAGAIN;
	else if (fchmod(fd, want) < 0)
		r = -errno;
	(void)close(fd);
	if (r == 0)
		did(p, "chmod %o %s/%s (was %04o)", (unsigned)want, d->root,
		    rel, (unsigned)(st->st_mode & 07777));
	return r;
}

static void walk_dir(struct walk *w, int fd, int depth);

/* entry - one entry of a directory below domains/ */
static void entry(struct walk *w, int dfd, const char *name, int depth)
{
	struct stat st;
	mode_t want, mode;
	enum kind k;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;		/* gone meanwhile: mail moves */
	if (S_ISLNK(st.st_mode) || !(S_ISDIR(st.st_mode) ||
				     S_ISREG(st.st_mode))) {
		note(w, S_ISLNK(st.st_mode) ? K_LINK : K_OTHER);
		return;
	}
	if (st.st_uid != w->uid)
		note(w, K_OWNER);
	mode = st.st_mode & 07777;
	want = S_ISDIR(st.st_mode) ? 0700 : 0600;
	k = S_ISDIR(st.st_mode) ? K_DIRMODE : mode & 0111 ? K_XBIT :
		K_FILEMODE;
	if (!maildir_mode_ok(name, st.st_mode) &&
	    !(w->d->fix && fix_mode(w->d, w->p, dfd, name, w->rel.s, &st,
				    want) == 0))
		note(w, k);
	/* entries of MAILDIR_DEPTH_MAX levels, as vadmin check looks at */
	if (!S_ISDIR(st.st_mode) || depth + 1 >= MAILDIR_DEPTH_MAX)
		return;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd >= 0)
		walk_dir(w, fd, depth + 1);
}

/* walk_dir - every entry of the directory FD (closed here) */
static void walk_dir(struct walk *w, int fd, int depth)
{
	DIR *dp = fdopendir(fd);
	struct dirent *e;
	size_t len = w->rel.len;

	if (!dp) {
		(void)close(fd);
		return;
	}
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		str_trunc(&w->rel, len);
		if (str_catf(&w->rel, "/%s", e->d_name) < 0)
			continue;
		entry(w, dirfd(dp), e->d_name, depth);
	}
	str_trunc(&w->rel, len);
	(void)closedir(dp);
}

/* The check's two long parts, the walk of domains/ and the look at
 * every user's Maildir, are cut into jobs (an entry of domains/, i.e.
 * a whole domain; a run of USERS_JOB users) that WALKERS threads (this
 * one among them) take one at a time, so that several directory reads
 * are in flight: on a cold cache that is what counts. On the virtual
 * disk of docs/performance.md, 1,000 domains of 100 users: one reader
 * (find) 55 s, 8 walkers 16-21 s, 16 walkers 12-15 s, 32 no better;
 * warm, the CPU time is the same. Each job has a walk of its own, and
 * the jobs' walks are merged in job order, so the report is the one a
 * single walk makes. Jobs are run in batches of BATCH, which bounds the
 * memory of a huge domains/. */
#define WALKERS 16
#define BATCH 1024
#define USERS_JOB 256

struct pool {
	struct walk *top;	/* the check's own walk, where all is merged */
	size_t n;		/* jobs in this batch */
	size_t base;		/* the number of the batch's first job */
	void (*job)(struct pool *pl, struct walk *w, size_t i);
	int dfd;		/* domains/ (the walk's jobs) */
	const char **names;	/* its entries, in readdir order */
	int rootfd;		/* the root (the users' jobs) */
	struct str rels;	/* the users' maildirs, NUL-ended, in order */
	size_t *at;		/* where each begins in rels */
	unsigned char *quota;	/* and whether it has a quota */
	size_t nusers;
	struct walk *part;	/* part[i]: what job i found */
	struct report *rep;	/* rep[i]: its --fix lines */
	atomic_size_t next;	/* the next job a walker takes */
};

/* walker - take jobs of the batch until none is left */
static void *walker(void *arg)
{
	struct pool *pl = arg;
	size_t i;

	while ((i = atomic_fetch_add(&pl->next, 1)) < pl->n)
		pl->job(pl, &pl->part[i], pl->base + i);
	return NULL;
}

/* run_batch - the batch's jobs by up to WALKERS walkers, then their
 * walks merged in order; without memory for that, in this thread */
static void run_batch(struct pool *pl)
{
	pthread_t t[WALKERS - 1];
	size_t i, nt;

	pl->part = calloc(pl->n, sizeof *pl->part);
	pl->rep = calloc(pl->n, sizeof *pl->rep);
	if (!pl->part || !pl->rep) {
		free(pl->part);
		free(pl->rep);
		for (i = 0; i < pl->n; i++)
			pl->job(pl, pl->top, pl->base + i);
		return;
	}
	for (i = 0; i < pl->n; i++) {
		pl->part[i].d = pl->top->d;
		pl->part[i].p = &pl->rep[i];
		pl->part[i].uid = pl->top->uid;
	}
	atomic_init(&pl->next, 0);
	/* a thread that cannot be made leaves its share to the others */
	for (nt = 0; nt < WALKERS - 1 && nt + 1 < pl->n; nt++)
		if (pthread_create(&t[nt], NULL, walker, pl) != 0)
			break;
	(void)walker(pl);
	for (i = 0; i < nt; i++)
		(void)pthread_join(t[i], NULL);
	for (i = 0; i < pl->n; i++) {
		merge(pl->top, &pl->part[i], &pl->rep[i]);
		walk_free(&pl->part[i]);
		report_free(&pl->rep[i]);
	}
	free(pl->part);
	free(pl->rep);
}

/* domain_job - entry i of domains/ and everything below it */
static void domain_job(struct pool *pl, struct walk *w, size_t i)
{
	str_trunc(&w->rel, 0);
	if (str_catf(&w->rel, "domains/%s", pl->names[i]) == 0)
		entry(w, pl->dfd, pl->names[i], 0);
}

/* walk_domains - every entry of domains/ (FD, closed here), by batches */
static void walk_domains(struct walk *top, int fd)
{
	struct pool pl = {.top = top, .dfd = fd, .job = domain_job};
	struct str buf = STR_INIT;
	struct dirent *e;
	DIR *dp;
	size_t i, off;

	pl.names = calloc(BATCH, sizeof *pl.names);
	if (!pl.names) {
		walk_dir(top, fd, 0);
		return;
	}
	dp = fdopendir(fd);
	if (!dp) {
		(void)close(fd);
		free(pl.names);
		return;
	}
	do {
		buf.len = 0;
		pl.n = 0;
		while (pl.n < BATCH && (e = readdir(dp)) != NULL)
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
			    str_catb(&buf, e->d_name, strlen(e->d_name) + 1) == 0)
				pl.n++;
		/* the names' places, once buf has stopped moving */
		for (i = 0, off = 0; i < pl.n; i++, off += strlen(buf.s + off) + 1)
			pl.names[i] = buf.s + off;
		if (pl.n)
			run_batch(&pl);
	} while (pl.n == BATCH);
	str_free(&buf);
	free(pl.names);
	(void)closedir(dp);
}

/* open_rel - the directory REL below the root, every component opened
 * without following a link; -errno */
static int open_rel(int rootfd, const char *rel)
{
	struct str part = STR_INIT;
	const char *s = rel, *slash;
	int fd = dup(rootfd), next;

	while (fd >= 0 && *s) {
		slash = strchr(s, '/');
		part.len = 0;
		if (str_catb(&part, s, slash ? (size_t)(slash - s) :
			     strlen(s)) < 0) {
			(void)close(fd);
			fd = -1;
			errno = ENOMEM;
			break;
		}
		next = openat(fd, str_cstr(&part), O_RDONLY | O_DIRECTORY |
			      O_NOFOLLOW | O_CLOEXEC);
		(void)close(fd);
		fd = next;
		s = slash ? slash + 1 : s + strlen(s);
	}
	str_free(&part);
	return fd < 0 ? -errno : fd;
}

/* below_domains - REL (from the database) names a place below
 * domains/: no absolute path, no ".." to climb out by */
static int below_domains(const char *rel)
{
	const char *s;

	if (strncmp(rel, "domains/", 8) != 0)
		return 0;
	for (s = rel; (s = strstr(s, "..")) != NULL; s += 2)
		if (s[-1] == '/' && (s[2] == '/' || s[2] == 0))
			return 0;
	return 1;
}

/* open_maildir - the directory REL below the root without following
 * a link anywhere: one openat2() where the kernel has it (Linux 5.6),
 * else open_rel's component at a time; -errno */
static int open_maildir(int rootfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			RESOLVE_BENEATH,
	};
	long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);

	if (fd >= 0)
		return (int)fd;
	/* ENOSYS: an older kernel; EPERM: a seccomp filter that does not
	 * know the call */
	if (errno != ENOSYS && errno != EPERM)
		return -errno;
	return open_rel(rootfd, rel);
}

/* one_maildir - REL has cur/, new/, tmp/, and maildirsize with a quota */
static void one_maildir(struct walk *w, int rootfd, const char *rel,
			int quota)
{
	static const char *const subs[] = {"cur", "new", "tmp"};
	struct stat st;
	size_t i;
	int fd = below_domains(rel) ? open_maildir(rootfd, rel) : -EINVAL;

	str_trunc(&w->rel, 0);
	(void)str_cats(&w->rel, rel);
	if (fd < 0) {
		note(w, K_NOSUB);
		return;
	}
	for (i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if (fstatat(fd, subs[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			note(w, K_NOSUB);
			break;
		}
	if (quota && (fstatat(fd, "maildirsize", &st,
			      AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)))
		note(w, K_NOSIZE);
	(void)close(fd);
}

/* users_job - the Maildirs of the i-th run of USERS_JOB users */
static void users_job(struct pool *pl, struct walk *w, size_t i)
{
	size_t k, end = (i + 1) * USERS_JOB;

	for (k = i * USERS_JOB; k < end && k < pl->nusers; k++)
		one_maildir(w, pl->rootfd, pl->rels.s + pl->at[k],
			    pl->quota[k]);
}

/* add_user - one row of the users table, kept for the jobs */
static int add_user(struct pool *pl, size_t *cap, const char *rel,
		    int quota)
{
	if (pl->nusers == *cap) {
		size_t c = *cap ? 2 * *cap : 1024;
		size_t *at;
		unsigned char *q;

		if (c > SIZE_MAX / sizeof *at)
			return -ENOMEM;
		at = realloc(pl->at, c * sizeof *at);
		if (at)
			pl->at = at;
		q = at ? realloc(pl->quota, c) : NULL;
		if (!q)
			return -ENOMEM;
		pl->quota = q;
		*cap = c;
	}
	pl->at[pl->nusers] = pl->rels.len;
	pl->quota[pl->nusers] = quota != 0;
	if (str_catb(&pl->rels, rel, strlen(rel) + 1) < 0)
		return -ENOMEM;
	pl->nusers++;
	return 0;
}

/* maildirs_of_users - every user of the database: its Maildir; the
 * rows read first (a few MB for 100,000 users), then looked at in jobs */
static void maildirs_of_users(struct walk *w, int rootfd)
{
	static const char sql[] = "SELECT maildir, quota_bytes > 0 OR "
		"quota_msgs > 0 FROM users ORDER BY maildir";
	struct pool pl = {.top = w, .rootfd = rootfd, .job = users_job,
			  .rels = STR_INIT};
	struct store_stmt *st = NULL;
	size_t cap = 0, i;
	int rc, r = 0;

	rc = store_prepare(w->d->db, sql, &st);
	while (r == 0 && next_row(st, &rc)) {
		const char *rel = (const char *)store_column_text(st, 0);

		if (rel)
			r = add_user(&pl, &cap, rel, store_column_int(st, 1));
	}
	if (r < 0)
		(void)say(w->p, FAIL, "cannot read the users table: %s",
			  msg_err(r));
	else if (rc != STORE_DONE)
		(void)say(w->p, FAIL, "cannot read the users table: %s",
			  store_errmsg(w->d->db));
	store_finalize(st);
	/* jobs of whole runs, BATCH runs a batch */
	for (i = 0; r == 0 && i * USERS_JOB < pl.nusers; i += pl.n) {
		size_t left = (pl.nusers - i * USERS_JOB + USERS_JOB - 1) /
			USERS_JOB;

		pl.n = left < BATCH ? left : BATCH;
		pl.base = i;
		run_batch(&pl);
	}
	str_free(&pl.rels);
	free(pl.at);
	free(pl.quota);
}

/* verdict - one problem a kind found, with its count and first paths */
static int verdict(struct walk *w)
{
	struct str names = STR_INIT;
	const char *s;
	size_t k, i;
	int v = OK;

	for (k = 0; k < K_COUNT; k++) {
		if (!w->n[k])
			continue;
		names.len = 0;
		/* fewer than NAMED when memory ran out for one */
		for (i = 0, s = w->first[k].s; s && s < w->first[k].s +
		     w->first[k].len; i++, s += strlen(s) + 1)
			(void)str_catf(&names, "%s%s", i ? ", " : "", s);
		v = say(w->p, kinds[k].level > v ? kinds[k].level : v,
			"%s below %s: %lu (%s%s); %s", kinds[k].what,
			w->d->root, w->n[k], str_cstr(&names),
			w->n[k] > NAMED ? ", ..." : "", kinds[k].fix);
	}
	str_free(&names);
	return v;
}

int check_maildirs(struct doctor *d, struct report *p)
{
	struct walk w = {.d = d, .p = p, .uid = geteuid(), .rel = STR_INIT};
	int rootfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd, v;

	if (rootfd < 0)
		return say(p, FAIL, "cannot open %s: %s", d->root,
			   strerror(errno));
	fd = open_rel(rootfd, "domains");
	(void)str_cats(&w.rel, "domains");
	if (fd >= 0)
		walk_domains(&w, fd);
	if (d->db)
		maildirs_of_users(&w, rootfd);
	(void)close(rootfd);
	v = verdict(&w);
	if (fd < 0)
		v = say(p, FAIL, "cannot open %s/domains: %s; see the layout "
			"check", d->root, strerror(-fd));
	walk_free(&w);
	if (!d->db && v == OK)
		return say(p, WARN, "Maildirs not checked: the database did "
			   "not open");
	return v;
}
