/*
 * deliver - the message read once and written into every mailbox.
 *
 * One mailbox and nothing else (the common case): the message streams
 * from standard input straight into the mailbox's tmp/ file. Several
 * destinations: standard input is read again with pread when it is a
 * regular file (qmail gives a queue file), else it is spooled once into
 * an unnamed file (O_TMPFILE) in the first mailbox's tmp/ and copied from
 * there. Either way the header is scanned on the way (lib/hdrscan.h) and
 * nothing but a fixed 64 KiB buffer holds message bytes, whatever the
 * message's size.
 *
 * Every mailbox's quota is checked before any copy is written, so that a
 * full mailbox among several makes the whole delivery wait (111) instead
 * of repeating the others at each retry. A copy goes: tmp/ file, our
 * Return-Path: and Delivered-To: lines (with the line end of the message's
 * first line), the message as it is (no conversion: bare LF, CR LF, NUL
 * bytes all stay), quota check with the real size, fsync, then under the
 * shared maildirsize lock: link into new/, fsync new/, one maildirsize
 * line (lib/mdquota.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "date.h"
#include "fsx.h"
#include "hdrscan.h"
#include "queue.h"
#include "vdeliver.h"

#define IOBUF 65536

static char iobuf[IOBUF];	/* the one buffer message bytes pass through */

