/*
 * mdquota - the Maildir++ quota file (see mdquota.h).
 */
#include "mdquota.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir.h"
#include "num.h"

/* a usage line's numbers stay far from overflow when summed */
#define MDQ_VALUE_MAX (INT64_MAX / 4)

/* limits - the first line: items NNNS and NNNC separated by commas */
static int limits(const char *p, size_t n, struct quota *q)
{
	size_t i = 0;

	q->bytes = q->msgs = 0;
	while (i < n) {
		uint64_t v;
		size_t used;

		if (num_scan(p + i, n - i, UINT64_MAX, &v, &used) ||
		    (i += used) == n)
			return -EILSEQ;
		if (p[i] == 'S')
			q->bytes = v;
		else if (p[i] == 'C')
			q->msgs = v;
		else
			return -EILSEQ;
		i++;
		if (i < n && p[i++] != ',')
			return -EILSEQ;
		if (i == n && p[n - 1] == ',')
			return -EILSEQ;
	}
	return 0;
}

/* signed_num - an optional '-' and digits, within MDQ_VALUE_MAX */
static int signed_num(const char *p, size_t n, size_t *i, int64_t *out)
{
	int neg = 0;
	uint64_t v;
	size_t used;

	/* usage lines may go down (a deletion), so a sign: lib/num has none */
	if (*i < n && p[*i] == '-') {
		neg = 1;
		(*i)++;
	}
	if (num_scan(p + *i, n - *i, MDQ_VALUE_MAX, &v, &used))
		return -EILSEQ;
	*i += used;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* mdq_parse - limits and the sum of the usage lines; a last line without
 * its newline is a write in progress (or cut by a crash): not counted */
int mdq_parse(const char *buf, size_t len, struct mdq *q)
{
	const char *nl = memchr(buf, '\n', len);
	size_t i;
	int r;

	memset(q, 0, sizeof *q);
	if (!nl)
		return -EILSEQ;
	r = limits(buf, (size_t)(nl - buf), &q->limit);
	if (r < 0)
		return r;
	i = (size_t)(nl - buf) + 1;
	while (i < len) {
		const char *end = memchr(buf + i, '\n', len - i);
		size_t e, j = i;
		int64_t b, m;

		if (!end)
			break;
		e = (size_t)(end - buf);
		if (signed_num(buf, e, &j, &b) < 0)
			return -EILSEQ;
		if (j == e || (buf[j] != ' ' && buf[j] != '\t'))
			return -EILSEQ;
		while (j < e && (buf[j] == ' ' || buf[j] == '\t'))
			j++;
		if (signed_num(buf, e, &j, &m) < 0)
			return -EILSEQ;
		while (j < e && (buf[j] == ' ' || buf[j] == '\t' ||
				 buf[j] == '\r'))
			j++;
		if (j != e)
			return -EILSEQ;
		q->bytes += b;
		q->msgs += m;
		if (q->bytes > MDQ_VALUE_MAX || q->bytes < -MDQ_VALUE_MAX ||
		    q->msgs > MDQ_VALUE_MAX || q->msgs < -MDQ_VALUE_MAX)
			return -EILSEQ;
		q->lines++;
		i = e + 1;
	}
	if (q->bytes < 0 || q->msgs < 0)
		return -EILSEQ;	/* more removed than ever added: corrupt */
	return 0;
}

/* mdq_over - would adding this go past a limit (Dovecot's count) */
int mdq_over(const struct quota *lim, uint64_t bytes, uint64_t msgs,
	     uint64_t add_bytes, uint64_t add_msgs)
{
	if (lim->bytes && (bytes > lim->bytes ||
			   add_bytes > lim->bytes - bytes))
		return 1;
	if (lim->msgs && (msgs > lim->msgs || add_msgs > lim->msgs - msgs))
		return 1;
	return 0;
}

/* mdq_reached - usage at or above percent of either limit */
int mdq_reached(const struct quota *lim, uint64_t bytes, uint64_t msgs,
		unsigned long percent)
{
	/* in long double, so that 2^63-byte limits cannot overflow */
	if (percent == 0)
		return 0;
	if (lim->bytes && (long double)bytes * 100 >=
	    (long double)lim->bytes * percent)
		return 1;
	if (lim->msgs && (long double)msgs * 100 >=
	    (long double)lim->msgs * percent)
		return 1;
	return 0;
}

/* mdq_stale - must the file be recalculated before it is believed */
int mdq_stale(const struct mdq *q, size_t fsize, time_t age,
	      const struct quota *want, uint64_t add_bytes, uint64_t add_msgs)
{
	if (fsize >= MDQ_FILE_MAX || q->lines == 0)
		return 1;
	if (q->limit.bytes != want->bytes || q->limit.msgs != want->msgs)
		return 1;
	if (mdq_over(want, (uint64_t)q->bytes, (uint64_t)q->msgs, add_bytes,
		     add_msgs) && (q->lines > 1 || age > MDQ_STALE_SECS))
		return 1;
	return 0;
}

/* mdq_line - "BYTES MSGS\n" */
int mdq_line(struct str *out, int64_t bytes, int64_t msgs)
{
	out->len = 0;
	return str_catf(out, "%lld %lld\n", (long long)bytes, (long long)msgs);
}

/* mdq_lock - the quota lock: flock on MDQ_LOCK_FILE, a regular file of
 * the Maildir opened for writing. Not on the directory: Linux's NFS
 * client sends flock() to the server only for regular files (as a POSIX
 * lock on the whole file, which needs a descriptor open for writing to
 * be exclusive); on a directory it stays a lock of one host. Returns the
 * descriptor that holds the lock, for mdq_unlock() */
int mdq_lock(int dfd, int exclusive)
{
	int fd = openat(dfd, MDQ_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW |
			O_CLOEXEC | O_NONBLOCK, 0600);

	if (fd < 0)
		return -errno;
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno != EINTR) {
			int e = -errno;

			close(fd);
			return e;
		}
	}
	return fd;
}

