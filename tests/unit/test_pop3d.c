/*
 * NAME
 *	test_pop3d - unit tests of pop3d's parsers and building blocks
 *
 * SYNOPSIS
 *	test_pop3d
 *
 * DESCRIPTION
 *	Drives pop3d/proto.c (command lines, numbers, UIDLs and sizes
 *	from Maildir names, listen lines, the plaintext-login rule, the
 *	RETR/TOP converter; base64, SASL and login names are lib/'s, in
 *	test_sasl; failure counters and client addresses too, in
 *	test_limit; the line reader in test_conn), the command table of
 *	session.c and the Maildir handling of mbox.c in a scratch
 *	directory. Prints one line per check, "ok NAME"
 *	or "FAIL NAME: why" (tests/run.py), and exits 1 if any failed.
 */
#include <arpa/inet.h>
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
#include "listen.h"
#include "maildir.h"
#include "../../pop3d/pop3d.h"
#include "tinytest.h"

static char scratch[] = "/tmp/facteur-pop3d-XXXXXX";

/* test_parse - keyword and argument of a command line */
static void test_parse(void)
{
	static const struct {
		const char *line;
		int rc;
		const char *name, *arg;
	} cases[] = {
		{"QUIT", 0, "QUIT", ""},
		{"quit", 0, "QUIT", ""},
		{"RetR 1", 0, "RETR", "1"},
		{"TOP 1 10", 0, "TOP", "1 10"},
		{"PASS a b  c ", 0, "PASS", "a b  c "},
		{"USER ", 0, "USER", ""},
		{"X", 0, "X", ""},
		{"", -EINVAL, NULL, NULL},
		{" QUIT", -EINVAL, NULL, NULL},
		{"CAPAB", -EINVAL, NULL, NULL},
		{"CAPABILITY", -EINVAL, NULL, NULL},
		{"RE7R 1", -EINVAL, NULL, NULL},
		{"R\xc3\xa9TR", -EINVAL, NULL, NULL},
		{"PASS a\tb", -EILSEQ, NULL, NULL},
		{"PASS \x7f", -EILSEQ, NULL, NULL},
		{"STAT\r", -EILSEQ, NULL, NULL},
	};
	struct pop3_line pl;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got_rc = proto_parse(cases[i].line, strlen(cases[i].line),
					 &pl);

		CHECK_INT(tt_name("parse_%zu_rc", i), got_rc, cases[i].rc);
		if (cases[i].rc == 0 && got_rc == 0) {
			CHECK_STR(tt_name("parse_%zu_name", i), pl.name,
				  cases[i].name);
			CHECK_MEM(tt_name("parse_%zu_arg", i), pl.arg, pl.arglen,
				  cases[i].arg, strlen(cases[i].arg));
		}
	}
	/* a NUL inside: lengths, not C strings, rule */
	CHECK_INT("parse_nul", proto_parse("PASS a\0b", 8, &pl), -EILSEQ);
}

