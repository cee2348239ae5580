/*
 * NAME
 *	test_vdeliver - unit tests of what vdeliver is built from in lib/
 *
 * SYNOPSIS
 *	test_vdeliver
 *
 * DESCRIPTION
 *	The pure parsers first, each from a case table, fed whole and (for
 *	the header scanner) a byte at a time and in odd pieces: the
 *	Delivered-To: header scan (lib/hdrscan.c), maildirsize parsing, sums
 *	and the quota rules (lib/mdquota.c), the extension splitting and the
 *	record parsers (lib/rcpt.c), Maildir names and sizes in names
 *	(lib/maildir.c). Then the file operations on a scratch Maildir under
 *	/tmp: unique names, tmp -> new, a symbolic link as tmp/ refused, a
 *	missing tmp/ recreated, the usage scan with folders, and a
 *	maildirsize recalculated and appended to. Prints one line per check,
 *	"ok NAME" or "FAIL NAME: why" (tests/run.py).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"
#include "hdrscan.h"
#include "maildir.h"
#include "mdquota.h"
#include "rcpt.h"
#include "str.h"
#include "tinytest.h"

static char scratch[] = "/tmp/facteur-vdeliver-XXXXXX";

/* --- the header scan ---------------------------------------------------- */

struct hcase {
	const char *name;
	const char *msg;
	size_t len;		/* 0: strlen(msg) */
	const char *addrs;	/* '|' separates addresses */
	unsigned long want_delivered;
	long want_match;
	int want_crlf;
};

static const struct hcase hcases[] = {
	{"match", "Delivered-To: bob@example.test\nSubject: x\n\nbody\n", 0,
	 "bob@example.test", 1, 0, 0},
	{"case_and_brackets", "DELIVERED-TO:   <Bob@Example.TEST>  \n\n", 0,
	 "bob@example.test", 1, 0, 0},
	{"other_address", "Delivered-To: ann@example.test\n\n", 0,
	 "bob@example.test", 1, -1, 0},
	{"longer_address", "Delivered-To: bob@example.test.org\n\n", 0,
	 "bob@example.test", 1, -1, 0},
	{"second_of_list", "Delivered-To: b@y\nDelivered-To: a@x\n\n", 0,
	 "z@z|a@x|b@y", 2, 2, 0},
	{"in_body_only", "Subject: hi\n\nDelivered-To: bob@example.test\n", 0,
	 "bob@example.test", 0, -1, 0},
	{"folded", "Delivered-To:\n\tbob@example.test\n\n", 0,
	 "bob@example.test", 1, 0, 0},
	{"crlf", "Delivered-To: bob@example.test\r\nX: y\r\n\r\nbody\r\n", 0,
	 "bob@example.test", 1, 0, 1},
	{"crlf_body_after", "Subject: a\r\n\r\nDelivered-To: bob@example.test\r\n",
	 0, "bob@example.test", 0, -1, 1},
	{"no_header", "hello world\nDelivered-To: bob@example.test\n\n", 0,
	 "bob@example.test", 0, -1, 0},
	{"blank_first", "\nDelivered-To: bob@example.test\n", 0,
	 "bob@example.test", 0, -1, 0},
	{"space_first", " x\nDelivered-To: bob@example.test\n\n", 0,
	 "bob@example.test", 0, -1, 0},
	{"mbox_from_line", "From bob Thu Jan  1 00:00:00 2026\n"
	 "Delivered-To: bob@example.test\n\n", 0, "bob@example.test", 0, -1, 0},
	{"eof_in_header", "Delivered-To: bob@example.test", 0,
	 "bob@example.test", 1, 0, 0},
	{"obs_space_before_colon", "Delivered-To : bob@example.test\n\n", 0,
	 "bob@example.test", 1, 0, 0},
	{"other_field", "X-Delivered-To: bob@example.test\n\n", 0,
	 "bob@example.test", 0, -1, 0},
	{"nul_in_value", "Delivered-To: bob@example.test\0x\n\n", 35,
	 "bob@example.test", 1, -1, 0},
	{"nul_in_body", "Subject: x\n\nab\0cd\n", 18,
	 "bob@example.test", 0, -1, 0},
	{"empty", "", 0, "bob@example.test", 0, -1, 0},
	{"empty_value", "Delivered-To:\n\n", 0, "bob@example.test", 1, -1, 0},
	{"lone_cr_kept", "Delivered-To: bob@\rexample.test\n\n", 0,
	 "bob@example.test", 1, -1, 0},
	{"cr_at_eof", "Delivered-To: bob@example.test\r", 0,
	 "bob@example.test", 1, -1, 0},
};

