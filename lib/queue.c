/*
 * queue - the spool's message files (see queue.h and docs/queue.md).
 */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fsx.h"
#include "name.h"
#include "utf8.h"

#define REC_MAX (1u << 20) /* no envelope field is near a megabyte */
#define QUEUE_POOL_PROBES 2 /* slots a writer tries before it lists them */
#define QUEUE_POOL_NOLIST 16 /* writes without a listing after an empty one */

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
/* queue_sender_arg - the sender to hand a delivery program */
const char *queue_sender_arg(const struct qenv *e)
{
	if (e->dbl && e->sender.len == 0)
		return QUEUE_DBL_SENDER;
	return str_cstr(&e->sender);
}

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
	e->dbl = 0;
}

/* queue_addr_ok - an address may go into a queue file: no CR, LF, NUL,
 * at most the format's 1,024 bytes (the reader's rule too, so files
 * written before the entries took at most QUEUE_ADDR_MAX still read) */
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

/* queue_addr_plain - a complete address as mta-inject would let it into
 * the queue: LOCAL@DOMAIN, no byte at or below space, no DEL, no angle
 * bracket, at most QUEUE_ADDR_MAX bytes. For envelopes written by a local
 * user (ROOT/drop/), which nobody else has checked */
int queue_addr_plain(const char *addr, size_t len)
{
	size_t i;

	if (len == 0 || len > QUEUE_ADDR_MAX || addr[0] == '@' ||
	    addr[len - 1] == '@' || !memchr(addr, '@', len))
		return -EINVAL;
	for (i = 0; i < len; i++)
		if ((unsigned char)addr[i] <= ' ' || addr[i] == 0x7f ||
		    addr[i] == '<' || addr[i] == '>')
			return -EINVAL;
	return 0;
}

/* queue_addr_entry - not an address that a program could take for an
 * option: its local part (its start) is not '-' */
int queue_addr_entry(const char *addr, size_t len)
{
	return len && addr[0] == '-' ? -EINVAL : 0;
}

/* ascii_domain - the domain of ADDR with its U-labels as A-labels, as
 * mta-smtpd takes it (lib/name name_domain_ascii); -EINVAL, -ENOMEM */
static int ascii_domain(struct str *addr)
{
	const char *at = memrchr(addr->s, '@', addr->len);
	struct str a = STR_INIT;
	size_t k;
	int r;

	if (!at)
		return 0;
	k = (size_t)(at - addr->s) + 1;
	while (k < addr->len && (unsigned char)addr->s[k] < 0x80)
		k++;
	if (k == addr->len)
		return 0;	/* ASCII: as it is, no copy */
	k = (size_t)(at - addr->s) + 1;
	r = str_catb(&a, addr->s, k);
	if (r == 0)
		r = name_domain_ascii(addr->s + k, addr->len - k, &a);
	if (r == 0) {
		str_free(addr);
		*addr = a;
	} else {
		str_free(&a);
	}
	return r;
}

/* queue_qualify - an address as a caller of mta-inject or sendmail gave
 * it, as it goes into the queue: one pair of <> taken off, @ME added to a
 * bare local part, a domain's trailing root dot taken off (as mta-smtpd
 * does), U-labels made A-labels, then the checks of every entry
 * (queue_addr_plain, queue_addr_entry, well-formed UTF-8, as mta-smtpd
 * takes a local part). A sender may be empty ("" or "<>": the null sender).
 * -EINVAL with *why_r saying what is wrong, or -ENOMEM */
int queue_qualify(const char *in, const char *me, int is_sender,
		  struct str *out, const char **why_r)
{
	size_t n = strlen(in);
	int r;

	_Static_assert(QUEUE_ADDR_MAX == 998, "the reason below says 998");
	out->len = 0;
	if (is_sender && (n == 0 || !strcmp(in, "<>")))
		return str_catb(out, "", 0);
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (str_catb(out, in, n) < 0 ||
	    (n && !memchr(in, '@', n) && str_catf(out, "@%s", me) < 0))
		return -ENOMEM;
	/* the root's trailing dot, which mta-smtpd takes off too: kept, the
	 * domain would not be found hosted and its MX would be us (a loop) */
	if (out->len > 2 && out->s[out->len - 1] == '.' &&
	    out->s[out->len - 2] != '@' && out->s[out->len - 2] != '.')
		str_trunc(out, out->len - 1);
	*why_r = NULL;
	if ((r = ascii_domain(out)) == -ENOMEM)
		return r;
	if (r < 0)
		*why_r = "its domain " NAME_NOT_UTF8;
	else if (queue_addr_plain(out->s, out->len) < 0)
		*why_r = "not LOCAL@DOMAIN of at most 998 bytes without a "
			 "space, a control byte or an angle bracket";
	else if (queue_addr_entry(out->s, out->len) < 0)
		*why_r = "an address may not begin with '-'";
	else if (!utf8_valid(out->s, out->len))	/* as mta-smtpd's rule */
		*why_r = "its local part is not well-formed UTF-8";
	return *why_r ? -EINVAL : 0;
}