/* test_split_num - argument tokens and message numbers */
static void test_split_num(void)
{
	struct proto_tok t[2];
	unsigned long v = 7;
	size_t n = 9;

	CHECK_INT("split_empty", proto_split("", 0, t, 2, &n), 0);
	CHECK_INT("split_empty_n", n, 0);
	CHECK_INT("split_spaces", proto_split("  ", 2, t, 2, &n), 0);
	CHECK_INT("split_spaces_n", n, 0);
	CHECK_INT("split_two", proto_split("1  20 ", 6, t, 2, &n), 0);
	CHECK_INT("split_two_n", n, 2);
	CHECK_MEM("split_two_0", t[0].s, t[0].len, "1", 1);
	CHECK_MEM("split_two_1", t[1].s, t[1].len, "20", 2);
	CHECK_INT("split_three", proto_split("1 2 3", 5, t, 2, &n), -E2BIG);

	CHECK_INT("num_1", proto_num("1", 1, &v), 0);
	CHECK_U64("num_1_v", v, 1);
	CHECK_INT("num_0", proto_num("0", 1, &v), 0);
	CHECK_U64("num_0_v", v, 0);
	CHECK_INT("num_lead0", proto_num("007", 3, &v), 0);
	CHECK_U64("num_lead0_v", v, 7);
	CHECK_INT("num_empty", proto_num("", 0, &v), -EINVAL);
	CHECK_INT("num_neg", proto_num("-1", 2, &v), -EINVAL);
	CHECK_INT("num_plus", proto_num("+1", 2, &v), -EINVAL);
	CHECK_INT("num_alpha", proto_num("1a", 2, &v), -EINVAL);
	CHECK_INT("num_hex", proto_num("0x10", 4, &v), -EINVAL);
	CHECK_INT("num_max", proto_num("18446744073709551615", 20, &v), 0);
	CHECK_U64("num_max_v", v, ULONG_MAX);
	CHECK_INT("num_overflow", proto_num("18446744073709551616", 20, &v),
		  -ERANGE);
	CHECK_INT("num_huge", proto_num("99999999999999999999999", 23, &v),
		  -ERANGE);
}

/* uidl_ok - the RFC 1939 shape of a UIDL */
static int uidl_ok(const struct str *u)
{
	size_t i;

	if (u->len < 1 || u->len > 70)
		return 0;
	for (i = 0; i < u->len; i++)
		if ((unsigned char)u->s[i] < 0x21 ||
		    (unsigned char)u->s[i] > 0x7e)
			return 0;
	return 1;
}

/* test_uidl - stable across new/ -> cur/ and flag changes, always valid */
static void test_uidl(void)
{
	const char *base = "1700000000.M123P456.mx.example,S=4096";
	struct str a = STR_INIT, b = STR_INIT, c = STR_INIT;
	char longname[200];

	proto_uidl(base, strlen(base), &a);
	CHECK_STR("uidl_plain", a.s, base);
	proto_uidl("1700000000.M123P456.mx.example,S=4096:2,", 40, &b);
	CHECK_STR("uidl_after_move", b.s, a.s);
	proto_uidl("1700000000.M123P456.mx.example,S=4096:2,RS", 42, &b);
	CHECK_STR("uidl_after_flags", b.s, a.s);

	memset(longname, 'a', sizeof longname);
	proto_uidl(longname, 70, &a);
	CHECK_INT("uidl_70_kept", a.len, 70);
	proto_uidl(longname, 71, &a);
	CHECK(tt_name("uidl_71_hashed"), a.len == 33 && a.s[0] == '~' &&
	      uidl_ok(&a));
	proto_uidl(longname, 72, &b);
	CHECK("uidl_long_distinct", !str_eqs(&a, b.s));
	memcpy(longname + 150, ":2,S", 4);
	proto_uidl(longname, 154, &c);
	proto_uidl(longname, 150, &b);
	CHECK_STR("uidl_long_flags", c.s, b.s);

	proto_uidl("a b", 3, &a);
	CHECK("uidl_space_hashed", a.s[0] == '~' && uidl_ok(&a));
	proto_uidl("a\xe9", 2, &a);
	CHECK("uidl_8bit_hashed", a.s[0] == '~' && uidl_ok(&a));
	proto_uidl("~x", 2, &a);
	CHECK("uidl_tilde_hashed", a.len == 33 && uidl_ok(&a));
	proto_uidl(":2,", 3, &a);
	CHECK("uidl_empty_base", a.s[0] == '~' && uidl_ok(&a));
	proto_uidl("a\x7f", 2, &a);
	proto_uidl("a\x7e", 2, &b);
	CHECK("uidl_del_hashed", a.s[0] == '~' && str_eqs(&b, "a~"));
	str_free(&a);
	str_free(&b);
	str_free(&c);
}

