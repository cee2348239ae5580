/*
 * test_queue - the queue file format (lib/queue.c): a round trip, and
 * every kind of damage a crash or a disk error can leave being refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fsx.h"
#include "queue.h"
#include "tinytest.h"

static char root[] = "/tmp/facteur-queue-XXXXXX";

/* one_message - write a message, return its path in the queue */
static int one_message(struct str *path, const char *sender,
		       const char *body)
{
	struct qenv e;
	struct qwriter w;
	struct str id = STR_INIT;
	int r;

	qenv_init(&e);
	str_copys(&e.sender, sender);
	qenv_add_rcpt(&e, "bob@example.test");
	qenv_add_rcpt(&e, "carol@remote.test");
	str_copys(&e.client, "192.0.2.7");
	str_copys(&e.helo, "client.example");
	r = qw_open(&w, root, &e);
	if (r == 0)
		r = qw_body(&w, body, strlen(body));
	if (r == 0)
		r = qw_commit(&w, &id);
	path->len = 0;
	str_catf(path, "%s/queue/new/%s", root, id.s);
	qenv_free(&e);
	str_free(&id);
	return r;
}

/* read_back - queue_read_env on a file */
static int read_back(const char *path, struct qenv *e, off_t *off,
		     uint64_t *len)
{
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		return -errno;
	qenv_init(e);
	r = queue_read_env(fd, e, off, len);
	close(fd);
	return r;
}

/* limit_case - a writer limited to MAX after PRE bytes of its own, then
 * given CHUNKS; the result of the last qw_body and the length kept */
static int limit_case(uint64_t pre, uint64_t max, const size_t *chunks,
		      size_t n, uint64_t *len_r)
{
	static const char bytes[64] = "0123456789abcdef0123456789abcdef"
				      "0123456789abcdef0123456789abcde";
	struct str path = STR_INIT;
	struct qenv e;
	struct qwriter w;
	size_t i;
	int r;

	qenv_init(&e);
	qenv_add_rcpt(&e, "ok@example.test");
	str_catf(&path, "%s/limit.tmp", root);
	r = qw_open_path(&w, path.s, 0600, &e);
	if (r == 0 && pre)
		r = qw_body(&w, bytes, (size_t)pre);
	if (r == 0)
		qw_limit(&w, max);
	for (i = 0; r == 0 && i < n; i++)
		r = qw_body(&w, bytes, chunks[i]);
	*len_r = w.body_len;
	if (w.fd >= 0)
		qw_abort(&w);
	qenv_free(&e);
	str_free(&path);
	return r;
}

/* test_limit - qw_limit: exactly MAX more bytes pass, one more is -EFBIG
 * and not written; bytes before the call do not count; no call, no limit */
static void test_limit(void)
{
	static const size_t ten[] = {10}, eleven[] = {11}, split[] = {6, 4, 1};
	static const size_t one[] = {1}, none[] = {0};
	uint64_t len;
	int r;

	r = limit_case(0, 10, ten, 1, &len);
	tt_check(r == 0 && len == 10, "limit_exact", "r=%d len=%llu", r,
		 (unsigned long long)len);
	r = limit_case(0, 10, eleven, 1, &len);
	tt_check(r == -EFBIG && len == 0, "limit_one_more", "r=%d len=%llu",
		 r, (unsigned long long)len);
	r = limit_case(0, 10, split, 3, &len);
	tt_check(r == -EFBIG && len == 10, "limit_in_pieces", "r=%d len=%llu",
		 r, (unsigned long long)len);
	r = limit_case(7, 10, ten, 1, &len);
	tt_check(r == 0 && len == 17, "limit_after_own_bytes",
		 "r=%d len=%llu", r, (unsigned long long)len);
	r = limit_case(7, 10, eleven, 1, &len);
	tt_check(r == -EFBIG && len == 7, "limit_after_own_bytes_over",
		 "r=%d len=%llu", r, (unsigned long long)len);
	r = limit_case(0, 0, one, 1, &len);
	tt_check(r == -EFBIG, "limit_zero", "r=%d", r);
	r = limit_case(0, 0, none, 1, &len);
	tt_check(r == 0 && len == 0, "limit_zero_empty", "r=%d", r);
	r = limit_case(0, UINT64_MAX, ten, 1, &len);
	tt_check(r == 0 && len == 10, "limit_huge", "r=%d", r);
	/* without qw_limit, no limit (mta-smtpd counts DATA itself) */
	r = limit_case(40, UINT64_MAX, eleven, 1, &len);
	tt_check(r == 0 && len == 51, "limit_none", "r=%d", r);
}

