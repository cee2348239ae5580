/*
 * mbox - one user's Maildir as a POP3 session sees it.
 *
 * mbox_open() takes the session lock, moves new/ messages to cur/ and
 * lists cur/ once; that list, in arrival order, is the session's message
 * numbering (RFC 1939 wants it fixed for the session).
 *
 * The lock is flock(2) on Maildir/pop3.lock: the kernel drops it when the
 * process ends, however it ends, so a crashed session never leaves a
 * mailbox locked, and a second session is told [IN-USE] at once instead
 * of waiting. Delivery does not take it: Maildir needs no lock to add.
 *
 * new/ to cur/ is a rename to NAME:2, as Dovecot and Courier do, with
 * RENAME_NOREPLACE so that a name already in cur/ is never overwritten
 * (that message is then served from new/). Another Maildir reader may
 * rename a cur/ file while we run (its flags after ':' change): a message
 * whose file is gone is looked for again by its unique part before ':'.
 *
 * Memory: all names live in one growable buffer and each message costs a
 * 24-byte struct mmsg, so 50,000 messages take about 5 MB.
 *
 * Sizes: RFC 1939 counts a message with CRLF line ends. A name's ,W= is
 * that number; otherwise the file is read once and its bare LFs counted,
 * when a command first needs a size. ,S= (or stat) is the size on disk,
 * which is what maildirsize counts.
 *
 * mbox_commit() runs at QUIT only: it unlinks the messages marked deleted
 * and, if the Maildir has a maildirsize (a quota), appends one line
 * "-BYTES -COUNT" with a single write on an O_APPEND descriptor, the
 * Maildir++ way, so concurrent deliveries' lines never interleave with ours.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"
#include "maildir.h"
#include "mdquota.h"
#include "pop3d.h"

#define MBOX_READ 65536
#define MBOX_MAX_MSGS 10000000	/* names stay under 4 GiB: 32-bit offsets */

/* add - one message name */
static int add(struct mbox *mb, const char *name, size_t len, uint16_t flags)
{
	struct mmsg *m;
	uint64_t v;

	if (len > UINT16_MAX || mb->n >= MBOX_MAX_MSGS ||
	    mb->names.len + len + 1 > UINT32_MAX)
		return -EFBIG;
	if (mb->n == mb->cap) {
		size_t cap = mb->cap ? mb->cap * 2 : 64;
		struct mmsg *nm = reallocarray(mb->m, cap, sizeof *nm);

		if (!nm)
			return -ENOMEM;
		mb->m = nm;
		mb->cap = cap;
	}
	m = &mb->m[mb->n];
	memset(m, 0, sizeof *m);
	m->off = (uint32_t)mb->names.len;
	m->len = (uint16_t)len;
	m->flags = flags;
	if (maildir_name_size(name, len, 'S', &v) == 0) {
		m->raw = v;
		m->flags |= MSG_RAW;
	}
	if (maildir_name_size(name, len, 'W', &v) == 0) {
		m->octets = v;
		m->flags |= MSG_OCTETS;
	}
	/* with its NUL, so a name can be passed to openat() as it is */
	if (str_catb(&mb->names, name, len) || str_catc(&mb->names, 0))
		return -ENOMEM;
	mb->n++;
	return 0;
}

/* listable - a message file name: no dot files, no directories or links */
static int listable(const struct dirent *de)
{
	return de->d_name[0] != '.' && (de->d_type == DT_REG ||
					de->d_type == DT_UNKNOWN);
}

/* open_dir - a directory of dirfd as a DIR stream (dirfd stays ours) */
static int open_dir(int dirfd, DIR **d_r)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	*d_r = fdopendir(fd);
	if (!*d_r) {
		int e = -errno;

		close(fd);
		return e;
	}
	return 0;
}

/* move_new - every new/ message to cur/NAME:2, (kept in new/ and listed
 * from there when the move is refused) */
static int move_new(struct mbox *mb)
{
	struct str to = STR_INIT;
	struct dirent *de;
	DIR *d;
	int r = open_dir(mb->newfd, &d);

	while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (!listable(de))
			continue;
		r = str_copyb(&to, de->d_name, len);
		if (r == 0 && !memchr(de->d_name, ':', len))
			r = str_cats(&to, ":2,");
		if (r < 0)
			break;
		if (renameat2(mb->newfd, de->d_name, mb->curfd, to.s,
			      RENAME_NOREPLACE) == 0 || errno == ENOENT)
			continue;
		r = add(mb, de->d_name, len, MSG_NEW);
	}
	if (r == 0 && errno)
		r = -errno;
	if (d)
		closedir(d);
	str_free(&to);
	return r;
}