/* test_name_size - ,S= and ,W= in a Maildir name */
static void test_name_size(void)
{
	static const struct {
		const char *name;
		char field;
		int rc;
		uint64_t v;
	} cases[] = {
		{"1.M1P1.h,S=123", 'S', 0, 123},
		{"1.M1P1.h,S=123,W=130:2,S", 'W', 0, 130},
		{"1.M1P1.h,S=123,W=130:2,S", 'S', 0, 123},
		{"1.M1P1.h,W=130", 'S', -ENOENT, 0},
		{"1.M1P1.h:2,S=5", 'S', -ENOENT, 0},
		{"1.M1P1.h,S=", 'S', -ENOENT, 0},
		{"1.M1P1.h,S=12x", 'S', -ENOENT, 0},
		{"1.M1P1.h,S=12x,S=7", 'S', 0, 7},
		{"1.M1P1.h,S=99999999999999999999999", 'S', -ENOENT, 0},
		{"S=5", 'S', -ENOENT, 0},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 0;
		int got = maildir_name_size(cases[i].name, strlen(cases[i].name),
					    cases[i].field, &v);

		CHECK_INT(tt_name("name_size_%zu", i), got, cases[i].rc);
		if (got == 0)
			CHECK_U64(tt_name("name_size_%zu_v", i), v, cases[i].v);
	}
}

/* test_addr - listen lines (lib/listen.h) and the plaintext rule */
static void test_addr(void)
{
	static const char *const bad[] = {"", "127.0.0.1", "127.0.0.1:",
					  "127.0.0.1:0", "127.0.0.1:65536",
					  "::1:110", "[::1]110", "[::1:110",
					  "host:110", "1.2.3:110", "[1.2.3.4]:110",
					  "127.0.0.1:11a", ":110"};
	struct sockaddr_storage ss;
	socklen_t len;
	size_t i;
	int t, l, p;

	CHECK_INT("listen_v4", listen_parse("127.0.0.1:2110", &ss, &len), 0);
	CHECK(tt_name("listen_v4_fam"), ss.ss_family == AF_INET &&
	      len == sizeof(struct sockaddr_in) &&
	      ntohs(((struct sockaddr_in *)&ss)->sin_port) == 2110);
	CHECK_INT("listen_v6", listen_parse("[::]:995", &ss, &len), 0);
	CHECK(tt_name("listen_v6_fam"), ss.ss_family == AF_INET6 &&
	      ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 995);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_INT(tt_name("listen_bad_%zu", i),
			  listen_parse(bad[i], &ss, &len), -EINVAL);

	/* SPEC.md step 5: only under TLS or from loopback, unless
	 * pop3plaintext says 1 */
	for (t = 0; t < 2; t++)
		for (l = 0; l < 2; l++)
			for (p = 0; p < 2; p++)
				CHECK_INT(tt_name("plain_ok_tls%d_lo%d_set%d", t,
						  l, p), proto_plain_ok(t, l, p),
					  t || l || p);
}

/* test_natcmp - arrival order of Maildir names */
static void test_natcmp(void)
{
	static const char *const sorted[] = {
		"999999999.M1P1.h", "1700000000.M2P1.h", "1700000000.M10P1.h",
		"1700000000.M10P2.h", "1700000001.M1P1.h", "1700000001.M1P1.h2",
		"a", "b",
	};
	size_t i, j, n = sizeof sorted / sizeof sorted[0];
	int bad = 0;

	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			int c = proto_natcmp(sorted[i], strlen(sorted[i]),
					     sorted[j], strlen(sorted[j]));
			int want = i < j ? -1 : i > j;

			if ((c < 0 ? -1 : c > 0) != want)
				bad++;
		}
	CHECK_INT("natcmp_order", bad, 0);
	CHECK("natcmp_leading_zero", proto_natcmp("a01", 3, "a1", 2) != 0);
}

/* run_xfer - convert whole or byte by byte */
static void run_xfer(const char *in, size_t n, int top, unsigned long lines,
		     int bytewise, struct str *out, uint64_t *octets)
{
	struct xfer x;
	size_t i;

	out->len = 0;
	xfer_init(&x, top, lines);
	if (bytewise) {
		for (i = 0; i < n && !x.done; i++)
			xfer_run(&x, in + i, 1, out);
	} else {
		xfer_run(&x, in, n, out);
	}
	xfer_end(&x, out);
	*octets = x.octets;
}