/* top_case - a message with ROOM at its top, given TOP (NULL: left
 * unfilled), then BODY; 0 and the message read back, or an error */
static int top_case(size_t room, const char *top, const char *body,
		    struct str *msg)
{
	struct str path = STR_INIT;
	struct qenv e;
	struct qwriter w;
	off_t off = 0;
	uint64_t len = 0;
	int r, fd;

	qenv_init(&e);
	str_copys(&e.sender, "a@example.test");
	qenv_add_rcpt(&e, "ok@example.test");
	str_catf(&path, "%s/top.tmp", root);
	r = qw_open_path(&w, path.s, 0600, &e);
	if (r == 0)
		r = qw_top_room(&w, room);
	if (r == 0)
		r = qw_body(&w, body, strlen(body));
	if (r == 0 && top)
		r = qw_top_fill(&w, top, strlen(top));
	if (r == 0)
		r = qw_commit_path(&w, path.s);
	else if (w.fd >= 0)
		qw_abort(&w);
	qenv_free(&e);
	qenv_init(&e);
	fd = r == 0 ? open(path.s, O_RDONLY) : -1;
	if (r == 0)
		r = fd < 0 ? -errno : queue_read_env(fd, &e, &off, &len);
	str_trunc(msg, 0);
	if (r == 0 && (str_ready(msg, (size_t)len + 1) < 0 ||
		       pread(fd, msg->s, (size_t)len, off) != (ssize_t)len))
		r = -EIO;
	if (r == 0) {
		msg->len = (size_t)len;
		msg->s[len] = 0;
	}
	if (fd >= 0)
		close(fd);
	unlink(path.s);
	qenv_free(&e);
	str_free(&path);
	return r;
}

/* test_top - qw_top_room/qw_top_fill: the text comes first, the message
 * after it unchanged, any length up to the room; unfilled, nothing shows */
static void test_top(void)
{
	static const char *const tops[] = {"", "A: 1\n", "B: 12345678\n"};
	struct str m = STR_INIT;
	size_t i;
	int r;

	for (i = 0; i < sizeof tops / sizeof *tops; i++) {
		r = top_case(12, tops[i], "Subject: s\n\nbody\n", &m);
		tt_check(r == 0 && !strncmp(m.s, tops[i], strlen(tops[i])) &&
			 !strcmp(m.s + strlen(tops[i]), "Subject: s\n\nbody\n"),
			 tt_name("top_fill_%zu", i), "r=%d %s", r,
			 m.s ? m.s : "");
	}
	r = top_case(12, NULL, "x\n", &m);
	tt_check(r == 0 && !strcmp(m.s, "x\n"), "top_unfilled", "r=%d", r);
	r = top_case(4, "12345\n", "x\n", &m);
	tt_check(r == -EINVAL, "top_too_long", "r=%d", r);
	str_free(&m);
}

/* test_lf - queue_lf: CR LF becomes LF, a stray CR a space (the last,
 * pending at the end, from queue_lf_flush), a NUL marks the message bad,
 * a CR at the end of a piece waits for the next one; whole and byte by
 * byte alike */
static void test_lf(void)
{
	static const char in[] = "a\r\nb\rc\r\r\nd\n\r\n\r";
	static const char want[] = "a\nb c \nd\n\n";
	static const struct {
		const char *in;
		size_t n;
		int end;	/* queue_lf_end's verdict */
	} v[] = {
		{"a\r\nb\n\r\n", 7, 0},
		{"a\nb", 3, 0},
		{"a\r", 2, 0},		/* a stray CR is a space: taken */
		{"a\r.\r\n", 5, 0},	/* the smuggler's \r.\r, harmless */
		{"a\0b\n", 4, -EILSEQ},
		{"\0", 1, -EILSEQ},
	};
	char got[sizeof in + 1], out[2];
	size_t n = sizeof in - 1, o, i;
	int st = 0;

	o = queue_lf(got, in, n, &st);
	tt_check(o == sizeof want - 1 && !memcmp(got, want, o) &&
		 st == QLF_CR, "lf_whole", "o=%zu st=%d", o, st);
	tt_check(queue_lf_flush(out, &st) == 1 && out[0] == ' ' && st == 0 &&
		 queue_lf_flush(out, &st) == 0, "lf_flush", "st=%d", st);
	st = 0;
	for (i = 0, o = 0; i < n; i++) {
		size_t k = queue_lf(out, in + i, 1, &st);

		memcpy(got + o, out, k);
		o += k;
	}
	tt_check(o == sizeof want - 1 && !memcmp(got, want, o) &&
		 st == QLF_CR, "lf_bytewise", "o=%zu st=%d", o, st);
	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		int whole = 0, bytes = 0;
		size_t k;

		(void)queue_lf(got, v[i].in, v[i].n, &whole);
		for (k = 0; k < v[i].n; k++)
			(void)queue_lf(out, v[i].in + k, 1, &bytes);
		tt_check(queue_lf_end(whole) == v[i].end &&
			 queue_lf_end(bytes) == v[i].end,
			 tt_name("lf_end[%zu]", i), "whole=%d bytes=%d", whole,
			 bytes);
	}
}