/* list_cur - every cur/ message */
static int list_cur(struct mbox *mb)
{
	struct dirent *de;
	DIR *d;
	int r = open_dir(mb->curfd, &d);

	while (r == 0 && (errno = 0, de = readdir(d)) != NULL)
		if (listable(de))
			r = add(mb, de->d_name, strlen(de->d_name), 0);
	if (r == 0 && errno)
		r = -errno;
	if (d)
		closedir(d);
	return r;
}

/* cmp - arrival order, as far as names tell it */
static int cmp(const void *a, const void *b, void *arg)
{
	const struct mmsg *x = a, *y = b;
	const char *names = arg;

	return proto_natcmp(names + x->off, x->len, names + y->off, y->len);
}

/* mbox_open - lock, tidy and list ROOT/MAILDIR; -EWOULDBLOCK when another
 * session holds the lock */
int mbox_open(struct mbox *mb, const char *root, const char *maildir)
{
	struct str p = STR_INIT;
	int r;

	memset(mb, 0, sizeof *mb);
	mb->dfd = mb->curfd = mb->newfd = mb->lockfd = -1;
	r = str_catf(&p, "%s/%s", root, maildir);
	if (r < 0)
		return r;
	mb->dfd = open(p.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	str_free(&p);
	if (mb->dfd < 0)
		return -errno;
	mb->lockfd = openat(mb->dfd, "pop3.lock",
			    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (mb->lockfd < 0)
		return -errno;
	if (flock(mb->lockfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
	mb->curfd = openat(mb->dfd, "cur", O_RDONLY | O_DIRECTORY |
			   O_NOFOLLOW | O_CLOEXEC);
	if (mb->curfd < 0)
		return -errno;
	mb->newfd = openat(mb->dfd, "new", O_RDONLY | O_DIRECTORY |
			   O_NOFOLLOW | O_CLOEXEC);
	if (mb->newfd < 0)
		return -errno;
	r = move_new(mb);
	if (r == 0)
		r = list_cur(mb);
	if (r == 0 && mb->n > 1)
		qsort_r(mb->m, mb->n, sizeof *mb->m, cmp, mb->names.s);
	return r;
}

/* mbox_name - the current file name of message i (0-based) */
void mbox_name(const struct mbox *mb, size_t i, const char **s, size_t *len)
{
	*s = mb->names.s + mb->m[i].off;
	*len = mb->m[i].len;
}

/* dir_of - the directory that holds message i */
static int dir_of(const struct mbox *mb, size_t i)
{
	return mb->m[i].flags & MSG_NEW ? mb->newfd : mb->curfd;
}

/* refind - message i's file is gone: another reader may have renamed it
 * (new flags after ':'); look for its unique part in cur/ */
static int refind(struct mbox *mb, size_t i)
{
	const char *name = mb->names.s + mb->m[i].off;
	const char *colon = memchr(name, ':', mb->m[i].len);
	size_t base = colon ? (size_t)(colon - name) : mb->m[i].len;
	struct dirent *de;
	int r = -ENOENT, e;
	DIR *d;

	if (open_dir(mb->curfd, &d) < 0)
		return -ENOENT;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len > base && de->d_name[base] == ':' &&
		    !memcmp(de->d_name, name, base) && len <= UINT16_MAX &&
		    mb->names.len + len + 1 <= UINT32_MAX) {
			uint32_t off = (uint32_t)mb->names.len;

			/* name may point into names: copy before it moves */
			e = str_catb(&mb->names, de->d_name, len);
			if (e == 0)
				e = str_catc(&mb->names, 0);
			if (e < 0) {
				r = e;
				break;
			}
			mb->m[i].off = off;
			mb->m[i].len = (uint16_t)len;
			mb->m[i].flags &= (uint16_t)~MSG_NEW;
			r = 0;
			break;
		}
	}
	closedir(d);
	return r;
}

/* mbox_msgfd - message i opened for reading; -ENOENT when another process
 * removed it */
int mbox_msgfd(struct mbox *mb, size_t i)
{
	int fd, r;

	fd = openat(dir_of(mb, i), mb->names.s + mb->m[i].off,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd >= 0 ? fd : -errno;
	r = refind(mb, i);
	if (r < 0)
		return r;
	fd = openat(dir_of(mb, i), mb->names.s + mb->m[i].off,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* mbox_octets - RFC 1939 size of message i. A file that cannot be read
 * counts with its size on disk (or 0): LIST still answers, and RETR of
 * it will say what is wrong. */
int mbox_octets(struct mbox *mb, size_t i, uint64_t *out)
{
	struct mmsg *m = &mb->m[i];
	struct stat st;
	uint64_t bare = 0;
	char *buf;
	int fd, cr = 0, r = 0;
	ssize_t n;

	if (m->flags & MSG_OCTETS) {
		*out = m->octets;
		return 0;
	}
	fd = mbox_msgfd(mb, i);
	m = &mb->m[i];
	if (fd < 0) {
		m->octets = m->flags & MSG_RAW ? m->raw : 0;
		m->flags |= MSG_OCTETS;
		*out = m->octets;
		return fd;
	}
	buf = malloc(MBOX_READ);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while ((n = read(fd, buf, MBOX_READ)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		bare += proto_bare_lf(buf, (size_t)n, &cr);
	}
	free(buf);
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	m->raw = (uint64_t)st.st_size;
	m->octets = (uint64_t)st.st_size + bare;
	m->flags |= MSG_OCTETS | MSG_RAW;
	*out = m->octets;
	return 0;
}

/* mbox_sizes - every message's size, for STAT and LIST */
int mbox_sizes(struct mbox *mb)
{
	uint64_t v;
	size_t i;

	if (mb->sized)
		return 0;
	for (i = 0; i < mb->n; i++) {
		int r = mbox_octets(mb, i, &v);

		if (r == -ENOMEM)
			return r;
	}
	mb->sized = 1;
	return 0;
}

/* unlink_msg - remove message i's file; its size on disk in *raw */
static int unlink_msg(struct mbox *mb, size_t i, uint64_t *raw)
{
	struct mmsg *m = &mb->m[i];
	struct stat st;
	int dfd = dir_of(mb, i);
	const char *name = mb->names.s + m->off;

	if (!(m->flags & MSG_RAW)) {
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno == ENOENT && refind(mb, i) == 0) {
			m = &mb->m[i];
			dfd = dir_of(mb, i);
			name = mb->names.s + m->off;
		}
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			m->raw = (uint64_t)st.st_size;
			m->flags |= MSG_RAW;
		}
	}
	*raw = m->raw;
	if (unlinkat(dfd, name, 0) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if (refind(mb, i) < 0)
		return -ENOENT;
	m = &mb->m[i];
	return unlinkat(dir_of(mb, i), mb->names.s + m->off, 0) == 0 ? 0 :
	       -errno;
}

/* mbox_commit - QUIT: unlink what is marked deleted and account for it
 * in maildirsize. A message someone else removed first is not ours to
 * count. *gone_r is how many files we removed; the first error other
 * than that is returned after trying every message. */
int mbox_commit(struct mbox *mb, size_t *gone_r)
{
	struct str line = STR_INIT;
	uint64_t bytes = 0, raw;
	size_t i, gone = 0;
	int r = 0, e, fd;

	/* the shared quota lock from before the first unlink until the line
	 * is written: a recalculation (exclusive) then sees either neither
	 * or both, never the files gone and then the line again */
	e = mdq_lock(mb->dfd, 0);
	if (e < 0)
		return e;
	for (i = 0; i < mb->n; i++) {
		if (!(mb->m[i].flags & MSG_DELETED))
			continue;
		e = unlink_msg(mb, i, &raw);
		if (e == 0) {
			gone++;
			bytes += raw;
		} else if (e != -ENOENT && r == 0) {
			r = e;
		}
	}
	*gone_r = gone;
	if (gone == 0) {
		mdq_unlock(mb->dfd);
		return r;
	}
	fd = mdq_open_append(mb->dfd);
	if (fd == -EILSEQ)	/* a link: the next delivery recalculates */
		(void)unlinkat(mb->dfd, "maildirsize", 0);
	if (fd < 0) {
		mdq_unlock(mb->dfd);
		return fd == -ENOENT || fd == -EILSEQ ? r : (r ? r : fd);
	}
	e = str_catf(&line, "-%llu -%zu\n", (unsigned long long)bytes, gone);
	if (e == 0)
		e = fsx_write_all(fd, line.s, line.len);
	if (close(fd) < 0 && e == 0)
		e = -errno;
	mdq_unlock(mb->dfd);
	str_free(&line);
	return r ? r : e;
}

/* mbox_close - release the Maildir; closing lockfd drops the lock */
void mbox_close(struct mbox *mb)
{
	if (mb->curfd >= 0)
		close(mb->curfd);
	if (mb->newfd >= 0)
		close(mb->newfd);
	if (mb->lockfd >= 0)
		close(mb->lockfd);
	if (mb->dfd >= 0)
		close(mb->dfd);
	mb->dfd = mb->curfd = mb->newfd = mb->lockfd = -1;
	str_free(&mb->names);
	free(mb->m);
	mb->m = NULL;
	mb->n = mb->cap = 0;
}
