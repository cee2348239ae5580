/*
 * maildir - writing into a Maildir the safe way (see maildir.h).
 */
#include "maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "num.h"

static unsigned long seq;	/* Q: files named by this process so far */

/* maildir_host - the host part of a name: '/', ':' and ',' escaped */
int maildir_host(struct str *out, const char *host)
{
	const char *p;
	int r = 0;

	out->len = 0;
	if (!host || !*host)
		host = "localhost";
	for (p = host; r == 0 && *p; p++) {
		if (*p == '/')
			r = str_cats(out, "\\057");
		else if (*p == ':')
			r = str_cats(out, "\\072");
		else if (*p == ',')
			r = str_cats(out, "\\054");
		else if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			r = str_catc(out, '_');
		else
			r = str_catc(out, *p);
	}
	return r;
}

/* maildir_name - TIME.M<usec>P<pid>Q<seq>[V<dev>I<ino>].HOST[,S=<size>] */
int maildir_name(struct str *out, const struct mdname *n)
{
	int r;

	out->len = 0;
	r = str_catf(out, "%llu.M%luP%luQ%lu", (unsigned long long)n->sec,
		     n->usec, n->pid, n->seq);
	if (r == 0 && n->have_inode)
		r = str_catf(out, "V%llxI%llx", (unsigned long long)n->dev,
			     (unsigned long long)n->ino);
	if (r == 0)
		r = str_catf(out, ".%s", n->host ? n->host : "localhost");
	if (r == 0 && n->have_size)
		r = str_catf(out, ",S=%llu", (unsigned long long)n->size);
	return r;
}

/* maildir_name_size - the number after ",S=" (size on disk) or ",W="
 * (size with CRLF line ends) among the comma fields of a Maildir name,
 * before the ':' of the flags; -ENOENT when absent or not a clean number.
 * One reader for vdeliver's quota scan and pop3d's listing */
int maildir_name_size(const char *name, size_t len, char field,
		      uint64_t *out)
{
	const char *colon = memchr(name, ':', len);
	size_t i, used, end = colon ? (size_t)(colon - name) : len;
	uint64_t v;

	for (i = 0; i + 3 <= end; i++) {
		if (name[i] != ',' || name[i + 1] != field || name[i + 2] != '=' ||
		    num_scan(name + i + 3, end - i - 3, UINT64_MAX, &v, &used) ||
		    (i + 3 + used < end && name[i + 3 + used] != ','))
			continue;
		*out = v;
		return 0;
	}
	return -ENOENT;
}

/* open_dir - a directory below at, never through a symbolic link */
static int open_dir(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);

	if (fd >= 0)
		return fd;
	/* O_NOFOLLOW on a link gives ELOOP, or ENOTDIR with O_DIRECTORY on
	 * some kernels: say "symbolic link" either way */
	if (errno == ENOTDIR) {
		struct stat st;

		if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			return -ELOOP;
		return -ENOTDIR;
	}
	return -errno;
}

/* sub_dir - tmp/ or new/; made again (0700) when someone removed it */
static int sub_dir(int dfd, const char *name, int *made)
{
	int fd = open_dir(dfd, name);

	if (fd != -ENOENT)
		return fd;
	if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	*made = 1;
	return open_dir(dfd, name);
}

/* maildir_open - ROOT/REL and its tmp/ and new/, following no link */
int maildir_open(int rootfd, const char *rel, struct maildir *md)
{
	struct str part = STR_INIT;
	const char *p = rel, *slash;
	int fd = -1, at = rootfd, made = 0, r = 0;

	md->dfd = md->tmpfd = md->newfd = -1;
	if (*rel == '/' || *rel == 0)
		return -EINVAL;
	while (r == 0 && *p) {
		slash = strchr(p, '/');
		r = str_copyb(&part, p, slash ? (size_t)(slash - p) : strlen(p));
		if (r < 0)
			break;
		/* the path comes from a table: it must stay below the root */
		if (part.len == 0 || str_eqs(&part, ".") ||
		    str_eqs(&part, "..")) {
			r = -EINVAL;
			if (at != rootfd)
				close(at);
			break;
		}
		/* the first component (domains/) may be a link to another
		 * disk, an admin's choice; below it nothing is followed */
		if (at == rootfd) {
			fd = openat(at, part.s, O_RDONLY | O_DIRECTORY |
				    O_CLOEXEC);
			if (fd < 0)
				fd = -errno;
		} else {
			fd = open_dir(at, part.s);
		}
		if (at != rootfd)
			close(at);
		at = rootfd;
		if (fd < 0) {
			r = fd;
			break;
		}
		at = fd;
		p = slash ? slash + 1 : p + part.len;
	}
	str_free(&part);
	if (r < 0)
		return r;
	md->dfd = at;
	md->tmpfd = sub_dir(md->dfd, "tmp", &made);
	if (md->tmpfd >= 0)
		md->newfd = sub_dir(md->dfd, "new", &made);
	r = md->tmpfd < 0 ? md->tmpfd : md->newfd < 0 ? md->newfd : 0;
	if (r == 0 && made) {
		/* a damaged Maildir: readers want cur/ too */
		if (mkdirat(md->dfd, "cur", 0700) < 0 && errno != EEXIST)
			r = -errno;
		if (r == 0 && fsync(md->dfd) < 0)
			r = -errno;
	}
	if (r < 0) {
		maildir_close(md);
		return r;
	}
	return 0;
}

/* maildir_close - close the three directories */
void maildir_close(struct maildir *md)
{
	if (md->newfd >= 0)
		close(md->newfd);
	if (md->tmpfd >= 0)
		close(md->tmpfd);
	if (md->dfd >= 0)
		close(md->dfd);
	md->dfd = md->tmpfd = md->newfd = -1;
}