/* test_databytes - control/databytes, or SPEC's default when missing or
 * unreadable */
static void test_databytes(void)
{
	struct str d = STR_INIT;
	unsigned long v = 0;
	int r;

	str_catf(&d, "%s/control", root);
	fsx_mkdir_p(d.s, 0700);
	r = ctl_num(root, CTL_DATABYTES, &v);
	tt_check(r == 0 && v == 10485760, "databytes_default", "r=%d v=%lu",
		 r, v);
	str_cats(&d, "/databytes");
	fsx_write_atomic(d.s, "12345\n", 6, 0644);
	r = ctl_num(root, CTL_DATABYTES, &v);
	tt_check(r == 0 && v == 12345, "databytes_file", "r=%d v=%lu", r, v);
	fsx_write_atomic(d.s, "lots\n", 5, 0644);
	r = ctl_num(root, CTL_DATABYTES, &v);
	tt_check(r < 0 && v == 10485760, "databytes_bad", "r=%d v=%lu", r, v);
	str_free(&d);
}

int main(void)
{
	struct str p = STR_INIT, data = STR_INIT, d = STR_INIT;
	struct qenv e, bad;
	struct qwriter w;
	off_t off;
	uint64_t len;
	int r;

	if (!mkdtemp(root))
		return 1;
	str_catf(&d, "%s/queue/tmp", root);
	fsx_mkdir_p(d.s, 0700);
	d.len = 0;
	str_catf(&d, "%s/queue/new", root);
	fsx_mkdir_p(d.s, 0700);

	test_top();
	r = one_message(&p, "alice@example.test", "Subject: x\n\nhello\n");
	tt_check(r == 0, "commit", "r=%d", r);
	r = read_back(p.s, &e, &off, &len);
	tt_check(r == 0, "read_ok", "r=%d", r);
	tt_check(str_eqs(&e.sender, "alice@example.test"), "sender", "%s",
		 str_cstr(&e.sender));
	tt_check(e.nrcpts == 2 && !strcmp(e.rcpts.s, "bob@example.test") &&
		 !strcmp(e.rcpts.s + 17, "carol@remote.test"), "rcpts",
		 "n=%zu", e.nrcpts);
	tt_check(str_eqs(&e.client, "192.0.2.7") &&
		 str_eqs(&e.helo, "client.example"), "client_helo", "bad");
	fsx_read_file(p.s, &data, 1 << 20);
	tt_check(len == 18 && (uint64_t)data.len == (uint64_t)off + len &&
		 !memcmp(data.s + off, "Subject: x\n\nhello\n", 18), "body",
		 "len=%llu", (unsigned long long)len);
	qenv_free(&e);

	/* the null sender of a bounce */
	r = one_message(&p, "", "x\n");
	r = r ? r : read_back(p.s, &e, &off, &len);
	tt_check(r == 0 && e.sender.len == 0, "null_sender", "r=%d", r);
	qenv_free(&e);

	/* a file cut short (a disk error after rename) is refused */
	r = truncate(p.s, (off_t)data.len > 10 ? off + 1 : 5);
	r = read_back(p.s, &e, &off, &len);
	tt_check(r == -EILSEQ, "truncated_body", "r=%d", r);
	qenv_free(&e);
	r = truncate(p.s, 12);
	r = read_back(p.s, &e, &off, &len);
	tt_check(r == -EILSEQ, "truncated_envelope", "r=%d", r);
	qenv_free(&e);
	fsx_write_atomic(p.s, "XQ1\nM", 5, 0600);
	r = read_back(p.s, &e, &off, &len);
	tt_check(r == -EILSEQ, "bad_magic", "r=%d", r);
	qenv_free(&e);
	/* a record longer than the file */
	fsx_write_atomic(p.s, "FQ1\nF\xff\xff\x00\x00" "abc", 12, 0600);
	r = read_back(p.s, &e, &off, &len);
	tt_check(r == -EILSEQ, "record_past_end", "r=%d", r);
	qenv_free(&e);
	/* an unknown record type is not guessed at */
	fsx_write_atomic(p.s, "FQ1\nZ\x00\x00\x00\x00M\0\0\0\0\0\0\0\0", 18,
			 0600);
	r = read_back(p.s, &e, &off, &len);
	tt_check(r == -EILSEQ, "unknown_record", "r=%d", r);
	qenv_free(&e);

	/* addresses with CR, LF or NUL never reach a file; no recipient */
	qenv_init(&bad);
	tt_check(qenv_add_rcpt(&bad, "a\r\nRCPT@x") == -EINVAL, "rcpt_crlf",
		 "accepted");
	tt_check(qenv_add_rcpt(&bad, "") == -EINVAL, "rcpt_empty", "accepted");
	tt_check(qw_open(&w, root, &bad) == -EINVAL, "no_rcpt", "opened");
	str_copys(&bad.sender, "evil\nx");
	qenv_add_rcpt(&bad, "ok@example.test");
	tt_check(qw_open(&w, root, &bad) == -EINVAL, "sender_lf", "opened");
	qenv_free(&bad);

	/* an aborted message leaves nothing in tmp/ or new/ */
	qenv_init(&bad);
	qenv_add_rcpt(&bad, "ok@example.test");
	if (qw_open(&w, root, &bad) == 0) {
		qw_body(&w, "half", 4);
		qw_abort(&w);
	}
	d.len = 0;
	str_catf(&d, "%s/queue/tmp", root);
	r = rmdir(d.s);
	tt_check(r == 0, "abort_leaves_nothing", "tmp/ not empty");
	qenv_free(&bad);

	/* qw_open_path/qw_commit_path (ROOT/drop/): the mode whatever the
	 * umask, renamed to the given name, readable back; an existing file
	 * is neither overwritten nor removed */
	{
		struct str tmp = STR_INIT, dst = STR_INIT;
		struct stat sb;
		mode_t old = umask(077);

		qenv_init(&bad);
		qenv_add_rcpt(&bad, "ok@example.test");
		str_catf(&tmp, "%s/drop-x.tmp", root);
		str_catf(&dst, "%s/drop-x", root);
		r = qw_open_path(&w, tmp.s, 0644, &bad);
		if (r == 0)
			r = qw_body(&w, "hi\n", 3);
		if (r == 0)
			r = qw_commit_path(&w, dst.s);
		tt_check(r == 0 && stat(dst.s, &sb) == 0 &&
			 (sb.st_mode & 07777) == 0644 &&
			 access(tmp.s, F_OK) < 0, "open_path_commit",
			 "r=%d mode=%o", r, (unsigned)sb.st_mode);
		qenv_free(&e);
		qenv_init(&e);
		r = read_back(dst.s, &e, &off, &len);
		tt_check(r == 0 && len == 3 && e.nrcpts == 1, "open_path_read",
			 "r=%d", r);
		r = qw_open_path(&w, dst.s, 0644, &bad);
		tt_check(r == -EEXIST && access(dst.s, F_OK) == 0,
			 "open_path_exists", "r=%d", r);
		umask(old);
		qenv_free(&e);
		qenv_free(&bad);
		str_free(&tmp);
		str_free(&dst);
	}
	{
		/* QUEUE_ADDR_MAX bytes pass, one more does not (vdeliver
		 * refuses a longer sender) */
		char big[QUEUE_ADDR_MAX + 2];

		memset(big, 'a', sizeof big);
		big[1] = '@';
		tt_check(QUEUE_ADDR_MAX == 998 &&
			 queue_addr_plain(big, QUEUE_ADDR_MAX) == 0 &&
			 queue_addr_plain(big, QUEUE_ADDR_MAX + 1) < 0,
			 "addr_plain_max", "wrong verdict at the limit");
	}
	tt_check(queue_addr_plain("a@b", 3) == 0 &&
		 queue_addr_plain("a b@c", 5) < 0 &&
		 queue_addr_plain("<a@b>", 5) < 0 &&
		 queue_addr_plain("ab", 2) < 0 && queue_addr_plain("@b", 2) < 0 &&
		 queue_addr_plain("a@", 2) < 0 && queue_addr_plain("", 0) < 0,
		 "addr_plain", "wrong verdict");
	/* the entry rules (SPEC "Limits at every entry") */
	tt_check(queue_addr_entry("a@b", 3) == 0 &&
		 queue_addr_entry("", 0) == 0 &&
		 queue_addr_entry("a-b@c", 5) == 0 &&
		 queue_addr_entry("-a@b", 4) == -EINVAL &&
		 queue_addr_entry("--root=/x@y", 11) == -EINVAL,
		 "addr_entry", "wrong verdict");
	{
		/* queue_qualify: what mta-inject and sendmail take */
		struct str q = STR_INIT;
		const char *why = NULL;
		int ok = 1;

		ok &= queue_qualify("<a@b>", "me.x", 0, &q, &why) == 0 &&
		      str_eqs(&q, "a@b");
		ok &= queue_qualify("bob", "me.x", 0, &q, &why) == 0 &&
		      str_eqs(&q, "bob@me.x");
		ok &= queue_qualify("<>", "me.x", 1, &q, &why) == 0 &&
		      q.len == 0;
		ok &= queue_qualify("", "me.x", 0, &q, &why) == -EINVAL && why;
		ok &= queue_qualify("a b@c", "me.x", 0, &q, &why) == -EINVAL;
		ok &= queue_qualify("--root=/x@y", "me.x", 1, &q, &why) ==
		      -EINVAL && strstr(why, "'-'");
		ok &= queue_qualify("<-h>", "me.x", 0, &q, &why) == -EINVAL;
		tt_check(ok, "qualify", "wrong verdict");
		/* the root's dot off, as mta-smtpd takes it off */
		ok = queue_qualify("<b@Hosted.example.>", "me.x", 0, &q,
				   &why) == 0 && str_eqs(&q, "b@Hosted.example");
		ok &= queue_qualify("b@x.", "me.x", 1, &q, &why) == 0 &&
		      str_eqs(&q, "b@x");
		ok &= queue_qualify("b@.", "me.x", 0, &q, &why) == 0 &&
		      str_eqs(&q, "b@.");
		tt_check(ok, "qualify_root_dot", "q=%s", q.s ? q.s : "");
		/* U-labels as A-labels, as mta-smtpd takes them */
		ok = queue_qualify("B\xc3\xb6" "b@b\xc3\xbc" "cher.example.",
				   "me.x", 0, &q, &why) == 0 &&
		     str_eqs(&q, "B\xc3\xb6" "b@xn--bcher-kva.example");
		ok &= queue_qualify("b@b\xfc.example", "me.x", 0, &q, &why) ==
		      -EINVAL && why && strstr(why, "UTF-8");
		tt_check(ok, "qualify_idna", "q=%s", q.s ? q.s : "");
		str_free(&q);
	}
	tt_check(queue_rcpts_ok(QUEUE_RCPTS_MAX) == 0 &&
		 queue_rcpts_ok(QUEUE_RCPTS_MAX + 1) == -E2BIG &&
		 QUEUE_RCPTS_MAX == 1000, "rcpts_ok", "wrong verdict");
	{
		struct qenv many;
		size_t k;

		r = 0;
		qenv_init(&many);
		for (k = 0; k < QUEUE_RCPTS_MAX && r == 0; k++)
			r = qenv_add_rcpt(&many, "r@example.test");
		tt_check(r == 0 && many.nrcpts == QUEUE_RCPTS_MAX,
			 "add_rcpt_1000", "r=%d n=%zu", r, many.nrcpts);
		r = qenv_add_rcpt(&many, "r@example.test");
		tt_check(r == -E2BIG && many.nrcpts == QUEUE_RCPTS_MAX,
			 "add_rcpt_1001", "r=%d n=%zu", r, many.nrcpts);
		qenv_free(&many);
	}

	test_limit();
	test_lf();
	test_databytes();
	fsx_rmtree(root);
	str_free(&p);
	str_free(&data);
	str_free(&d);
	return tt_exit();
}