/* queue_rcpts_ok - N recipients are within the limit of every entry */
int queue_rcpts_ok(size_t n)
{
	return n > QUEUE_RCPTS_MAX ? -E2BIG : 0;
}

/* qenv_add_rcpt - one more recipient; -E2BIG past QUEUE_RCPTS_MAX */
int qenv_add_rcpt(struct qenv *e, const char *addr)
{
	size_t n = strlen(addr);
	int r = queue_rcpts_ok(e->nrcpts + 1);

	if (r == 0)
		r = queue_addr_ok(addr, n);
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

/* pool_try - queue/pool/NAME (P holds queue/pool, DIR long) renamed to
 * w->tmp: 1 done, 0 not there (another writer took it), else -errno */
static int pool_try(struct qwriter *w, struct str *p, size_t dir,
		    const char *name)
{
	p->len = dir;
	if (str_catf(p, "/%s", name) < 0)
		return -ENOMEM;
	/* NOREPLACE: the tmp/ name is this writer's alone, but a file that
	 * is there all the same is not ours to replace */
	if (renameat2(AT_FDCWD, p->s, AT_FDCWD, w->tmp.s,
		      RENAME_NOREPLACE) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/* pool_list - the slot names queue/pool/ holds (at most QUEUE_POOL) */
static size_t pool_list(const char *dir, char names[][12])
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while (n < QUEUE_POOL && (de = readdir(d)) != NULL)
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' &&
		    strlen(de->d_name) < 12)
			strcpy(names[n++], de->d_name);
	closedir(d);
	return n;
}

/* pool_take - a spent file of queue/pool/ (queue.h) renamed to w->tmp:
 * 1 if one was there, else 0 and nothing changed */
static int pool_take(struct qwriter *w, const char *root)
{
	/* a cursor of each process's own, so that the writers of
	 * different processes start at different slots */
	static unsigned next;
	/* messages left before the next listing, after one found the pool
	 * empty: while accept outruns delivery it stays empty, and a
	 * listing a message (open, fstat, two getdents, close) would be
	 * paid for nothing; the probes still find what mta-send puts back */
	static unsigned no_list;
	char names[QUEUE_POOL][12];
	struct str p = STR_INIT;
	size_t dir, n, k;
	int i, r = 0;

	if (next == 0)
		next = (unsigned)getpid();
	if (str_catf(&p, "%s/queue/pool", root) < 0)
		return 0;
	dir = p.len;
	/* the next slots first: mta-send fills them in turn, so under a
	 * steady flow this finds one without listing the directory */
	for (i = 0; i < QUEUE_POOL_PROBES && r == 0; i++) {
		snprintf(names[0], sizeof names[0], "%u", next++ % QUEUE_POOL);
		r = pool_try(w, &p, dir, names[0]);
	}
	if (r == 0 && no_list > 0)
		no_list--;
	else if (r == 0) {
		/* then what is there, from a place of this process's own:
		 * every writer lists the names in the same order */
		p.s[dir] = 0;
		n = pool_list(p.s, names);
		for (k = 0; k < n && r == 0; k++)
			r = pool_try(w, &p, dir, names[(next + k) % n]);
		if (n == 0)
			no_list = QUEUE_POOL_NOLIST;
	}
	str_free(&p);
	return r == 1;
}

/* pool_open - the spent file pool_take() renamed to w->tmp, opened to be
 * written over; -1 (and the name removed) when it is not one of ours: a
 * plain file, one link, our uid, mode 0600 */
static int pool_open(struct qwriter *w)
{
	struct stat st;
	int fd = open(w->tmp.s, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
			st.st_nlink != 1 || st.st_uid != geteuid() ||
			(st.st_mode & 07777) != 0600)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		(void)unlink(w->tmp.s);
		w->reused = 0;
	}
	return fd;
}