/* split - "a|b" into "a\0b\0" */
static void split(const char *in, struct str *out)
{
	out->len = 0;
	for (; *in; in++)
		str_catc(out, *in == '|' ? 0 : *in);
	str_catc(out, 0);
}

/* scan - run the scanner over msg in pieces of step bytes (0: at once) */
static void scan(struct hdrscan *h, const char *msg, size_t len,
		 const struct str *addrs, size_t step)
{
	size_t i;

	hdrscan_init(h, addrs->s, addrs->len);
	if (step == 0)
		hdrscan_feed(h, msg, len);
	for (i = 0; step && i < len; i += step)
		hdrscan_feed(h, msg + i, len - i < step ? len - i : step);
	hdrscan_end(h);
}

/* test_hdrscan - the case table whole and in pieces; counts, bounds */
static void test_hdrscan(void)
{
	static const size_t steps[] = {0, 1, 2, 3, 7};
	struct str addrs = STR_INIT, big = STR_INIT;
	struct hdrscan h;
	size_t i, s;
	int k;

	for (i = 0; i < sizeof hcases / sizeof hcases[0]; i++) {
		const struct hcase *c = &hcases[i];
		size_t len = c->len ? c->len : strlen(c->msg);

		split(c->addrs, &addrs);
		for (s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			scan(&h, c->msg, len, &addrs, steps[s]);
			CHECK_INT(tt_name("hdrscan_%s_step%zu_delivered",
					  c->name, steps[s]),
				  h.delivered, c->want_delivered);
			CHECK_INT(tt_name("hdrscan_%s_step%zu_match", c->name,
					  steps[s]), h.match, c->want_match);
			CHECK_INT(tt_name("hdrscan_%s_step%zu_crlf", c->name,
					  steps[s]), h.crlf, c->want_crlf);
			CHECK_U64(tt_name("hdrscan_%s_step%zu_bytes", c->name,
					  steps[s]), h.bytes, len);
			hdrscan_free(&h);
		}
	}

	/* 101 Delivered-To: lines are counted, one by one */
	for (k = 0; k < 101; k++)
		str_catf(&big, "Delivered-To: u%d@example.test\n", k);
	str_cats(&big, "\nbody\n");
	split("bob@example.test", &addrs);
	scan(&h, big.s, big.len, &addrs, 0);
	CHECK_INT("hdrscan_count_101", h.delivered, 101);
	CHECK_INT("hdrscan_count_101_match", h.match, -1);
	CHECK_INT("hdrscan_count_101_compared", h.compared,
		  HDRSCAN_DELIVERED_MAX);
	hdrscan_free(&h);

	/* the 100th is compared, the 101st not (the count refuses it);
	 * nothing is compared after a match */
	big.len = 0;
	for (k = 0; k < 99; k++)
		str_catf(&big, "Delivered-To: u%d@example.test\n", k);
	str_cats(&big, "Delivered-To: bob@example.test\n"
		 "Delivered-To: bob@example.test\n\nbody\n");
	scan(&h, big.s, big.len, &addrs, 0);
	CHECK_INT("hdrscan_100th_match", h.match, 0);
	CHECK_INT("hdrscan_100th_compared", h.compared, 100);
	hdrscan_free(&h);
	big.len = 0;
	for (k = 0; k < 100; k++)
		str_catf(&big, "Delivered-To: u%d@example.test\n", k);
	str_cats(&big, "Delivered-To: bob@example.test\n\nbody\n");
	scan(&h, big.s, big.len, &addrs, 0);
	CHECK_INT("hdrscan_101st_not_compared", h.match, -1);
	CHECK_INT("hdrscan_101st_counted", h.delivered, 101);
	hdrscan_free(&h);

	/* a field longer than the bound is counted, never compared */
	big.len = 0;
	str_cats(&big, "Delivered-To: ");
	for (k = 0; k < 3000; k++)
		str_catc(&big, ' ');
	str_cats(&big, "bob@example.test\nX: y\n\n");
	scan(&h, big.s, big.len, &addrs, 0);
	CHECK_INT("hdrscan_long_field_counted", h.delivered, 1);
	CHECK_INT("hdrscan_long_field_not_compared", h.match, -1);
	CHECK("hdrscan_long_field_bounded",
	      h.field.cap <= HDRSCAN_FIELD_MAX * 2 + 64);
	hdrscan_free(&h);

	/* a huge header costs no more memory than one field */
	big.len = 0;
	for (k = 0; k < 20000; k++)
		str_cats(&big, "X-Filler: 0123456789012345678901234567890\n");
	str_cats(&big, "Delivered-To: bob@example.test\n\n");
	scan(&h, big.s, big.len, &addrs, 4096);
	CHECK_INT("hdrscan_big_header_match", h.match, 0);
	CHECK("hdrscan_big_header_bounded",
	      h.field.cap <= HDRSCAN_FIELD_MAX * 2 + 64);
	hdrscan_free(&h);
	str_free(&addrs);
	str_free(&big);
}