/* maildir_create - a new empty file in tmp/, opened for writing */
int maildir_create(struct maildir *md, const char *host, struct mdfile *f)
{
	struct timespec ts;
	int tries, r = 0;

	f->fd = -1;
	for (tries = 0; tries < 10; tries++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		memset(&f->id, 0, sizeof f->id);
		f->id.sec = (uint64_t)ts.tv_sec;
		f->id.usec = (unsigned long)(ts.tv_nsec / 1000);
		f->id.pid = (unsigned long)getpid();
		f->id.seq = ++seq;
		f->id.host = host;
		r = maildir_name(&f->tmpname, &f->id);
		if (r < 0)
			return r;
		f->fd = openat(md->tmpfd, f->tmpname.s, O_WRONLY | O_CREAT |
			       O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f->fd >= 0)
			return 0;
		/* only a leftover of a dead process with our pid collides */
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* maildir_sync - the file's data on disk, then closed */
int maildir_sync(struct mdfile *f)
{
	struct stat st;
	int r = 0;

	if (fstat(f->fd, &st) < 0)
		r = -errno;
	else {
		f->id.have_inode = 1;
		f->id.dev = (uint64_t)st.st_dev;
		f->id.ino = (uint64_t)st.st_ino;
	}
	if (r == 0 && fsync(f->fd) < 0)
		r = -errno;
	if (close(f->fd) < 0 && r == 0)
		r = -errno;
	f->fd = -1;
	return r;
}

/* maildir_deliver - from tmp/ into new/: link (or rename), unlink, fsync */
int maildir_deliver(struct maildir *md, struct mdfile *f, uint64_t size,
		    struct str *newname)
{
	int r;

	f->id.have_size = 1;
	f->id.size = size;
	r = maildir_name(newname, &f->id);
	if (r < 0)
		return r;
	if (linkat(md->tmpfd, f->tmpname.s, md->newfd, newname->s, 0) == 0) {
		/* the file is delivered; a tmp/ name left by a failed unlink
		 * is only a stale file, which readers ignore */
		(void)unlinkat(md->tmpfd, f->tmpname.s, 0);
	} else if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS ||
		   errno == EMLINK) {
		/* no hard links here (some network and FUSE file systems):
		 * rename, without replacing anything */
		if (renameat2(md->tmpfd, f->tmpname.s, md->newfd, newname->s,
			      RENAME_NOREPLACE) < 0 &&
		    (errno != EINVAL ||
		     renameat(md->tmpfd, f->tmpname.s, md->newfd,
			      newname->s) < 0))
			return -errno;
	} else {
		return -errno;
	}
	if (fsync(md->newfd) < 0) {
		/* not durable, so not delivered: take it back, or the retry
		 * that the failure asks for would make a second copy */
		r = -errno;
		(void)unlinkat(md->newfd, newname->s, 0);
		return r;
	}
	return 0;
}

/* maildir_abort - throw an unfinished file away */
void maildir_abort(struct maildir *md, struct mdfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmpname.len && md->tmpfd >= 0)
		(void)unlinkat(md->tmpfd, f->tmpname.s, 0);
	str_trunc(&f->tmpname, 0);
}

/* sum_dir - messages and bytes of one new/ or cur/ (missing: nothing) */
static int sum_dir(int at, const char *name, uint64_t *bytes, uint64_t *msgs)
{
	int fd = open_dir(at, name);
	struct dirent *de;
	DIR *d;

	if (fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR)
		return 0;
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		uint64_t size;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (maildir_name_size(de->d_name, strlen(de->d_name), 'S',
				      &size) < 0) {
			/* gone meanwhile (a reader moved it): not counted */
			if (fstatat(fd, de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			size = (uint64_t)st.st_size;
		}
		*bytes += size;
		(*msgs)++;
	}
	if (errno) {
		int e = -errno;

		closedir(d);
		return e;
	}
	closedir(d);
	return 0;
}

/* maildir_usage - bytes and messages of the Maildir and its folders */
int maildir_usage(int dfd, uint64_t *bytes_r, uint64_t *msgs_r)
{
	struct dirent *de;
	DIR *d;
	int fd, r;

	*bytes_r = *msgs_r = 0;
	r = sum_dir(dfd, "new", bytes_r, msgs_r);
	if (r == 0)
		r = sum_dir(dfd, "cur", bytes_r, msgs_r);
	if (r < 0)
		return r;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		int sub;

		/* Maildir++ folders: ".NAME", directories, never links */
		if (de->d_name[0] != '.' || !strcmp(de->d_name, ".") ||
		    !strcmp(de->d_name, ".."))
			continue;
		sub = open_dir(fd, de->d_name);
		if (sub < 0)
			continue;
		r = sum_dir(sub, "new", bytes_r, msgs_r);
		if (r == 0)
			r = sum_dir(sub, "cur", bytes_r, msgs_r);
		close(sub);
	}
	closedir(d);
	return r;
}

/* maildir_mode_ok - see maildir.h */
int maildir_mode_ok(const char *name, unsigned st_mode)
{
	unsigned mode = st_mode & 07777;

	if (S_ISDIR(st_mode))
		return mode == 0700;
	return ((mode & 0177) == 0 && (mode & 0400)) ||
	       maildir_dovecot_marker(name, mode);
}

/* maildir_dovecot_marker - Dovecot's read-only uidvalidity marker */
int maildir_dovecot_marker(const char *name, unsigned mode)
{
	static const char pre[] = "dovecot-uidvalidity.";

	return mode == 0444 && !strncmp(name, pre, sizeof pre - 1) &&
	       name[sizeof pre - 1] &&
	       strspn(name + sizeof pre - 1, "0123456789abcdef") ==
	       strlen(name + sizeof pre - 1);
}