/* test_xfer - RETR and TOP on the wire: CRLF, dot-stuffing, the header */
static void test_xfer(void)
{
	static const struct {
		const char *in;
		int top;
		unsigned long lines;
		const char *want;
		uint64_t octets;
	} cases[] = {
		{"", 0, 0, ".\r\n", 0},
		{"a\n", 0, 0, "a\r\n.\r\n", 3},
		{"a\r\n", 0, 0, "a\r\n.\r\n", 3},
		{"a", 0, 0, "a\r\n.\r\n", 1},
		{"a\r", 0, 0, "a\r\n.\r\n", 2},
		{"S: x\n\n.\n..x\nb.\n", 0, 0,
		 "S: x\r\n\r\n..\r\n...x\r\nb.\r\n.\r\n", 20},
		{".\r\n", 0, 0, "..\r\n.\r\n", 3},
		{"a\rb\n", 0, 0, "a\rb\r\n.\r\n", 5},
		{"H: 1\nH: 2\n\nb1\nb2\nb3\n", 1, 0, "H: 1\r\nH: 2\r\n\r\n.\r\n",
		 0},
		{"H: 1\nH: 2\n\nb1\nb2\nb3\n", 1, 1,
		 "H: 1\r\nH: 2\r\n\r\nb1\r\n.\r\n", 0},
		{"H: 1\r\n\r\nb1\r\n.b2\r\nb3\r\n", 1, 2,
		 "H: 1\r\n\r\nb1\r\n..b2\r\n.\r\n", 0},
		{"H: 1\nH: 2\n\nb1\n", 1, 99, "H: 1\r\nH: 2\r\n\r\nb1\r\n.\r\n",
		 0},
		{"H: 1\nH: 2\n", 1, 0, "H: 1\r\nH: 2\r\n.\r\n", 0},
		{"H: 1\n\r\nb1\n", 1, 0, "H: 1\r\n\r\n.\r\n", 0},
	};
	struct str a = STR_INIT, b = STR_INIT;
	uint64_t oa = 0, ob = 0;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].in);

		run_xfer(cases[i].in, n, cases[i].top, cases[i].lines, 0, &a,
			 &oa);
		run_xfer(cases[i].in, n, cases[i].top, cases[i].lines, 1, &b,
			 &ob);
		CHECK_MEM(tt_name("xfer_%zu", i), a.s, a.len, cases[i].want,
			  strlen(cases[i].want));
		CHECK_MEM(tt_name("xfer_%zu_bytewise", i), b.s, b.len, a.s,
			  a.len);
		if (!cases[i].top) {
			int cr = 0;

			CHECK_U64(tt_name("xfer_%zu_octets", i), oa,
				  cases[i].octets);
			CHECK_U64(tt_name("xfer_%zu_octets_bytewise", i), ob, oa);
			/* the size LIST announces equals what RETR counts */
			CHECK_U64(tt_name("xfer_%zu_bare_lf", i),
				  n + proto_bare_lf(cases[i].in, n, &cr), oa);
		}
	}
	/* bare LF counting across chunk borders */
	{
		int cr = 0;
		uint64_t k = proto_bare_lf("a\r", 2, &cr);

		k += proto_bare_lf("\nb\n", 3, &cr);
		CHECK_U64("bare_lf_chunks", k, 1);
	}
	str_free(&a);
	str_free(&b);
}