/* --- maildirsize ------------------------------------------------------ */

struct mcase {
	const char *name;
	const char *in;
	int want_r;
	uint64_t want_lb, want_lm;
	long long want_bytes, want_msgs;
	unsigned want_lines;
};

static const struct mcase mcases[] = {
	{"vadmin_new", "10485760S\n0 0\n", 0, 10485760, 0, 0, 0, 1},
	{"sum", "1000S,10C\n100 1\n-50 -1\n200 2\n", 0, 1000, 10, 250, 2, 3},
	{"count_first", "10C,1000S\n5 1\n", 0, 1000, 10, 5, 1, 1},
	{"msgs_only", "500C\n0 0\n7 1\n", 0, 0, 500, 7, 1, 2},
	{"no_limits_line", "\n5 1\n", 0, 0, 0, 5, 1, 1},
	{"spaces_tabs", "100S\n  \n", -EILSEQ, 0, 0, 0, 0, 0},
	{"tab_separated", "100S\n5\t1\n", 0, 100, 0, 5, 1, 1},
	{"cut_last_line", "1000S\n10 1\n20 1", 0, 1000, 0, 10, 1, 1},
	{"no_usage_line", "1000S\n", 0, 1000, 0, 0, 0, 0},
	{"no_newline", "1000S", -EILSEQ, 0, 0, 0, 0, 0},
	{"negative_total", "1000S\n10 1\n-20 -1\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"bad_unit", "1000X\n0 0\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"trailing_comma", "1000S,\n0 0\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"one_number", "1000S\n10\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"three_numbers", "1000S\n10 1 1\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"garbage", "1000S\nabc def\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"huge", "1000S\n99999999999999999999 1\n", -EILSEQ, 0, 0, 0, 0, 0},
	{"minus_alone", "1000S\n- 1\n", -EILSEQ, 0, 0, 0, 0, 0},
};

