/*
 * mbox - one user's Maildir as a POP3 session sees it.
 *
 * mbox_open() takes the session lock and lists new/ and cur/ once; that
 * list, in arrival order, is the session's message numbering (RFC 1939
 * wants it fixed for the session).
 *
 * The lock is flock(2) on Maildir/pop3.lock: the kernel drops it when the
 * process ends, however it ends, so a crashed session never leaves a
 * mailbox locked, and a second session is told [IN-USE] at once instead
 * of waiting. Delivery does not take it: Maildir needs no lock to add.
 * The file is opened for writing because on NFS Linux turns flock()
 * into a POSIX lock on the server, which is shared by every host
 * mounting the Maildir, and an exclusive one needs write access.
 *
 * new/ to cur/ is a rename to NAME:2, as Dovecot and Courier do, with
 * RENAME_NOREPLACE so that a name already in cur/ is never overwritten
 * (that message then stays in new/). It happens at QUIT, for the messages
 * the session keeps: a message that is retrieved and deleted in one
 * session (what most POP3 clients do) then costs one unlink instead of a
 * rename and an unlink, and a session that ends without QUIT leaves new/
 * as it found it. Another Maildir reader may rename a file while we run
 * (new/ to cur/, or its flags after ':'): a message whose file is gone is
 * looked for again in cur/ by its unique part before ':'.
 *
 * Memory: all names live in one growable buffer and each message costs a
 * 32-byte struct mmsg, so 50,000 messages take about 5 MB.
 *
 * Sizes: RFC 1939 counts a message with CRLF line ends. A name's ,W= is
 * that number; otherwise the file is read once and its bare LFs counted,
 * when a command first needs a size. ,S= (or what that read counted) is
 * the size on disk, which is what maildirsize counts.
 *
 * Reading a message (mbox_read) asks for one byte more than its size on
 * disk when that is known and small, and takes a shorter answer as the end
 * of the file: a regular file returns fewer bytes than asked only at its
 * end, and session processes catch no signal that could cut a read short.
 * So a message under 64 KiB is one read, without the read that returns 0
 * nor a stat, and the send buffer stays twice its size. The descriptor a
 * message was counted on (LIST, STAT) is kept, up to MBOX_KEEP of them, for
 * its RETR, which then reads by offset without opening the file again by
 * name; a kept message that another program removes meanwhile is still
 * the one the session listed.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"
#include "maildir.h"
#include "mdquota.h"
#include "pop3d.h"

#define MBOX_READ 65536
#define MBOX_KEEP 256		/* counted messages kept open for RETR */
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
	m->fd = -1;
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
static int listable(const char *name, unsigned char type)
{
	return name[0] != '.' && (type == DT_REG || type == DT_UNKNOWN);
}

/* buffer - the session's MBOX_READ bytes for directories and messages,
 * made at the first use */
