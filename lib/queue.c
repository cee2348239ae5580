/*
 * queue - the spool's message files (see queue.h and docs/queue.md).
 */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fsx.h"

#define REC_MAX (1u << 20) /* no envelope field is near a megabyte */

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* qenv_init - an empty envelope */
void qenv_init(struct qenv *e)
{
	memset(e, 0, sizeof *e);
}

/* qenv_free - release an envelope */
void qenv_free(struct qenv *e)
{
	str_free(&e->sender);
	str_free(&e->rcpts);
	str_free(&e->client);
	str_free(&e->helo);
	str_free(&e->auth);
	str_free(&e->proto);
	str_free(&e->uid);
	e->nrcpts = 0;
}

/* queue_addr_ok - an address may go into a queue file: no CR, LF, NUL */
int queue_addr_ok(const char *addr, size_t len)
{
	size_t i;

	if (len > 1024)
		return -EINVAL;
	for (i = 0; i < len; i++)
		if (addr[i] == '\r' || addr[i] == '\n' || addr[i] == 0)
			return -EINVAL;
	return 0;
}

/* qenv_add_rcpt - one more recipient */
int qenv_add_rcpt(struct qenv *e, const char *addr)
{
	size_t n = strlen(addr);
	int r = queue_addr_ok(addr, n);

	if (r == 0 && n == 0)
		r = -EINVAL;
	if (r == 0)
		r = str_catb(&e->rcpts, addr, n + 1);
	if (r == 0)
		e->nrcpts++;
	return r;
}

/* rec - append one record to a buffer */
static int rec(struct str *b, char type, const void *p, size_t n)
{
	unsigned char h[5];

	if (n > REC_MAX)
		return -EOVERFLOW;
	h[0] = (unsigned char)type;
	put_u32(h + 1, (uint32_t)n);
	return str_catb(b, h, 5) || str_catb(b, p, n) ? -ENOMEM : 0;
}

/* qw_open - a new file in queue/tmp/ holding the envelope */
int qw_open(struct qwriter *w, const char *root, const struct qenv *e)
{
	struct str b = STR_INIT;
	struct timeval tv;
	unsigned char t[8];
	size_t i;
	int r;

	memset(w, 0, sizeof *w);
	w->fd = -1;
	if (e->nrcpts == 0)
		return -EINVAL;
	if (queue_addr_ok(e->sender.s ? e->sender.s : "", e->sender.len) < 0)
		return -EINVAL;
	gettimeofday(&tv, NULL);
	w->arrival_us = e->arrival_us ? e->arrival_us :
			(uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	r = str_copys(&w->root, root);
	if (r == 0)
		r = str_catf(&w->tmp, "%s/queue/tmp/%ld.%ld.%ld", root,
			     (long)tv.tv_sec, (long)tv.tv_usec, (long)getpid());
	put_u64(t, w->arrival_us);
	if (r == 0)
		r = str_cats(&b, QUEUE_MAGIC) ? -ENOMEM : rec(&b, 'T', t, 8);
	if (r == 0)
		r = rec(&b, 'F', e->sender.s, e->sender.len);
	for (i = 0; r == 0 && i < e->rcpts.len; i += strlen(e->rcpts.s + i) + 1)
		r = rec(&b, 'R', e->rcpts.s + i, strlen(e->rcpts.s + i));
	if (r == 0 && e->client.len)
		r = rec(&b, 'C', e->client.s, e->client.len);
	if (r == 0 && e->helo.len)
		r = rec(&b, 'H', e->helo.s, e->helo.len);
	if (r == 0 && e->auth.len)
		r = rec(&b, 'A', e->auth.s, e->auth.len);
	if (r == 0 && e->proto.len)
		r = rec(&b, 'P', e->proto.s, e->proto.len);
	if (r == 0 && e->uid.len)
		r = rec(&b, 'U', e->uid.s, e->uid.len);
	if (r == 0) {
		/* 'M' and a length filled in by qw_commit */
		memset(t, 0, 8);
		w->len_pos = (off_t)b.len + 1;
		r = str_catc(&b, 'M') || str_catb(&b, t, 8) ? -ENOMEM : 0;
	}
	if (r == 0) {
		w->fd = open(w->tmp.s, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
			     O_CLOEXEC, 0600);
		if (w->fd < 0)
			r = -errno;
	}
	if (r == 0)
		r = fsx_write_all(w->fd, b.s, b.len);
	str_free(&b);
	if (r < 0)
		qw_abort(w);
	return r;
}

/* qw_body - append message bytes (LF line ends are the caller's job) */
int qw_body(struct qwriter *w, const void *buf, size_t n)
{
	int r = fsx_write_all(w->fd, buf, n);

	if (r == 0)
		w->body_len += n;
	return r;
}

/* qw_commit - length, fsync, rename into new/, fsync new/: durable */
int qw_commit(struct qwriter *w, struct str *id_r)
{
	unsigned char t[8];
	struct stat st;
	struct str dst = STR_INIT;
	int r = 0;

	put_u64(t, w->body_len);
	if (pwrite(w->fd, t, 8, w->len_pos) != 8)
		r = errno ? -errno : -EIO;
	if (r == 0 && fsync(w->fd) < 0)
		r = -errno;
	if (r == 0 && fstat(w->fd, &st) < 0)
		r = -errno;
	if (r == 0) {
		id_r->len = 0;
		r = str_catf(id_r, "%llx.%llx",
			     (unsigned long long)w->arrival_us,
			     (unsigned long long)st.st_ino);
	}
	if (r == 0)
		r = str_catf(&dst, "%s/queue/new/%s", w->root.s, id_r->s);
	if (r == 0 && rename(w->tmp.s, dst.s) < 0)
		r = -errno;
	if (r == 0)
		r = fsx_fsync_parent(dst.s);
	if (r < 0) {
		/* not yet durable: it must not be delivered, nor left half */
		if (dst.s)
			unlink(dst.s);
		qw_abort(w);
	} else {
		close(w->fd);
		w->fd = -1;
		(void)queue_trigger(w->root.s);
		str_free(&w->tmp);
		str_free(&w->root);
	}
	str_free(&dst);
	return r;
}

/* qw_abort - throw an unfinished message away */
void qw_abort(struct qwriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp.s)
		unlink(w->tmp.s);
	w->fd = -1;
	str_free(&w->tmp);
	str_free(&w->root);
}