/* test_mdq - maildirsize parsing, sums and the quota rules */
static void test_mdq(void)
{
	struct quota q1000 = {1000, 0}, q2c = {0, 2}, q0 = {0, 0};
	struct str line = STR_INIT;
	struct mdq q;
	size_t i;
	int r;

	for (i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
		const struct mcase *c = &mcases[i];

		r = mdq_parse(c->in, strlen(c->in), &q);
		CHECK_INT(tt_name("mdq_parse_%s_r", c->name), r, c->want_r);
		if (r < 0 || c->want_r < 0)
			continue;
		CHECK_U64(tt_name("mdq_parse_%s_limit_bytes", c->name),
			  q.limit.bytes, c->want_lb);
		CHECK_U64(tt_name("mdq_parse_%s_limit_msgs", c->name),
			  q.limit.msgs, c->want_lm);
		CHECK_INT(tt_name("mdq_parse_%s_bytes", c->name), q.bytes,
			  c->want_bytes);
		CHECK_INT(tt_name("mdq_parse_%s_msgs", c->name), q.msgs,
			  c->want_msgs);
		CHECK_INT(tt_name("mdq_parse_%s_lines", c->name), q.lines,
			  c->want_lines);
	}

	/* Dovecot's count: past the limit, not at it */
	CHECK_INT("mdq_over_fits", mdq_over(&q1000, 900, 0, 100, 1), 0);
	CHECK_INT("mdq_over_one_byte_more", mdq_over(&q1000, 900, 0, 101, 1), 1);
	CHECK_INT("mdq_over_already", mdq_over(&q1000, 1001, 0, 0, 1), 1);
	CHECK_INT("mdq_over_msgs_fits", mdq_over(&q2c, 1 << 30, 1, 1 << 30, 1),
		  0);
	CHECK_INT("mdq_over_msgs_full", mdq_over(&q2c, 0, 2, 0, 1), 1);
	CHECK_INT("mdq_over_no_limit", mdq_over(&q0, UINT64_MAX - 1, 5,
						UINT64_MAX, 1), 0);
	CHECK_INT("mdq_over_huge_add", mdq_over(&q1000, 1, 0, UINT64_MAX, 1),
		  1);

	CHECK_INT("mdq_reached_90", mdq_reached(&q1000, 900, 0, 90), 1);
	CHECK_INT("mdq_reached_89", mdq_reached(&q1000, 899, 0, 90), 0);
	CHECK_INT("mdq_reached_off", mdq_reached(&q1000, 5000, 0, 0), 0);
	CHECK_INT("mdq_reached_msgs", mdq_reached(&q2c, 0, 2, 90), 1);
	CHECK_INT("mdq_reached_msgs_half", mdq_reached(&q2c, 0, 1, 90), 0);

	/* when the file must be recalculated (Courier's and Dovecot's rules) */
	mdq_parse("1000S\n100 1\n", 12, &q);
	CHECK_INT("mdq_stale_fresh", mdq_stale(&q, 12, 0, &q1000, 10, 1), 0);
	CHECK_INT("mdq_stale_big_file", mdq_stale(&q, MDQ_FILE_MAX, 0, &q1000,
						  10, 1), 1);
	CHECK_INT("mdq_stale_other_limit", mdq_stale(&q, 12, 0, &q2c, 10, 1),
		  1);
	CHECK_INT("mdq_stale_over_young_one_line",
		  mdq_stale(&q, 12, 60, &q1000, 2000, 1), 0);
	CHECK_INT("mdq_stale_over_old", mdq_stale(&q, 12, MDQ_STALE_SECS + 1,
						  &q1000, 2000, 1), 1);
	CHECK_INT("mdq_stale_fits_old", mdq_stale(&q, 12, 86400, &q1000, 10,
						  1), 0);
	mdq_parse("1000S\n100 1\n5 1\n", 16, &q);
	CHECK_INT("mdq_stale_over_two_lines", mdq_stale(&q, 16, 0, &q1000,
							2000, 1), 1);
	mdq_parse("1000S\n", 6, &q);
	CHECK_INT("mdq_stale_no_usage", mdq_stale(&q, 6, 0, &q1000, 0, 1), 1);

	mdq_line(&line, 4096, 1);
	CHECK_STR("mdq_line_add", line.s, "4096 1\n");
	mdq_line(&line, -10, -1);
	CHECK_STR("mdq_line_remove", line.s, "-10 -1\n");
	str_free(&line);
}

/* --- extensions and records --------------------------------------------- */

/* test_rcpt - extension fallbacks and the record parsers */
static void test_rcpt(void)
{
	static const struct {
		const char *local;
		const char *want;	/* the names tried after the exact one */
	} ext[] = {
		{"user", ""},
		{"user-ext", "user"},
		{"user+ext", "user"},
		{"a-b+c", "a-b|a"},
		{"john-doe-lists", "john-doe|john"},
		{"user+", "user"},
		{"user--x", "user-|user"},
		{"-x", ""},
		{"+", ""},
		{"a", ""},
		{"x+y-z", "x+y|x"},
	};
	struct rcpt_user u = RCPT_USER_INIT;
	struct str got = STR_INIT;
	const char *d;
	size_t i, len, dlen;
	int keep, r;

	for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		got.len = 0;
		str_catb(&got, "", 0);
		len = strlen(ext[i].local);
		while ((len = rcpt_ext_prev(ext[i].local, len)) > 0) {
			if (got.len)
				str_catc(&got, '|');
			str_catb(&got, ext[i].local, len);
		}
		CHECK_STR(tt_name("rcpt_ext_%s", ext[i].local), got.s,
			  ext[i].want);
	}