/* test_table - which commands exist in which state (STYLE.md 15) */
static void test_table(void)
{
	static const char *const auth[] = {"CAPA", "USER", "PASS", "AUTH",
					   "STLS", "QUIT"};
	static const char *const trans[] = {"CAPA", "STAT", "LIST", "RETR",
					    "DELE", "NOOP", "RSET", "QUIT",
					    "TOP", "UIDL"};
	static const char *const all[] = {"CAPA", "USER", "PASS", "AUTH",
					  "STLS", "QUIT", "STAT", "LIST",
					  "RETR", "DELE", "NOOP", "RSET",
					  "TOP", "UIDL"};
	size_t i, j;

	for (i = 0; i < sizeof all / sizeof all[0]; i++) {
		int in_auth = 0, in_trans = 0;

		for (j = 0; j < sizeof auth / sizeof auth[0]; j++)
			in_auth |= !strcmp(all[i], auth[j]);
		for (j = 0; j < sizeof trans / sizeof trans[0]; j++)
			in_trans |= !strcmp(all[i], trans[j]);
		CHECK_INT(tt_name("table_auth_%s", all[i]),
			  session_lookup(all[i], ST_AUTH), in_auth ? 1 : -1);
		CHECK_INT(tt_name("table_trans_%s", all[i]),
			  session_lookup(all[i], ST_TRANS), in_trans ? 1 : -1);
	}
	CHECK_INT("table_unknown", session_lookup("APOP", ST_AUTH), 0);
	CHECK_INT("table_lowercase", session_lookup("quit", ST_AUTH), 0);
}

/* put - a file in the scratch Maildir */
static void put(const char *rel, const char *data)
{
	struct str p = STR_INIT;
	int fd;

	str_catf(&p, "%s/md/%s", scratch, rel);
	fd = open(p.s, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)fsx_write_all(fd, data, strlen(data));
		close(fd);
	}
	str_free(&p);
}

/* exists - whether a scratch file is there */
static int exists(const char *rel)
{
	struct str p = STR_INIT;
	struct stat st;
	int r;

	str_catf(&p, "%s/md/%s", scratch, rel);
	r = stat(p.s, &st) == 0;
	str_free(&p);
	return r;
}

/* test_mbox - a Maildir: lock, order, sizes, commit, new/ to cur/ at
 * QUIT */