/* mdq_unlock - release the lock of mdq_lock(): closing its descriptor
 * drops it (and, on NFS, the POSIX lock it stands for) */
void mdq_unlock(int lockfd)
{
	if (lockfd >= 0)
		(void)close(lockfd);
}

/* mdq_read - read and parse maildirsize (-ENOENT: none, -EILSEQ: bad) */
int mdq_read(int dfd, struct mdq *q, size_t *fsize_r, time_t *mtime_r)
{
	struct str buf = STR_INIT;
	struct stat st;
	int fd, r = 0;

	memset(q, 0, sizeof *q);
	fd = openat(dfd, "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	*fsize_r = (size_t)st.st_size;
	*mtime_r = st.st_mtime;
	/* a hard link is as untrusted as a symlink: recalculating renames
	 * a new file over the name and so leaves the other name alone */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		r = -EILSEQ;
		goto out;
	}
	/* a file this big is recalculated anyway: read no more of it */
	r = str_ready(&buf, MDQ_FILE_MAX);
	while (r == 0 && buf.len < MDQ_FILE_MAX) {
		ssize_t n = read(fd, buf.s + buf.len, MDQ_FILE_MAX - buf.len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		buf.len += (size_t)n;
	}
	if (r == 0)
		r = mdq_parse(buf.s, buf.len, q);
out:
	close(fd);
	str_free(&buf);
	return r;
}

/* recalc - count the Maildir and write a new maildirsize; the caller
 * holds the exclusive lock, so no delivery links or appends meanwhile */
static int recalc(int dfd, int tmpfd, const struct quota *want,
		  const char *host, struct mdq *q)
{
	struct mdfile f = MDFILE_INIT;
	struct str body = STR_INIT;
	struct maildir md = MAILDIR_INIT;
	uint64_t bytes, msgs;
	int r;

	r = maildir_usage(dfd, &bytes, &msgs);
	if (r == 0)
		r = quota_format(want, &body);
	if (r == 0)
		r = str_catf(&body, "\n%llu %llu\n", (unsigned long long)bytes,
			     (unsigned long long)msgs);
	md.tmpfd = tmpfd;	/* maildir_create() needs only tmp/ */
	if (r == 0)
		r = maildir_create(&md, host, &f);
	if (r == 0) {
		ssize_t w = write(f.fd, body.s, body.len);

		/* a cache: no fsync; a torn file is recalculated next time */
		if (w < 0)
			r = -errno;
		else if ((size_t)w != body.len)
			r = -EIO;
		if (close(f.fd) < 0 && r == 0)
			r = -errno;
		f.fd = -1;
		if (r == 0 && renameat(tmpfd, f.tmpname.s, dfd,
				       "maildirsize") < 0)
			r = -errno;
		if (r < 0)
			(void)unlinkat(tmpfd, f.tmpname.s, 0);
	}
	if (r == 0) {
		q->limit = *want;
		q->bytes = (int64_t)bytes;
		q->msgs = (int64_t)msgs;
		q->lines = 1;
	}
	str_free(&f.tmpname);
	str_free(&body);
	return r;
}

/* mdq_rebuild - recalculate now, under the exclusive lock */
int mdq_rebuild(int dfd, int tmpfd, const struct quota *want,
		const char *host, struct mdq *q)
{
	int lk = mdq_lock(dfd, 1), r;

	if (lk < 0)
		return lk;
	r = recalc(dfd, tmpfd, want, host, q);
	mdq_unlock(lk);
	return r;
}

/* fresh - read the file: 1 when it can be believed, 0 when it must be
 * recalculated (missing, malformed, a link, stale), or an error */
static int fresh(int dfd, const struct quota *want, uint64_t add_bytes,
		 uint64_t add_msgs, struct mdq *q)
{
	size_t fsize = 0;
	time_t mtime = 0;
	int r = mdq_read(dfd, q, &fsize, &mtime);

	if (r == -ENOENT || r == -EILSEQ || r == -ELOOP)
		return 0;
	if (r < 0)
		return r;
	return !mdq_stale(q, fsize, time(NULL) - mtime, want, add_bytes,
			  add_msgs);
}

/* mdq_usage - the usage to check a delivery of add_bytes/add_msgs against:
 * the file when it can be believed, else a recalculation */
int mdq_usage(int dfd, int tmpfd, const struct quota *want, const char *host,
	      uint64_t add_bytes, uint64_t add_msgs, struct mdq *q)
{
	int r = fresh(dfd, want, add_bytes, add_msgs, q), lk;

	if (r != 0)
		return r < 0 ? r : 0;
	lk = mdq_lock(dfd, 1);
	if (lk < 0)
		return lk;
	/* another delivery may have recalculated while we waited */
	r = fresh(dfd, want, add_bytes, add_msgs, q);
	if (r == 0)
		r = recalc(dfd, tmpfd, want, host, q);
	mdq_unlock(lk);
	return r < 0 ? r : 0;
}

/* mdq_open_append - maildirsize opened to append to, or -ENOENT, or
 * -EILSEQ when it is not one regular file of one link: a hard link the
 * Maildir's owner planted (to a file elsewhere) must not be written
 * through, any more than a symlink (O_NOFOLLOW) */
int mdq_open_append(int dfd)
{
	struct stat st;
	int fd = openat(dfd, "maildirsize", O_WRONLY | O_APPEND | O_NOFOLLOW |
			O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		return -EILSEQ;
	}
	return fd;
}

/* mdq_append - one usage line with one write; the caller holds the
 * shared lock. -ENOENT when there is no maildirsize to append to */
int mdq_append(int dfd, int64_t bytes, int64_t msgs)
{
	struct str line = STR_INIT;
	ssize_t w;
	int fd, r;

	r = mdq_line(&line, bytes, msgs);
	if (r < 0)
		return r;
	fd = mdq_open_append(dfd);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	w = write(fd, line.s, line.len);
	if (w < 0)
		r = -errno;
	else if ((size_t)w != line.len)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
out:
	str_free(&line);
	return r;
}