#define REC(s) s, sizeof s - 1
	r = rcpt_parse_user(REC("domains/d/u/Maildir\0" "1000\0" "5\0" "4"), &u);
	CHECK_INT("rcpt_user_ok", r, 0);
	CHECK_STR("rcpt_user_maildir", str_cstr(&u.maildir),
		  "domains/d/u/Maildir");
	CHECK_U64("rcpt_user_bytes", u.quota.bytes, 1000);
	CHECK_U64("rcpt_user_msgs", u.quota.msgs, 5);
	CHECK_INT("rcpt_user_flags", u.flags, 4);
	CHECK_INT("rcpt_user_three_fields",
		  rcpt_parse_user(REC("m\0" "1\0" "2"), &u), -EILSEQ);
	CHECK_INT("rcpt_user_five_fields",
		  rcpt_parse_user(REC("m\0" "1\0" "2\0" "3\0" "4"), &u), -EILSEQ);
	CHECK_INT("rcpt_user_letters",
		  rcpt_parse_user(REC("m\0" "1x\0" "2\0" "3"), &u), -EILSEQ);
	CHECK_INT("rcpt_user_empty_number",
		  rcpt_parse_user(REC("m\0" "\0" "2\0" "3"), &u), -EILSEQ);
	/* found by fuzz_records: the Maildir rule of lib/login's reader
	 * (acct_maildir_ok), so that a delivery stays below the root */
	CHECK_INT("rcpt_user_maildir_dotdot",
		  rcpt_parse_user(REC("domains/../../etc/x\0" "1\0" "2\0" "3"),
				  &u), -EILSEQ);
	CHECK_INT("rcpt_user_maildir_absolute",
		  rcpt_parse_user(REC("/var/mail/x\0" "1\0" "2\0" "3"), &u),
		  -EILSEQ);
	CHECK_INT("rcpt_user_maildir_outside",
		  rcpt_parse_user(REC("etc/Maildir\0" "1\0" "2\0" "3"), &u),
		  -EILSEQ);
	CHECK_INT("rcpt_user_empty_maildir",
		  rcpt_parse_user(REC("\0" "1\0" "2\0" "3"), &u), -EILSEQ);
	CHECK_INT("rcpt_user_overflow",
		  rcpt_parse_user(REC("m\0" "99999999999999999999\0" "2\0" "3"),
				  &u), -EILSEQ);

	r = rcpt_parse_forward(REC("1\0x@remote.example"), &keep, &d, &dlen);
	CHECK_INT("rcpt_fwd_keep_ok", r, 0);
	CHECK_INT("rcpt_fwd_keep", keep, 1);
	CHECK_MEM("rcpt_fwd_dest", d, dlen, "x@remote.example", 16);
	r = rcpt_parse_forward(REC("0\0x@y"), &keep, &d, &dlen);
	CHECK_INT("rcpt_fwd_nokeep", r == 0 && keep == 0, 1);
	CHECK_INT("rcpt_fwd_bad_keep", rcpt_parse_forward(REC("2\0x@y"), &keep,
							  &d, &dlen), -EILSEQ);
	CHECK_INT("rcpt_fwd_no_nul", rcpt_parse_forward(REC("1x@y"), &keep, &d,
							&dlen), -EILSEQ);
	CHECK_INT("rcpt_fwd_empty_dest", rcpt_parse_forward(REC("1\0"), &keep,
							    &d, &dlen), -EILSEQ);
	CHECK_INT("rcpt_fwd_two_dests", rcpt_parse_forward(REC("1\0a@b\0c@d"),
							   &keep, &d, &dlen),
		  -EILSEQ);
#undef REC
	rcpt_user_free(&u);
	str_free(&got);
}

/* --- Maildir names ------------------------------------------------------ */

