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
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doctor.h"
#include "maildir.h"

/* the paths named for a kind before only the count goes on */
#define NAMED 3
/* deeper than a Maildir's folders ever go (vcheck walks 9) */
#define MAXDEPTH 16

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
	{FAIL, "files not mode 0600", "run facteur doctor --fix (chmod 600)"},
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
	struct report *p;
	uid_t uid;		/* the mail user: this process */
	struct str rel;		/* the entry's path below the root */
	unsigned long n[K_COUNT];
	struct str first[K_COUNT];	/* the first NAMED paths */
};

/* note - one finding of KIND at the current path */
static void note(struct walk *w, enum kind k)
{
	if (w->n[k]++ >= NAMED)
		return;
	if (w->first[k].len)
		(void)str_cats(&w->first[k], ", ");
	(void)str_catb(&w->first[k], w->rel.s, w->rel.len);
}

/* fix_mode - chmod NAME (in DFD) to WANT through its own descriptor,
 * when it is still ST, ours, and a directory or a single-link file */
static int fix_mode(struct walk *w, int dfd, const char *name,
		    const struct stat *st, mode_t want)
{
	int dir = S_ISDIR(st->st_mode), fd, r = 0;
	struct stat now;

	if (st->st_uid != w->uid || (!dir && st->st_nlink != 1))
		return -EPERM;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &now) < 0)
		r = -errno;
	else if (now.st_dev != st->st_dev || now.st_ino != st->st_ino ||
		 now.st_uid != w->uid || (now.st_mode & S_IFMT) !=
		 (st->st_mode & S_IFMT) || (!dir && now.st_nlink != 1))
		r = -EAGAIN;
	else if (fchmod(fd, want) < 0)
		r = -errno;
	(void)close(fd);
	if (r == 0)
		did(w->p, "chmod %o %s/%s (was %04o)", (unsigned)want,
		    w->d->root, w->rel.s, (unsigned)(st->st_mode & 07777));
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
	if (S_ISREG(st.st_mode) && maildir_dovecot_marker(name, mode))
		want = mode;	/* Dovecot's, read-only on purpose */
	k = S_ISDIR(st.st_mode) ? K_DIRMODE : mode & 0111 ? K_XBIT :
		K_FILEMODE;
	if (mode != want && !(w->d->fix && fix_mode(w, dfd, name, &st,
						    want) == 0))
		note(w, k);
	if (!S_ISDIR(st.st_mode) || depth >= MAXDEPTH)
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

/* one_maildir - REL has cur/, new/, tmp/, and maildirsize with a quota */
static void one_maildir(struct walk *w, int rootfd, const char *rel,
			int quota)
{
	static const char *const subs[] = {"cur", "new", "tmp"};
	struct stat st;
	size_t i;
	int fd = below_domains(rel) ? open_rel(rootfd, rel) : -EINVAL;

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

/* maildirs_of_users - every user of the database: its Maildir */
static void maildirs_of_users(struct walk *w, int rootfd)
{
	static const char sql[] = "SELECT maildir, quota_bytes > 0 OR "
		"quota_msgs > 0 FROM users ORDER BY maildir";
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(w->d->db, sql, -1, &st, NULL);
	while (next_row(st, &rc)) {
		const char *rel = (const char *)sqlite3_column_text(st, 0);

		if (rel)
			one_maildir(w, rootfd, rel, sqlite3_column_int(st, 1));
	}
	if (rc != SQLITE_DONE)
		(void)say(w->p, FAIL, "cannot read the users table: %s",
			  sqlite3_errmsg(w->d->db));
	sqlite3_finalize(st);
}

/* verdict - one problem a kind found, with its count and first paths */
static int verdict(struct walk *w)
{
	int v = OK;
	size_t k;

	for (k = 0; k < K_COUNT; k++) {
		if (!w->n[k])
			continue;
		v = say(w->p, kinds[k].level > v ? kinds[k].level : v,
			"%s below %s: %lu (%s%s); %s", kinds[k].what,
			w->d->root, w->n[k], str_cstr(&w->first[k]),
			w->n[k] > NAMED ? ", ..." : "", kinds[k].fix);
	}
	return v;
}

int check_maildirs(struct doctor *d, struct report *p)
{
	struct walk w = {.d = d, .p = p, .uid = geteuid(), .rel = STR_INIT};
	int rootfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd, v;
	size_t k;

	if (rootfd < 0)
		return say(p, FAIL, "cannot open %s: %s", d->root,
			   strerror(errno));
	fd = open_rel(rootfd, "domains");
	(void)str_cats(&w.rel, "domains");
	if (fd >= 0)
		walk_dir(&w, fd, 0);
	if (d->db)
		maildirs_of_users(&w, rootfd);
	(void)close(rootfd);
	v = verdict(&w);
	if (fd < 0)
		v = say(p, FAIL, "cannot open %s/domains: %s; see the layout "
			"check", d->root, strerror(-fd));
	str_free(&w.rel);
	for (k = 0; k < K_COUNT; k++)
		str_free(&w.first[k]);
	if (!d->db && v == OK)
		return say(p, WARN, "Maildirs not checked: the database did "
			   "not open");
	return v;
}