/* xread - read(2) without EINTR */
static ssize_t xread(int fd, void *b, size_t n)
{
	ssize_t r;

	do
		r = read(fd, b, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* prefix - the lines in front of a copy: Return-Path: for a mailbox, and
 * one Delivered-To: per address of the target's chain */
int prefix(struct str *out, const char *sender, const struct target *t,
	   int crlf)
{
	const char *eol = crlf ? "\r\n" : "\n";
	size_t i;
	int r = 0;

	out->len = 0;
	/* a double bounce is a bounce: <> to its reader */
	if (!strcmp(sender, QUEUE_DBL_SENDER))
		sender = "";
	if (!t->remote)
		r = str_catf(out, "Return-Path: <%s>%s", sender, eol);
	for (i = 0; r == 0 && i < t->chain.len;
	     i += strlen(t->chain.s + i) + 1)
		r = str_catf(out, "Delivered-To: %s%s", t->chain.s + i, eol);
	return r;
}

/* first_line_crlf - does the first line in buf end in CR LF */
static int first_line_crlf(const char *buf, size_t n)
{
	const char *nl = memchr(buf, '\n', n);

	return nl && nl > buf && nl[-1] == '\r';
}

/* check_message - the loop and emptiness verdicts, once the header is read */
static void check_message(struct vd *v, const struct hdrscan *h, uint64_t len)
{
	size_t i = 0;
	long k;

	if (len == 0)
		vd_fail(v, EX_PERM, "5.6.0", "the message is empty (no header, "
			"no body): nothing to deliver");
	if (h->delivered > VD_DELIVERED_MAX)
		vd_fail(v, EX_PERM, "5.4.6", "mail loop: the message has %lu "
			"Delivered-To: lines, more than %d", h->delivered,
			VD_DELIVERED_MAX);
	if (h->match < 0)
		return;
	for (k = 0; k < h->match; k++)
		i += strlen(v->seen.s + i) + 1;
	vd_fail(v, EX_PERM, "5.4.6", "mail loop: the message already has "
		"Delivered-To: %s", v->seen.s + i);
}

/* early_verdict - a loop is known when the header ends: refuse it then,
 * not after copying a body of any size */
static void early_verdict(struct vd *v, const struct hdrscan *h)
{
	if (h->done && (h->match >= 0 || h->delivered > VD_DELIVERED_MAX))
		check_message(v, h, h->bytes);
}

/* open_box - the target's Maildir, or a failure that says what is wrong */
static void open_box(struct vd *v, struct target *t)
{
	int r;

	if (t->md.dfd >= 0)
		return;
	r = maildir_open(v->rootfd, t->maildir.s, &t->md);
	if (r == -ENOENT)
		vd_fail(v, EX_TEMP, "4.2.0", "the mailbox of %s is missing "
			"(%s/%s); run 'vadmin check --repair'", t->addr.s,
			v->root, t->maildir.s);
	if (r == -ELOOP)
		vd_fail(v, EX_TEMP, "4.2.0", "the mailbox of %s (%s) or its tmp/ "
			"or new/ is a symbolic link; refusing to follow it: "
			"replace it by a directory", t->addr.s, t->maildir.s);
	if (r == -EINVAL)
		vd_fail(v, EX_TEMP, "4.3.0", "the mailbox path of %s in the "
			"tables (%s) leaves the root; run 'vadmin rebuild'",
			t->addr.s, t->maildir.s);
	if (r < 0)
		vd_fail_errno(v, r, "cannot open the mailbox of %s (%s)",
			      t->addr.s, t->maildir.s);
}

/* has_quota - does the mailbox have a limit */
static int has_quota(const struct target *t)
{
	return t->quota.bytes || t->quota.msgs;
}

/* quota_check - refuse a copy of size bytes that would take the mailbox
 * past its limit: 111 (it may be emptied) unless control/quotabounce */
static void quota_check(struct vd *v, struct target *t, uint64_t size)
{
	static struct str size_text;	/* static: vd_fail() exits */
	unsigned long bounce = 0;
	int r;

	if (!has_quota(t))
		return;
	r = mdq_usage(t->md.dfd, t->md.tmpfd, &t->quota, v->host.s, size, 1,
		      &t->usage);
	if (r < 0)
		vd_fail_errno(v, r, "cannot read the quota of %s (maildirsize)",
			      t->addr.s);
	if (!mdq_over(&t->quota, (uint64_t)t->usage.bytes,
		      (uint64_t)t->usage.msgs, size, 1))
		return;
	(void)ctl_num(v->root, CTL_QUOTABOUNCE, &bounce); /* else 0: 4xx */
	size_text.len = 0;
	if (size > 0 && str_catf(&size_text, ", and this message has %llu "
				 "bytes", (unsigned long long)size) < 0)
		size_text.len = 0;
	vd_fail(v, bounce == 1 ? EX_PERM : EX_TEMP, bounce == 1 ? "5.2.2" :
		"4.2.2", "the mailbox of %s is full: it holds %lld bytes in "
		"%lld messages of at most %llu bytes and %llu messages (0: no "
		"limit)%s", t->addr.s, (long long)t->usage.bytes,
		(long long)t->usage.msgs, (unsigned long long)t->quota.bytes,
		(unsigned long long)t->quota.msgs, str_cstr(&size_text));
}

/* new_file - a tmp/ file for the target */
static void new_file(struct vd *v, struct target *t)
{
	int r = maildir_create(&t->md, v->host.s, &t->f);

	if (r < 0)
		vd_fail_errno(v, r, "cannot create a file in the tmp/ of %s",
			      t->addr.s);
}

/* commit - fsync, then under the shared lock link into new/ and count it
 * in maildirsize; *name_r is the name in new/ */
static int commit(struct vd *v, struct target *t, uint64_t size,
		  struct str *name_r)
{
	int r = maildir_sync(&t->f), q = 0, lk = -1;

	if (r == 0 && has_quota(t) && (lk = mdq_lock(t->md.dfd, 0)) < 0)
		r = lk;
	if (r < 0)
		return r;
	r = maildir_deliver(&t->md, &t->f, size, name_r);
	if (r == 0 && has_quota(t)) {
		q = mdq_append(t->md.dfd, (int64_t)size, 1);
		/* could not count it: remove the file, so that the next
		 * delivery recalculates instead of believing it */
		if (q < 0 && q != -ENOENT)
			(void)unlinkat(t->md.dfd, "maildirsize", 0);
	}
	mdq_unlock(lk);
	if (r == 0 && q == -ENOENT &&
	    mdq_rebuild(t->md.dfd, t->md.tmpfd, &t->quota, v->host.s,
			&t->usage) == 0) {
		/* counted this message: keep "before it", as elsewhere */
		t->usage.bytes -= (int64_t)size;
		t->usage.msgs -= 1;
	}
	if (r == 0)
		str_trunc(&t->f.tmpname, 0);	/* delivered: not ours to remove */
	return r;
}

/* warn_text - the quota warning message */
static int warn_text(struct vd *v, const struct target *t, uint64_t bytes,
		     uint64_t msgs, unsigned long pct, struct str *out)
{
	struct str me = STR_INIT, date = STR_INIT;
	time_t now = time(NULL);
	int r = ctl_me(v->root, &me);

	out->len = 0;
	if (r == 0)
		r = date_cat(&date, now);
	if (r == 0)
		r = str_catf(out,
"Return-Path: <>\n"
"Delivered-To: %s\n"
"From: Mail Delivery System <MAILER-DAEMON@%s>\n"
"To: <%s>\n"
"Subject: Your mailbox is %lu%% full\n"
"Date: %s\n"
"Message-ID: <%lld.%ld.quotawarn@%s>\n"
"Auto-Submitted: auto-generated\n"
"MIME-Version: 1.0\n"
"Content-Type: text/plain; charset=us-ascii\n"
"\n"
"Your mailbox %s now holds %llu bytes in %llu messages.\n"
"Its limit is %llu bytes and %llu messages (0 means no limit), and it\n"
"has reached %lu%% of it. When it is full, new mail for you is held\n"
"back or returned to its senders.\n"
"\n"
"Please delete or download some messages.\n",
			     t->addr.s, me.s, t->addr.s, pct, date.s,
			     (long long)now, (long)getpid(), me.s, t->addr.s,
			     (unsigned long long)bytes,
			     (unsigned long long)msgs,
			     (unsigned long long)t->quota.bytes,
			     (unsigned long long)t->quota.msgs, pct);
	str_free(&me);
	str_free(&date);
	return r;
}

/* quota_warn - once usage reaches control/quotawarn percent, deliver one
 * warning; the file quotawarn in the Maildir remembers that it was sent
 * until usage is below the mark again. Nothing here fails the delivery. */
static void quota_warn(struct vd *v, struct target *t, uint64_t size)
{
	struct mdfile f = MDFILE_INIT, keep = t->f;
	struct str text = STR_INIT, name = STR_INIT;
	uint64_t bytes = (uint64_t)t->usage.bytes + size;
	uint64_t msgs = (uint64_t)t->usage.msgs + 1;
	unsigned long pct;
	int fd, r;

	if (!has_quota(t))
		return;
	(void)ctl_num(v->root, CTL_QUOTAWARN, &pct);	/* else the default */
	if (!mdq_reached(&t->quota, bytes, msgs, pct)) {
		(void)unlinkat(t->md.dfd, "quotawarn", 0);
		return;
	}
	/* O_EXCL: of deliveries running at once, one sends the warning */
	fd = openat(t->md.dfd, "quotawarn", O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	close(fd);
	t->f = f;
	r = warn_text(v, t, bytes, msgs, pct, &text);
	if (r == 0)
		r = maildir_create(&t->md, v->host.s, &t->f);
	if (r == 0)
		r = fsx_write_all(t->f.fd, text.s, text.len);
	if (r == 0)
		r = commit(v, t, text.len, &name);
	if (r == 0) {
		vd_log(v, "delivered quota warning to %s: new/%s", t->addr.s,
		       name.s);
	} else {
		maildir_abort(&t->md, &t->f);
		(void)unlinkat(t->md.dfd, "quotawarn", 0);
		vd_log(v, "quota warning to %s not delivered: %s", t->addr.s,
		       strerror(-r));
	}
	str_free(&t->f.tmpname);
	t->f = keep;
	str_free(&text);
	str_free(&name);
}

/* finish - the copy is written: quota, commit, log, warning */
static void finish(struct vd *v, struct target *t, uint64_t size)
{
	struct str name = STR_INIT;
	int r;

	quota_check(v, t, size);
	r = commit(v, t, size, &name);
	if (r < 0)
		vd_fail_errno(v, r, "cannot deliver into the mailbox of %s",
			      t->addr.s);
	vd_log(v, "delivered msg to %s: new/%s", t->addr.s, name.s);
	quota_warn(v, t, size);
	str_free(&name);
}

/* stream - one mailbox: standard input straight into its tmp/ file */
static void stream(struct vd *v, struct target *t)
{
	struct str pre = STR_INIT;
	struct hdrscan h;
	size_t n = 0;
	ssize_t got;
	int r;

	open_box(v, t);
	/* a mailbox already full waits without reading a byte */
	quota_check(v, t, 0);
	new_file(v, t);
	/* our lines end like the message's first line: read that far */
	while (n < IOBUF && !memchr(iobuf, '\n', n)) {
		got = xread(0, iobuf + n, IOBUF - n);
		if (got < 0)
			vd_fail_errno(v, -errno, "cannot read the message");
		if (got == 0)
			break;
		n += (size_t)got;
	}
	r = prefix(&pre, v->sender, t, first_line_crlf(iobuf, n));
	if (r == 0)
		r = fsx_write_all(t->f.fd, pre.s, pre.len);
	hdrscan_init(&h, v->seen.s, v->seen.len);
	while (r == 0 && n > 0) {
		if (!h.done) {
			r = hdrscan_feed(&h, iobuf, n);
			early_verdict(v, &h);
		} else {
			h.bytes += n;
		}
		if (r == 0)
			r = fsx_write_all(t->f.fd, iobuf, n);
		if (r < 0)
			break;
		got = xread(0, iobuf, IOBUF);
		if (got < 0)
			vd_fail_errno(v, -errno, "cannot read the message");
		n = (size_t)got;
	}
	if (r < 0)
		vd_fail_errno(v, r, "cannot write into the tmp/ of %s",
			      t->addr.s);
	hdrscan_end(&h);
	check_message(v, &h, h.bytes);
	finish(v, t, pre.len + h.bytes);
	hdrscan_free(&h);
	str_free(&pre);
}

/* spool_open - an unnamed file in dirfd to hold the message once */
static int spool_open(int dirfd)
{
	struct str name = STR_INIT;
	struct timespec ts;
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
			errno != EINVAL))
		return fd < 0 ? -errno : fd;
	/* no O_TMPFILE here: a name for as short a time as possible */
	clock_gettime(CLOCK_REALTIME, &ts);
	if (str_catf(&name, "vdeliver-spool.%ld.%ld", (long)getpid(),
		     (long)ts.tv_nsec) < 0)
		return -ENOMEM;
	fd = openat(dirfd, name.s, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		fd = -errno;
	else
		(void)unlinkat(dirfd, name.s, 0);
	str_free(&name);
	return fd;
}

/* spool - standard input into the spool, the header scanned on the way */
static void spool(struct vd *v, struct target *first, struct hdrscan *h)
{
	int dirfd = -1, r = 0;
	ssize_t got;

	if (first) {
		dirfd = first->md.tmpfd;
	} else {
		const char *tmp = getenv("TMPDIR");

		dirfd = open(tmp && *tmp ? tmp : "/tmp", O_RDONLY |
			     O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			vd_fail_errno(v, -errno, "cannot open a directory for "
				      "the spool file");
	}
	v->spoolfd = spool_open(dirfd);
	if (!first)
		close(dirfd);
	if (v->spoolfd < 0)
		vd_fail_errno(v, v->spoolfd, "cannot create a spool file");
	for (;;) {
		got = xread(0, iobuf, IOBUF);
		if (got < 0)
			vd_fail_errno(v, -errno, "cannot read the message");
		if (got == 0)
			break;
		if (!h->done) {
			r = hdrscan_feed(h, iobuf, (size_t)got);
			early_verdict(v, h);
		} else {
			h->bytes += (uint64_t)got;
		}
		if (r == 0)
			r = fsx_write_all(v->spoolfd, iobuf, (size_t)got);
		if (r < 0)
			vd_fail_errno(v, r, "cannot write the spool file");
	}
}

/* scan_file - the header of a message that is a regular file, by pread */
static void scan_file(struct vd *v, int fd, off_t off, uint64_t len,
		      struct hdrscan *h)
{
	uint64_t done = 0;

	while (!h->done && done < len) {
		size_t want = len - done < IOBUF ? (size_t)(len - done) : IOBUF;
		ssize_t got = pread(fd, iobuf, want, off + (off_t)done);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			vd_fail_errno(v, -errno, "cannot read the message");
		if (got == 0)
			break;
		if (hdrscan_feed(h, iobuf, (size_t)got) < 0)
			vd_fail_errno(v, -ENOMEM, "cannot read the message");
		done += (uint64_t)got;
	}
}

/* copy - len bytes of src from off to the end of dst: in the kernel when
 * it can (copy_file_range), else through the buffer */
static int copy(int src, off_t off, uint64_t len, int dst)
{
	int kernel = 1;

	while (len > 0) {
		size_t want = len < (1u << 30) ? (size_t)len : (1u << 30);
		ssize_t got;

		if (kernel) {
			loff_t in = off;

			got = copy_file_range(src, &in, dst, NULL, want, 0);
			if (got < 0 && (errno == EXDEV || errno == EINVAL ||
					errno == ENOSYS ||
					errno == EOPNOTSUPP)) {
				kernel = 0;
				continue;
			}
		} else {
			if (want > IOBUF)
				want = IOBUF;
			got = pread(src, iobuf, want, off);
			if (got > 0) {
				int r = fsx_write_all(dst, iobuf, (size_t)got);

				if (r < 0)
					return r;
			}
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EIO;	/* the source shrank under us */
		off += got;
		len -= (uint64_t)got;
	}
	return 0;
}

/* many - several destinations: read once, copy to each */
static void many(struct vd *v)
{
	struct target *first = NULL;
	struct hdrscan h;
	struct str pre = STR_INIT, inj = STR_INIT;
	struct stat st;
	uint64_t len;
	off_t off = 0;
	int srcfd = 0, remote = 0, r;
	size_t i;

	for (i = 0; i < v->n; i++) {
		if (v->t[i].remote)
			remote = 1;
		else if (!first)
			first = &v->t[i];
	}
	if (first)
		open_box(v, first);
	hdrscan_init(&h, v->seen.s, v->seen.len);
	if (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) {
		/* qmail's queue file: read it where it stands, no copy */
		off = lseek(0, 0, SEEK_CUR);
		if (off < 0 || off > st.st_size)
			off = 0;
		len = (uint64_t)(st.st_size - off);
		scan_file(v, 0, off, len, &h);
	} else {
		spool(v, first, &h);
		srcfd = v->spoolfd;
		len = h.bytes;
	}
	hdrscan_end(&h);
	check_message(v, &h, len);
	/* every check that can fail before the first copy is written */
	for (i = 0; i < v->n; i++) {
		struct target *t = &v->t[i];

		if (t->remote)
			continue;
		open_box(v, t);
		if (prefix(&pre, v->sender, t, h.crlf) < 0)
			vd_fail_errno(v, -ENOMEM, "cannot deliver");
		quota_check(v, t, pre.len + len);
	}
	if (remote) {
		r = inject_path(&inj);
		if (r < 0)
			vd_fail_errno(v, r, "cannot find mta-inject beside "
				      "vdeliver");
		inject_check(v, &inj);
	}
	for (i = 0; i < v->n; i++) {
		struct target *t = &v->t[i];

		if (t->remote)
			continue;
		new_file(v, t);
		r = prefix(&pre, v->sender, t, h.crlf);
		if (r == 0)
			r = fsx_write_all(t->f.fd, pre.s, pre.len);
		if (r == 0)
			r = copy(srcfd, off, len, t->f.fd);
		if (r < 0)
			vd_fail_errno(v, r, "cannot write into the tmp/ of %s",
				      t->addr.s);
		finish(v, t, pre.len + len);
	}
	if (remote)
		inject(v, &inj, h.crlf, srcfd, off, len);
	hdrscan_free(&h);
	str_free(&pre);
	str_free(&inj);
}

/* deliver - the message to every target of the expansion */
void deliver(struct vd *v)
{
	if (v->n == 0)
		return;	/* only a catch-all "delete": discarded, unread */
	if (v->n == 1 && !v->t[0].remote)
		stream(v, &v->t[0]);
	else
		many(v);
}