static void test_mbox(void)
{
	struct mbox mb, mb2;
	struct str p = STR_INIT, data = STR_INIT;
	const char *name;
	size_t len, gone = 9;
	uint64_t v = 0;
	int fd;

	str_catf(&p, "%s/md", scratch);
	fsx_mkdir(p.s, 0700);
	str_cats(&p, "/cur");
	fsx_mkdir(p.s, 0700);
	p.len -= 4;
	str_cats(&p, "/new");
	fsx_mkdir(p.s, 0700);
	p.len -= 4;
	str_cats(&p, "/tmp");
	fsx_mkdir(p.s, 0700);
	put("new/1700000010.M1P1.h", "a\nb\n");
	put("new/1700000002.M1P1.h,S=9,W=11", "S: x\n\nbody");
	put("cur/1700000005.M1P1.h:2,S", "x\r\n");
	put("new/.hidden", "x");
	put("new/1700000020.M1P1.h", "kept\n");
	put("maildirsize", "1000S,10C\n15 3\n");

	CHECK_INT("mbox_open", mbox_open(&mb, scratch, "md"), 0);
	CHECK_INT("mbox_n", mb.n, 4);
	/* nothing moves before QUIT */
	CHECK("mbox_not_moved", !exists("cur/1700000010.M1P1.h:2,") &&
	      exists("new/1700000010.M1P1.h") && exists("new/.hidden"));
	mbox_name(&mb, 0, &name, &len);
	CHECK_MEM("mbox_order_0", name, len, "1700000002.M1P1.h,S=9,W=11",
		  26);
	mbox_name(&mb, 2, &name, &len);
	CHECK_MEM("mbox_order_2", name, len, "1700000010.M1P1.h", 17);
	CHECK_INT("mbox_in_use", mbox_open(&mb2, scratch, "md"),
		  -EWOULDBLOCK);
	mbox_close(&mb2);
	mbox_octets(&mb, 0, &v);
	CHECK_U64("mbox_octets_w", v, 11);
	CHECK_INT("mbox_w_not_read", mb.m[0].fd, -1);

	/* another reader renames a file (new flags): found again */
	{
		struct str a = STR_INIT, b = STR_INIT;

		str_catf(&a, "%s/md/cur/1700000005.M1P1.h:2,S", scratch);
		str_catf(&b, "%s/md/cur/1700000005.M1P1.h:2,RS", scratch);
		rename(a.s, b.s);
		fd = mbox_msgfd(&mb, 1);
		CHECK("mbox_refind", fd >= 0);
		if (fd >= 0)
			close(fd);
		str_free(&a);
		str_free(&b);
	}
	mbox_octets(&mb, 2, &v);
	CHECK_U64("mbox_octets_read", v, 6);
	mbox_octets(&mb, 1, &v);
	CHECK_U64("mbox_octets_crlf", v, 3);
	CHECK_U64("mbox_raw_read", mb.m[2].raw, 4);
	/* one byte more than ,S= asked: the short read ends the file */
	CHECK_INT("mbox_ask_s", mbox_ask(&mb, 0), 10);
	CHECK_INT("mbox_ask_read", mbox_ask(&mb, 2), 5);
	CHECK_INT("mbox_ask_unknown", mbox_ask(&mb, 3), 65536);
	CHECK("mbox_kept", mb.m[2].fd >= 0 && mb.m[1].fd >= 0 && mb.kept == 2);

	/* another process removes a file: the session still has the copy it
	 * counted, once; after that, that message only fails */
	{
		struct str a = STR_INIT;
		const char *bytes;

		str_catf(&a, "%s/md/new/1700000010.M1P1.h", scratch);
		unlink(a.s);
		str_free(&a);
		fd = mbox_msgfd(&mb, 2);
		CHECK("mbox_kept_fd", fd >= 0 && mb.kept == 1);
		CHECK_INT("mbox_read_kept", mbox_read(&mb, fd, 0, 5, &bytes), 4);
		CHECK_MEM("mbox_read_bytes", bytes, 4, "a\nb\n", 4);
		CHECK_INT("mbox_read_off", mbox_read(&mb, fd, 2, 5, &bytes), 2);
		if (fd >= 0)
			close(fd);
	}
	CHECK_INT("mbox_gone", mbox_msgfd(&mb, 2), -ENOENT);

	mb.m[0].flags |= MSG_DELETED;
	mb.m[1].flags |= MSG_DELETED;
	mb.m[2].flags |= MSG_DELETED;
	CHECK_INT("mbox_commit", mbox_commit(&mb, &gone), 0);
	CHECK_INT("mbox_commit_gone", gone, 2);
	CHECK("mbox_kept_moved", exists("cur/1700000020.M1P1.h:2,") &&
	      !exists("new/1700000020.M1P1.h"));
	mbox_close(&mb);
	p.len = 0;
	str_catf(&p, "%s/md/maildirsize", scratch);
	fsx_read_file(p.s, &data, 4096);
	/* the S= size for one, the stat size (3) for the other */
	CHECK_STR("mbox_maildirsize", data.s, "1000S,10C\n15 3\n-12 -2\n");
	CHECK("mbox_files_gone", !exists("cur/1700000005.M1P1.h:2,RS") &&
	      !exists("new/1700000002.M1P1.h,S=9,W=11"));

	CHECK_INT("mbox_reopen", mbox_open(&mb, scratch, "md"), 0);
	CHECK_INT("mbox_kept", mb.n, 1);
	mbox_close(&mb);
	CHECK_INT("mbox_missing", mbox_open(&mb, scratch, "nope"), -ENOENT);
	mbox_close(&mb);
	str_free(&p);
	str_free(&data);
}

/* main - every group of checks in a scratch directory */
int main(void)
{
	if (!mkdtemp(scratch))
		return 1;
	test_parse();
	test_split_num();
	test_uidl();
	test_name_size();
	test_addr();
	test_natcmp();
	test_xfer();
	test_table();
	test_mbox();
	fsx_rmtree(scratch);
	return tt_exit();
}