/* qw_start - the envelope written into a new file at w->tmp (or over a
 * spent one that qw_open took from the pool) */
static int qw_start(struct qwriter *w, const struct qenv *e, mode_t mode)
{
	struct str b = STR_INIT;
	unsigned char t[8];
	size_t i;
	int r;

	put_u64(t, w->arrival_us);
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
	if (r == 0 && e->dbl)
		r = rec(&b, 'B', "", 0);
	if (r == 0) {
		/* 'M' and a length filled in by qw_commit */
		memset(t, 0, 8);
		w->len_pos = (off_t)b.len + 1;
		r = str_catc(&b, 'M') || str_catb(&b, t, 8) ? -ENOMEM : 0;
	}
	if (r == 0 && w->reused)
		w->fd = pool_open(w);
	if (r == 0 && w->fd < 0) {
		w->fd = open(w->tmp.s, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
			     O_CLOEXEC, mode);
		if (w->fd < 0) {
			r = -errno;
			/* not ours to remove, whatever is there */
			str_free(&w->tmp);
		}
	}
	/* the umask must not take away what another uid needs to read */
	if (r == 0 && mode != 0600 && fchmod(w->fd, mode) < 0)
		r = -errno;
	if (r == 0)
		r = fsx_write_all(w->fd, b.s, b.len);
	str_free(&b);
	if (r < 0)
		qw_abort(w);
	return r;
}

/* qw_check - the envelope can be written: fills in w's arrival time */
static int qw_check(struct qwriter *w, const struct qenv *e,
		    struct timeval *tv)
{
	memset(w, 0, sizeof *w);
	w->fd = -1;
	w->limit = UINT64_MAX;	/* until qw_limit() */
	if (e->nrcpts == 0)
		return -EINVAL;
	if (queue_addr_ok(e->sender.s ? e->sender.s : "", e->sender.len) < 0)
		return -EINVAL;
	gettimeofday(tv, NULL);
	w->arrival_us = e->arrival_us ? e->arrival_us :
			(uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
	return 0;
}

/* qw_open - a new file in queue/tmp/ holding the envelope */
int qw_open(struct qwriter *w, const char *root, const struct qenv *e)
{
	struct timeval tv;
	int r = qw_check(w, e, &tv);

	if (r == 0)
		r = str_copys(&w->root, root);
	if (r == 0)
		r = str_catf(&w->tmp, "%s/queue/tmp/%ld.%ld.%ld", root,
			     (long)tv.tv_sec, (long)tv.tv_usec, (long)getpid());
	if (r < 0) {
		str_free(&w->tmp); /* nothing was made */
		qw_abort(w);
		return r;
	}
	w->reused = pool_take(w, root);
	return qw_start(w, e, 0600);
}

/* qw_open_path - the same file format at PATH, with MODE exactly (not
 * cut by the umask): for ROOT/drop/, where the writer is not the mail
 * user. Finish it with qw_commit_path */
int qw_open_path(struct qwriter *w, const char *path, mode_t mode,
		 const struct qenv *e)
{
	struct timeval tv;
	int r = qw_check(w, e, &tv);

	if (r == 0)
		r = str_copys(&w->tmp, path);
	if (r < 0) {
		str_free(&w->tmp); /* nothing was made */
		qw_abort(w);
		return r;
	}
	return qw_start(w, e, mode);
}

/* queue_lf - N bytes of a message with CR LF made LF and a stray CR a
 * space, into OUT (room for N + 1 bytes); *ST carries a CR that ended the
 * previous piece (QLF_CR) and, once seen, a NUL (QLF_BAD, sticky) */
size_t queue_lf(char *out, const char *in, size_t n, int *st)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if ((*st & QLF_CR) && in[i] != '\n')
			out[o++] = ' ';
		*st &= ~QLF_CR;
		if (in[i] == '\r') {
			*st |= QLF_CR;
			continue;
		}
		if (in[i] == 0)
			*st |= QLF_BAD;
		out[o++] = in[i];
	}
	return o;
}

/* queue_lf_flush - at the end of the message, the space of a stray CR
 * still pending, into OUT (room for 1 byte): 0 or 1 bytes */
size_t queue_lf_flush(char *out, int *st)
{
	if (!(*st & QLF_CR))
		return 0;
	*st &= ~QLF_CR;
	out[0] = ' ';
	return 1;
}