static char *buffer(struct mbox *mb)
{
	if (!mb->buf)
		mb->buf = malloc(MBOX_READ);
	return mb->buf;
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

/* list_dir - every message of new/ (flags MSG_NEW) or cur/ (0). Read
 * with getdents64 on the descriptor the session keeps (just opened: at
 * its start) into the read buffer, since a DIR stream would cost an open,
 * an fstat, two fcntl and a close of its own at every login. */
static int list_dir(struct mbox *mb, int dirfd, uint16_t flags)
{
	char *buf = buffer(mb);
	ssize_t n = 0;
	int r = buf ? 0 : -ENOMEM;

	while (r == 0 && (n = getdents64(dirfd, buf, MBOX_READ)) > 0) {
		size_t pos = 0;

		while (r == 0 && pos < (size_t)n) {
			const struct dirent64 *de = (const void *)(buf + pos);

			/* the kernel's records; checked all the same */
			if (de->d_reclen == 0 || de->d_reclen > (size_t)n - pos)
				return -EIO;
			if (listable(de->d_name, de->d_type))
				r = add(mb, de->d_name, strlen(de->d_name), flags);
			pos += de->d_reclen;
		}
	}
	return r == 0 && n < 0 ? -errno : r;
}

/* cmp - arrival order, as far as names tell it */
static int cmp(const void *a, const void *b, void *arg)
{
	const struct mmsg *x = a, *y = b;
	const char *names = arg;

	return proto_natcmp(names + x->off, x->len, names + y->off, y->len);
}

/* mbox_open - lock and list ROOT/MAILDIR; -EWOULDBLOCK when another
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
	r = list_dir(mb, mb->newfd, MSG_NEW);
	if (r == 0)
		r = list_dir(mb, mb->curfd, 0);
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

/* mbox_msgfd - message i opened for reading (the caller closes it): the
 * descriptor its size was counted on when it was kept, else the file
 * opened now; -ENOENT when another process removed it */
int mbox_msgfd(struct mbox *mb, size_t i)
{
	int fd = mb->m[i].fd, r;

	if (fd >= 0) {
		mb->m[i].fd = -1;
		mb->kept--;
		return fd;
	}
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

/* mbox_ask - how many bytes one read of message i asks for: one more
 * than its size on disk when that is known and small, so that a single
 * short read ends the file (see the top of this file) */
size_t mbox_ask(const struct mbox *mb, size_t i)
{
	const struct mmsg *m = &mb->m[i];

	return m->flags & MSG_RAW && m->raw < MBOX_READ ? (size_t)m->raw + 1 :
	       MBOX_READ;
}

/* mbox_read - the piece of message file fd at offset off, asking for
 * `ask` bytes (at most MBOX_READ) into the session's read buffer (*p):
 * the count, or a negative errno. A count below `ask` (0 included) is the
 * end of the file: a regular file answers short only there, and nothing in
 * a session process catches a signal that could interrupt a read. By
 * offset (pread), so that a descriptor kept from LIST needs no seek. */
ssize_t mbox_read(struct mbox *mb, int fd, uint64_t off, size_t ask,
		  const char **p)
{
	ssize_t n;

	if (off > INT64_MAX)
		return -EFBIG;
	if (!buffer(mb))
		return -ENOMEM;
	*p = mb->buf;
	do
		n = pread(fd, mb->buf, ask < MBOX_READ ? ask : MBOX_READ,
			  (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* keep_cap - how many counted messages a session keeps open for RETR:
 * MBOX_KEEP, or fewer when the descriptor limit is low (asked once a
 * process; it does not change) */
static size_t keep_cap(void)
{
	static size_t cap = (size_t)-1;
	struct rlimit rl;

	if (cap == (size_t)-1) {
		cap = MBOX_KEEP;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 4 * MBOX_KEEP)
			cap = rl.rlim_cur / 4;
	}
	return cap;
}

/* count - read message file fd to its end: its size and bare LFs */
static int count(struct mbox *mb, size_t i, int fd, uint64_t *size,
		 uint64_t *bare)
{
	size_t ask = mbox_ask(mb, i);
	const char *p;
	ssize_t n;
	int cr = 0;

	*size = *bare = 0;
	do {
		n = mbox_read(mb, fd, *size, ask, &p);
		if (n < 0)
			return (int)n;
		*bare += proto_bare_lf(p, (size_t)n, &cr);
		*size += (uint64_t)n;
	} while ((size_t)n == ask);
	return 0;
}

/* mbox_octets - RFC 1939 size of message i. A file that cannot be read
 * counts with its size on disk (or 0): LIST still answers, and RETR of
 * it will say what is wrong. */
int mbox_octets(struct mbox *mb, size_t i, uint64_t *out)
{
	struct mmsg *m = &mb->m[i];
	uint64_t size, bare;
	int fd, r;

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
	r = count(mb, i, fd, &size, &bare);
	/* RETR follows LIST: it will read the file on this descriptor,
	 * without opening it again by name */
	if (r == 0 && mb->kept < keep_cap()) {
		m->fd = fd;
		mb->kept++;
	} else {
		close(fd);
	}
	if (r < 0)
		return r;
	m->raw = size;
	m->octets = size + bare;
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

/* commit_deletions - mbox_commit's unlinks and maildirsize line */
static int commit_deletions(struct mbox *mb, size_t *gone_r)
{
	struct str line = STR_INIT;
	uint64_t bytes = 0, raw;
	size_t i, gone = 0;
	int r = 0, e, fd, lk;

	*gone_r = 0;
	for (i = 0; i < mb->n && !(mb->m[i].flags & MSG_DELETED); i++)
		;
	if (i == mb->n)
		return 0;	/* nothing to remove: no lock to take */
	/* the shared quota lock from before the first unlink until the line
	 * is written: a recalculation (exclusive) then sees either neither
	 * or both, never the files gone and then the line again */
	lk = mdq_lock(mb->dfd, 0);
	if (lk < 0)
		return lk;
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
		mdq_unlock(lk);
		return r;
	}
	fd = mdq_open_append(mb->dfd);
	if (fd == -EILSEQ)	/* a link: the next delivery recalculates */
		(void)unlinkat(mb->dfd, "maildirsize", 0);
	if (fd < 0) {
		mdq_unlock(lk);
		return fd == -ENOENT || fd == -EILSEQ ? r : (r ? r : fd);
	}
	e = str_catf(&line, "-%llu -%zu\n", (unsigned long long)bytes, gone);
	if (e == 0)
		e = fsx_write_all(fd, line.s, line.len);
	if (close(fd) < 0 && e == 0)
		e = -errno;
	mdq_unlock(lk);
	str_free(&line);
	return r ? r : e;
}

/* keep_new - QUIT: the messages of new/ that stay go to cur/NAME:2, (one
 * that cannot, or that another reader moved first, is left where it is:
 * the next session lists it as well) */
static void keep_new(struct mbox *mb)
{
	struct str to = STR_INIT;
	size_t i;

	for (i = 0; i < mb->n; i++) {
		const struct mmsg *m = &mb->m[i];
		const char *name = mb->names.s + m->off;

		if ((m->flags & (MSG_NEW | MSG_DELETED)) != MSG_NEW)
			continue;
		if (str_copyb(&to, name, m->len) ||
		    (!memchr(name, ':', m->len) && str_cats(&to, ":2,")))
			break;
		(void)renameat2(mb->newfd, name, mb->curfd, to.s,
				RENAME_NOREPLACE);
	}
	str_free(&to);
}

/* mbox_pending - whether QUIT has anything to do: a message marked
 * deleted, or one in new/ to move */
int mbox_pending(const struct mbox *mb)
{
	size_t i;

	for (i = 0; i < mb->n; i++)
		if (mb->m[i].flags & (MSG_DELETED | MSG_NEW))
			return 1;
	return 0;
}

/* mbox_commit - QUIT: unlink what is marked deleted and account for it
 * in maildirsize, then move the kept messages of new/ to cur/. A message
 * someone else removed first is not ours to count. *gone_r is how many
 * files we removed; the first error other than that is returned after
 * trying every message. */
int mbox_commit(struct mbox *mb, size_t *gone_r)
{
	int r = commit_deletions(mb, gone_r);

	keep_new(mb);
	return r;
}

/* mbox_close - release the Maildir; closing lockfd drops the lock */
void mbox_close(struct mbox *mb)
{
	size_t i;

	if (mb->curfd >= 0)
		close(mb->curfd);
	if (mb->newfd >= 0)
		close(mb->newfd);
	if (mb->lockfd >= 0)
		close(mb->lockfd);
	if (mb->dfd >= 0)
		close(mb->dfd);
	mb->dfd = mb->curfd = mb->newfd = mb->lockfd = -1;
	for (i = 0; i < mb->n; i++)
		if (mb->m[i].fd >= 0)
			close(mb->m[i].fd);
	mb->kept = 0;
	free(mb->buf);
	mb->buf = NULL;
	str_free(&mb->names);
	free(mb->m);
	mb->m = NULL;
	mb->n = mb->cap = 0;
}