/* test_names - Maildir names and sizes in names */
static void test_names(void)
{
	static const struct {
		const char *name;
		unsigned mode;
		int want;
	} marks[] = {
		{"dovecot-uidvalidity.6b14f736", 0444, 1},
		{"dovecot-uidvalidity.6b14f736", 0644, 0},
		{"dovecot-uidvalidity.6b14f736", 0600, 0},
		{"dovecot-uidvalidity.6b14f736:2,S", 0444, 0},
		{"dovecot-uidvalidity.", 0444, 0},
		{"dovecot-uidvalidity", 0444, 0},
		{"1.M1P1Q1.h,S=123", 0444, 0},
	};
	struct mdname n = {1700000000, 123, 42, 7, 0, 0, 0, 0, 0, "mx"};
	struct str s = STR_INIT;
	uint64_t size = 0;
	size_t i;

	maildir_name(&s, &n);
	CHECK_STR("name_tmp", s.s, "1700000000.M123P42Q7.mx");
	n.have_inode = 1;
	n.dev = 0x803;
	n.ino = 0x1f;
	n.have_size = 1;
	n.size = 4096;
	maildir_name(&s, &n);
	CHECK_STR("name_new", s.s, "1700000000.M123P42Q7V803I1f.mx,S=4096");
	CHECK_INT("name_new_size", maildir_name_size(s.s, s.len, 'S', &size), 0);
	CHECK_U64("name_new_size_value", size, 4096);

	maildir_host(&s, "mail/x:y,z.example");
	CHECK_STR("host_escaped", s.s, "mail\\057x\\072y\\054z.example");
	maildir_host(&s, "");
	CHECK_STR("host_empty", s.s, "localhost");
	maildir_host(&s, "a b\tc");
	CHECK_STR("host_controls", s.s, "a_b_c");

#define SZ(name, str, r, v) do { \
	size = 0; \
	CHECK_INT("size_" name, maildir_name_size(str, strlen(str), 'S', &size), r); \
	if (r == 0) \
		CHECK_U64("size_" name "_value", size, v); \
} while (0)
	SZ("plain", "1.M1P1Q1.h,S=123", 0, 123);
	SZ("flags", "1.M1P1Q1.h,S=123:2,S", 0, 123);
	SZ("after_w", "1.M1P1Q1.h,W=130,S=123:2,", 0, 123);
	SZ("before_w", "1.M1P1Q1.h,S=123,W=130", 0, 123);
	SZ("none", "1.M1P1Q1.h", -ENOENT, 0);
	SZ("no_digits", "1.M1P1Q1.h,S=", -ENOENT, 0);
	SZ("letters_after", "1.M1P1Q1.h,S=12a", -ENOENT, 0);
	SZ("escaped_host", "1.M1P1Q1.a\\054S=9,S=5", 0, 5);
	SZ("overflow", "x,S=99999999999999999999999", -ENOENT, 0);
#undef SZ
	/* Dovecot's read-only marker, and nothing that only looks like it */
	for (i = 0; i < sizeof marks / sizeof marks[0]; i++)
		CHECK_INT(tt_name("marker_%zu", i), maildir_dovecot_marker(
			marks[i].name, marks[i].mode), marks[i].want);
	str_free(&s);
}

/* --- files ------------------------------------------------------------ */

/* sp - SCRATCH/REL in one of 8 rotating static buffers */
static const char *sp(const char *rel)
{
	static char buf[8][PATH_MAX];
	static int k;
	char *b = buf[k = (k + 1) % 8];

	snprintf(b, sizeof buf[0], "%s/%s", scratch, rel);
	return b;
}

/* count_dir - entries of a directory, "." and ".." aside */
static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* put - a file of n bytes */
static void put(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd >= 0) {
		fsx_write_all(fd, data, n);
		close(fd);
	}
}