/* queue_lf_end - 0, or -EILSEQ when the message queue_lf() saw with state
 * ST held a NUL */
int queue_lf_end(int st)
{
	return st & QLF_BAD ? -EILSEQ : 0;
}

/* qw_limit - at most MAX more message bytes from here on: the bytes
 * already written (mta-inject's own Received: line) do not count */
void qw_limit(struct qwriter *w, uint64_t max)
{
	w->limit = w->body_len > UINT64_MAX - max ? UINT64_MAX :
		   w->body_len + max;
}

/* qw_body - append message bytes (LF line ends are the caller's job);
 * -EFBIG, and nothing written, for bytes past the limit */
int qw_body(struct qwriter *w, const void *buf, size_t n)
{
	int r;

	if (n > w->limit - w->body_len)
		return -EFBIG;
	r = fsx_write_all(w->fd, buf, n);

	if (r == 0)
		w->body_len += n;
	return r;
}

/* qw_reserve - N bytes of room in the message, here, to be filled by
 * qw_fill before qw_commit: the DKIM signer (lib/qsign) knows the length
 * of the DKIM-Signature fields when the header ends but their content
 * only after the body, which must follow them. Not counted against the
 * limit: like our own Received line, they are not the sender's bytes */
int qw_reserve(struct qwriter *w, size_t n, off_t *off_r)
{
	char blank[256];
	size_t k;
	int r = 0;

	memset(blank, ' ', sizeof blank);
	*off_r = w->len_pos + 8 + (off_t)w->body_len;
	for (k = n; k && r == 0; k -= k < sizeof blank ? k : sizeof blank)
		r = fsx_write_all(w->fd, blank, k < sizeof blank ? k :
				  sizeof blank);
	if (r < 0)
		return r;
	w->body_len += n;
	w->limit = w->limit > UINT64_MAX - n ? UINT64_MAX : w->limit + n;
	return 0;
}

/* qw_top_room - room for N bytes at the very top of the message, to be
 * given by qw_top_fill before qw_commit (mta-smtpd's
 * Authentication-Results, whose length is known only after the body).
 * Only before any message byte: the 'M' record is moved N + 5 bytes on,
 * after a '_' padding record of N zero bytes that readers skip */
int qw_top_room(struct qwriter *w, size_t n)
{
	unsigned char *t;
	int r;

	if (w->body_len || w->top_room || n > REC_MAX - 5)
		return -EINVAL;
	/* the '_' record, its N zero bytes and the moved 'M' record in one
	 * write: a few KiB, once a message */
	t = calloc(1, 5 + n + 9);
	if (!t)
		return -ENOMEM;
	t[0] = '_';
	put_u32(t + 1, (uint32_t)n);
	t[5 + n] = 'M';
	if (lseek(w->fd, w->len_pos - 1, SEEK_SET) < 0)
		r = -errno;
	else
		r = fsx_write_all(w->fd, t, 5 + n + 9);
	free(t);
	if (r < 0)
		return r;
	w->len_pos += 5 + (off_t)n;
	w->top_room = n;
	return 0;
}

/* qw_top_fill - the first N bytes of the message (N at most the room):
 * the padding shrinks by N and the 'M' record moves back by N, so the
 * text ends where the message began; no message byte is moved */
int qw_top_fill(struct qwriter *w, const void *buf, size_t n)
{
	unsigned char t[9];
	off_t z = w->len_pos - 1 - 5 - (off_t)w->top_room;
	int r;

	if (!w->top_room || n > w->top_room)
		return -EINVAL;
	t[0] = '_';
	put_u32(t + 1, (uint32_t)(w->top_room - n));
	r = qw_fill(w, z, t, 5);
	w->len_pos -= (off_t)n;
	t[0] = 'M';
	memset(t + 1, 0, 8);
	if (r == 0)
		r = qw_fill(w, w->len_pos - 1, t, 9);
	if (r == 0)
		r = qw_fill(w, w->len_pos + 8, buf, n);
	if (r < 0)
		return r;
	w->body_len += n;
	w->limit = w->limit > UINT64_MAX - n ? UINT64_MAX : w->limit + n;
	w->top_room = 0;
	return 0;
}