/* queue_trigger - wake the scheduler through queue/trigger, if it listens */
int queue_trigger(const char *root)
{
	struct str p = STR_INIT;
	int fd, r = 0;

	if (!*root)
		return 0;
	if (str_catf(&p, "%s/queue/trigger", root))
		return -ENOMEM;
	/* O_NONBLOCK: no reader means ENXIO at once, never a wait */
	fd = open(p.s, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	else {
		if (write(fd, "", 1) < 0)
			r = -errno;
		close(fd);
	}
	str_free(&p);
	return r;
}

/* queue_read_env - check a queue file whole and read its envelope */
int queue_read_env(int fd, struct qenv *e, off_t *body_off_r,
		   uint64_t *body_len_r)
{
	struct stat st;
	unsigned char h[9];
	struct str v = STR_INIT;
	off_t pos = 4;
	int r = 0, have_t = 0, have_f = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < 4 || pread(fd, h, 4, 0) != 4 ||
	    memcmp(h, QUEUE_MAGIC, 4))
		return -EILSEQ;
	for (;;) {
		uint32_t n;

		if (pread(fd, h, 1, pos) != 1)
			return -EILSEQ;
		if (h[0] == 'M') {
			if (pread(fd, h, 8, pos + 1) != 8)
				return -EILSEQ;
			*body_off_r = pos + 9;
			*body_len_r = get_u64(h);
			/* a truncated file is caught here, not at delivery */
			if ((uint64_t)st.st_size != (uint64_t)*body_off_r +
			    *body_len_r || !have_t || !have_f || !e->nrcpts)
				r = -EILSEQ;
			break;
		}
		if (pread(fd, h + 1, 4, pos + 1) != 4)
			return -EILSEQ;
		n = (uint32_t)h[1] | (uint32_t)h[2] << 8 |
		    (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
		if (n > REC_MAX || pos + 5 + (off_t)n > st.st_size)
			return -EILSEQ;
		v.len = 0;
		if (str_ready(&v, n) < 0)
			return -ENOMEM;
		if (n && pread(fd, v.s, n, pos + 5) != (ssize_t)n) {
			str_free(&v);
			return -EILSEQ;
		}
		v.len = n;
		v.s[n] = 0;
		pos += 5 + (off_t)n;
		switch (h[0]) {
		case 'T':
			if (n != 8)
				r = -EILSEQ;
			else
				e->arrival_us = get_u64((unsigned char *)v.s);
			have_t = 1;
			break;
		case 'F': r = str_copyb(&e->sender, v.s, n); have_f = 1; break;
		case 'R':
			r = queue_addr_ok(v.s, n) < 0 || n == 0 ? -EILSEQ :
			    qenv_add_rcpt(e, v.s);
			break;
		case 'C': r = str_copyb(&e->client, v.s, n); break;
		case 'H': r = str_copyb(&e->helo, v.s, n); break;
		case 'A': r = str_copyb(&e->auth, v.s, n); break;
		case 'P': r = str_copyb(&e->proto, v.s, n); break;
		case 'U': r = str_copyb(&e->uid, v.s, n); break;
		default: r = -EILSEQ; break; /* a newer writer: do not guess */
		}
		if (r < 0)
			break;
	}
	str_free(&v);
	return r;
}