/* test_files - Maildir writes, links refused, usage, maildirsize on disk */
static void test_files(void)
{
	struct maildir md = MAILDIR_INIT;
	struct mdfile f = MDFILE_INIT;
	struct str name = STR_INIT, seen = STR_INIT, text = STR_INIT;
	struct quota q = {100000, 1000};
	struct mdq usage;
	struct stat st;
	uint64_t bytes, msgs;
	int rootfd, r, i, dup = 0, bad_mode = 0, lk;

	fsx_mkdir_p(sp("domains/d/u/Maildir/cur"), 0700);
	fsx_mkdir(sp("domains/d/u/Maildir/new"), 0700);
	fsx_mkdir(sp("domains/d/u/Maildir/tmp"), 0700);
	rootfd = open(scratch, O_RDONLY | O_DIRECTORY);

	r = maildir_open(rootfd, "domains/d/u/Maildir", &md);
	CHECK_INT("open_ok", r, 0);
	/* 200 files in a row: every name differs, every file is 0600 */
	for (i = 0; r == 0 && i < 200; i++) {
		r = maildir_create(&md, "host", &f);
		if (r < 0)
			break;
		if (fstat(f.fd, &st) == 0 && (st.st_mode & 0777) != 0600)
			bad_mode++;
		fsx_write_all(f.fd, "Subject: x\n\nhi\n", 15);
		r = maildir_sync(&f);
		if (r == 0)
			r = maildir_deliver(&md, &f, 15, &name);
		if (r == 0 && strstr(seen.s ? seen.s : "", name.s))
			dup++;
		str_cats(&seen, name.s);
		str_catc(&seen, '/');
	}
	CHECK_INT("deliver_200_ok", r, 0);
	CHECK_INT("deliver_200_unique", dup, 0);
	CHECK_INT("deliver_200_mode_0600", bad_mode, 0);
	CHECK_INT("deliver_200_in_new", count_dir(sp("domains/d/u/Maildir/new")),
		  200);
	CHECK_INT("deliver_200_tmp_empty",
		  count_dir(sp("domains/d/u/Maildir/tmp")), 0);
	CHECK("deliver_name_has_size", strstr(name.s, ",S=15") != NULL);

	/* a file that is not delivered leaves nothing */
	r = maildir_create(&md, "host", &f);
	maildir_abort(&md, &f);
	CHECK_INT("abort_leaves_nothing",
		  count_dir(sp("domains/d/u/Maildir/tmp")), 0);
	maildir_close(&md);

	/* usage: new/, cur/ and folders; ",S=" believed, else stat() */
	put(sp("domains/d/u/Maildir/cur/1.M1P1Q1.h:2,S"), "12345", 5);
	fsx_mkdir_p(sp("domains/d/u/Maildir/.Sent/cur"), 0700);
	put(sp("domains/d/u/Maildir/.Sent/cur/2.M1P1Q1.h,S=100:2,S"), "x", 1);
	put(sp("domains/d/u/Maildir/.hidden-file"), "x", 1);
	maildir_open(rootfd, "domains/d/u/Maildir", &md);
	r = maildir_usage(md.dfd, &bytes, &msgs);
	CHECK_INT("usage_ok", r, 0);
	CHECK_U64("usage_msgs", msgs, 202);
	CHECK_U64("usage_bytes", bytes, 200 * 15 + 5 + 100);

	/* maildirsize: missing -> recalculated; appended to; read back */
	r = mdq_usage(md.dfd, md.tmpfd, &q, "host", 10, 1, &usage);
	CHECK_INT("mdq_usage_rebuild_ok", r, 0);
	CHECK_INT("mdq_usage_rebuild_bytes", usage.bytes, 200 * 15 + 5 + 100);
	fsx_read_file(sp("domains/d/u/Maildir/maildirsize"), &text, 4096);
	CHECK_STR("mdq_rebuild_file", str_cstr(&text), "100000S,1000C\n3105 202\n");
	CHECK_INT("mdq_rebuild_tmp_clean",
		  count_dir(sp("domains/d/u/Maildir/tmp")), 0);
	lk = mdq_lock(md.dfd, 0);
	CHECK_INT("mdq_lock_fd", lk >= 0, 1);
	/* the lock is on a regular file of the Maildir (NFS sends those to
	 * the server), and another opener cannot take it exclusively */
	{
		int other = openat(md.dfd, MDQ_LOCK_FILE, O_RDWR | O_CLOEXEC);

		CHECK_INT("mdq_lock_file_regular", other >= 0 &&
			  fstat(other, &st) == 0 && S_ISREG(st.st_mode), 1);
		CHECK_INT("mdq_lock_excludes", other >= 0 &&
			  flock(other, LOCK_EX | LOCK_NB) < 0 &&
			  errno == EWOULDBLOCK, 1);
		CHECK_INT("mdq_lock_dir_free", flock(md.dfd, LOCK_EX | LOCK_NB),
			  0);
		(void)flock(md.dfd, LOCK_UN);
		if (other >= 0)
			close(other);
	}
	CHECK_INT("mdq_append_ok", mdq_append(md.dfd, 4096, 1), 0);
	mdq_unlock(lk);
	r = mdq_usage(md.dfd, md.tmpfd, &q, "host", 10, 1, &usage);
	CHECK_INT("mdq_after_append_lines", usage.lines, 2);
	CHECK_INT("mdq_after_append_bytes", usage.bytes, 3105 + 4096);
	/* a hard link as maildirsize (to a file elsewhere): never appended
	 * to, and a recalculation breaks the link instead of writing it */
	{
		struct str other = STR_INIT;

		CHECK_INT("mdq_hardlink_made",
			  link(sp("domains/d/u/Maildir/maildirsize"),
			       sp("outside-maildirsize")), 0);
		lk = mdq_lock(md.dfd, 0);
		CHECK_INT("mdq_append_hardlink", mdq_append(md.dfd, 1, 1),
			  -EILSEQ);
		mdq_unlock(lk);
		r = mdq_usage(md.dfd, md.tmpfd, &q, "host", 10, 1, &usage);
		CHECK_INT("mdq_hardlink_recalc", usage.lines, 1);
		fsx_read_file(sp("outside-maildirsize"), &other, 4096);
		CHECK_STR("mdq_hardlink_untouched", str_cstr(&other),
			  "100000S,1000C\n3105 202\n4096 1\n");
		str_free(&other);
	}
	/* another limit in the tables: rewritten with it */
	q.msgs = 0;
	r = mdq_usage(md.dfd, md.tmpfd, &q, "host", 10, 1, &usage);
	fsx_read_file(sp("domains/d/u/Maildir/maildirsize"), &text, 4096);
	CHECK_STR("mdq_new_limit_file", str_cstr(&text), "100000S\n3105 202\n");
	/* garbage: recalculated */
	put(sp("domains/d/u/Maildir/maildirsize"), "what\n", 5);
	r = mdq_usage(md.dfd, md.tmpfd, &q, "host", 10, 1, &usage);
	CHECK_INT("mdq_garbage_rebuilt", r == 0 && usage.bytes == 3105, 1);
	maildir_close(&md);

	/* a missing tmp/ is made again, 0700 */
	rmdir(sp("domains/d/u/Maildir/tmp"));
	r = maildir_open(rootfd, "domains/d/u/Maildir", &md);
	CHECK_INT("missing_tmp_ok", r, 0);
	CHECK_INT("missing_tmp_made", stat(sp("domains/d/u/Maildir/tmp"), &st) ==
		  0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, 1);
	maildir_close(&md);

	/* a symbolic link as tmp/ or anywhere on the way is never followed */
	rmdir(sp("domains/d/u/Maildir/tmp"));
	fsx_mkdir(sp("elsewhere"), 0700);
	(void)!symlink(sp("elsewhere"), sp("domains/d/u/Maildir/tmp"));
	r = maildir_open(rootfd, "domains/d/u/Maildir", &md);
	CHECK_INT("symlink_tmp_refused", r, -ELOOP);
	CHECK_INT("symlink_tmp_target_empty", count_dir(sp("elsewhere")), 0);
	unlink(sp("domains/d/u/Maildir/tmp"));
	fsx_mkdir(sp("domains/d/u/Maildir/tmp"), 0700);
	(void)!symlink(sp("domains/d/u"), sp("domains/d/link"));
	r = maildir_open(rootfd, "domains/d/link/Maildir", &md);
	CHECK_INT("symlink_on_the_way_refused", r, -ELOOP);
	/* ROOT/domains itself may be a link (to another disk) */
	fsx_mkdir(sp("root2"), 0700);
	(void)!symlink(sp("domains"), sp("root2/domains"));
	r = open(sp("root2"), O_RDONLY | O_DIRECTORY);
	CHECK_INT("domains_link_followed", maildir_open(r, "domains/d/u/Maildir",
							&md), 0);
	maildir_close(&md);
	close(r);
	CHECK_INT("dotdot_refused", maildir_open(rootfd, "domains/../domains/d/u/"
						 "Maildir", &md), -EINVAL);
	CHECK_INT("absolute_refused", maildir_open(rootfd, "/tmp", &md), -EINVAL);
	CHECK_INT("missing_maildir", maildir_open(rootfd, "domains/d/nobody/"
						  "Maildir", &md), -ENOENT);
	close(rootfd);
	str_free(&name);
	str_free(&seen);
	str_free(&text);
	str_free(&f.tmpname);
}

/* main - every group, in a scratch directory removed at the end */
int main(void)
{
	if (!mkdtemp(scratch))
		return 1;
	test_hdrscan();
	test_mdq();
	test_rcpt();
	test_names();
	test_files();
	fsx_rmtree(scratch);
	printf("# %u checks\n", tt_checks);
	return tt_exit();
}