/* qw_fill - N bytes into room that qw_reserve left at OFF */
int qw_fill(struct qwriter *w, off_t off, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t got;

	while (n) {
		got = pwrite(w->fd, p, n, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		p += got;
		off += got;
		n -= (size_t)got;
	}
	return 0;
}

/* qw_finish - the length in place, then the file made durable */
static int qw_finish(struct qwriter *w, struct stat *st)
{
	unsigned char t[8];

	put_u64(t, w->body_len);
	errno = 0;
	if (pwrite(w->fd, t, 8, w->len_pos) != 8)
		return errno ? -errno : -EIO;
	/* a spent file may be longer: none of its old bytes may stay */
	if (w->reused && ftruncate(w->fd, w->len_pos + 8 +
				   (off_t)w->body_len) < 0)
		return -errno;
	if (fsync(w->fd) < 0 || fstat(w->fd, st) < 0)
		return -errno;
	return 0;
}

/* qw_commit - length, fsync, rename into new/, fsync new/: durable */
int qw_commit(struct qwriter *w, struct str *id_r)
{
	struct stat st;
	struct str dst = STR_INIT;
	int r = qw_finish(w, &st);

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

/* qw_commit_path - length, fsync, rename to DST, then the directory made
 * durable. A writer that may not read the directory (ROOT/drop/ is
 * 01733) cannot open it to fsync it; syncfs() of the file's file system
 * commits the rename instead: dearer, but it is one local submission */
int qw_commit_path(struct qwriter *w, const char *dst)
{
	struct stat st;
	int r = qw_finish(w, &st);

	if (r == 0 && rename(w->tmp.s, dst) < 0)
		r = -errno;
	if (r == 0) {
		r = fsx_fsync_parent(dst);
		if (r == -EACCES)
			r = syncfs(w->fd) < 0 ? -errno : 0;
		if (r < 0)
			unlink(dst);
	}
	if (r < 0) {
		qw_abort(w);
		return r;
	}
	close(w->fd);
	w->fd = -1;
	str_free(&w->tmp);
	str_free(&w->root);
	return 0;
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

/* queue_pool_put - PATH, a message file that is done with (SIZE bytes),
 * kept in queue/pool/ for qw_open() to write over (why: queue.h); the
 * slots are taken in turn and a full one is replaced. A negative errno
 * when it was not kept (too big, or the rename failed): the caller then
 * unlinks it as before */
int queue_pool_put(const char *root, const char *path, uint64_t size)
{
	static unsigned slot;
	struct str p = STR_INIT;
	size_t dir;
	int i, r = 0;

	if (size > QUEUE_POOL_MAX)
		return -EFBIG;
	if (str_catf(&p, "%s/queue/pool", root) < 0)
		return -ENOMEM;
	dir = p.len;
	/* an empty slot if one of the next few is, so that no spent file
	 * is unlinked while there is room; else the next one, replaced */
	for (i = 0; i < QUEUE_POOL_TRIES; i++) {
		p.len = dir;
		if (str_catf(&p, "/%u", slot++ % QUEUE_POOL) < 0) {
			str_free(&p);
			return -ENOMEM;
		}
		r = renameat2(AT_FDCWD, path, AT_FDCWD, p.s,
			      RENAME_NOREPLACE) < 0 ? -errno : 0;
		if (r != -EEXIST)
			break;
	}
	if (r == -EEXIST && rename(path, p.s) < 0)
		r = -errno;
	else if (r == -EEXIST)
		r = 0;
	if (r < 0) {
		/* the first time: no pool yet (it is not in init's layout,
		 * so that older roots need nothing done) */
		p.s[dir] = 0;
		if (r == -ENOENT && mkdir(p.s, 0700) == 0) {
			p.s[dir] = '/';
			r = rename(path, p.s) < 0 ? -errno : 0;
		}
	}
	str_free(&p);
	return r;
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

/* have - the file's first n bytes in b (read in 4 KiB steps, so that
 * an ordinary envelope costs one pread); -EILSEQ past the end */
static int have(int fd, struct str *b, size_t n, off_t size)
{
	size_t want;
	ssize_t got;

	if (n <= b->len)
		return 0;
	if ((off_t)n > size)
		return -EILSEQ;
	want = (n + 4095) & ~(size_t)4095;
	if ((off_t)want > size)
		want = (size_t)size;
	if (str_ready(b, want - b->len) < 0)
		return -ENOMEM;
	while (b->len < want) {
		got = pread(fd, b->s + b->len, want - b->len, (off_t)b->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EILSEQ;
		b->len += (size_t)got;
	}
	return 0;
}

/* queue_read_env - check a queue file whole and read its envelope */
int queue_read_env(int fd, struct qenv *e, off_t *body_off_r,
		   uint64_t *body_len_r)
{
	struct stat st;
	struct str b = STR_INIT;
	size_t pos = 4;
	int r, have_t = 0, have_f = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	r = have(fd, &b, 4, st.st_size);
	if (r == 0 && memcmp(b.s, QUEUE_MAGIC, 4))
		r = -EILSEQ;
	while (r == 0) {
		const unsigned char *h;
		const char *v;
		uint32_t n;

		r = have(fd, &b, pos + 1, st.st_size);
		if (r < 0)
			break;
		if (b.s[pos] == 'M') {
			r = have(fd, &b, pos + 9, st.st_size);
			if (r < 0)
				break;
			*body_off_r = (off_t)pos + 9;
			*body_len_r = get_u64((unsigned char *)b.s + pos + 1);
			/* a truncated file is caught here, not at delivery */
			if ((uint64_t)st.st_size != (uint64_t)*body_off_r +
			    *body_len_r || !have_t || !have_f || !e->nrcpts)
				r = -EILSEQ;
			break;
		}
		r = have(fd, &b, pos + 5, st.st_size);
		if (r < 0)
			break;
		h = (unsigned char *)b.s + pos;
		n = (uint32_t)h[1] | (uint32_t)h[2] << 8 |
		    (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
		if (n > REC_MAX) {
			r = -EILSEQ;
			break;
		}
		r = have(fd, &b, pos + 5 + n, st.st_size);
		if (r < 0)
			break;
		h = (unsigned char *)b.s + pos;
		v = b.s + pos + 5;
		pos += 5 + (size_t)n;
		switch (h[0]) {
		case 'T':
			if (n != 8)
				r = -EILSEQ;
			else
				e->arrival_us = get_u64((unsigned char *)v);
			have_t = 1;
			break;
		case 'F': r = str_copyb(&e->sender, v, n); have_f = 1; break;
		case 'R':
			r = n == 0 || queue_addr_ok(v, n) < 0 ||
			    memchr(v, 0, n) ? -EILSEQ : 0;
			if (r == 0) {
				r = str_catb(&e->rcpts, v, n);
				if (r == 0)
					r = str_catc(&e->rcpts, 0);
				if (r == 0)
					e->nrcpts++;
			}
			break;
		case 'C': r = str_copyb(&e->client, v, n); break;
		case 'H': r = str_copyb(&e->helo, v, n); break;
		case 'A': r = str_copyb(&e->auth, v, n); break;
		case 'P': r = str_copyb(&e->proto, v, n); break;
		case 'U': r = str_copyb(&e->uid, v, n); break;
		case 'B': e->dbl = 1; break;
		case '_': break; /* room qw_top_room left unused */
		default: r = -EILSEQ; break; /* a newer writer: do not guess */
		}
	}
	str_free(&b);
	return r;
}

/* queue_id_parse - ARRIVAL.INODE in lower-case hex, nothing else; the
 * strictness keeps stray names (editor files, "..", "x.s") out of the
 * scheduler's view of the queue */
int queue_id_parse(const char *name, uint64_t *arrival_us, uint64_t *ino)
{
	uint64_t v[2] = {0, 0};
	int part = 0, digits = 0;
	const char *p;

	for (p = name; *p; p++) {
		unsigned d;

		if (*p == '.' && part == 0 && digits) {
			part = 1;
			digits = 0;
			continue;
		}
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else
			return -EINVAL;
		if (++digits > 16)
			return -EINVAL;
		v[part] = v[part] << 4 | d;
	}
	if (part != 1 || !digits)
		return -EINVAL;
	*arrival_us = v[0];
	*ino = v[1];
	return 0;
}

/* queue_msg_path - ROOT/queue/msg/HH/ID[SUFFIX], HH the inode's low byte:
 * 256 directories keep each one near 4,000 entries at a million messages */
int queue_msg_path(struct str *out, const char *root, const char *id,
		   const char *suffix)
{
	uint64_t a, ino;

	if (queue_id_parse(id, &a, &ino) < 0)
		return -EINVAL;
	out->len = 0;
	return str_catf(out, "%s/queue/msg/%02x/%s%s", root,
			(unsigned)(ino & 0xff), id, suffix ? suffix : "");
}

