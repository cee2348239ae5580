/*
 * NAME
 *	test_dmarc - unit tests of lib/dmarc: the Public Suffix List, the
 *	DMARC record parser, alignment
 *
 * DESCRIPTION
 *	The PSL project's own test vectors (test_psl.txt of the Debian
 *	publicsuffix package) against the system list, the punycode ones
 *	too (the list spells IDN rules in UTF-8, lib/dmarc adds each in
 *	A-labels, lib/idna); RFC 3492's sample strings through
 *	idna_to_ascii(); a small list of our own with
 *	a wildcard, an exception, comments and bad lines; records with
 *	every tag, v= not first, bad p= with and without rua= (RFC 7489
 *	6.6.3), bad pct=, unknown tags, a trailing ';'; the alignment
 *	matrix (relaxed and strict, subdomains both ways, public suffixes,
 *	case). Prints one line per check and exits 1 if any failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "idna.h"
#include "tinytest.h"

#define VECTORS "/usr/share/doc/publicsuffix/examples/test_psl.txt"

/* quoted - the 'text' or null at *P into OUT; 0 for null, 1 text */
static int quoted(const char **p, char *out, size_t cap)
{
	size_t n = 0;

	while (**p == ' ' || **p == ',')
		(*p)++;
	if (!strncmp(*p, "null", 4)) {
		*p += 4;
		return 0;
	}
	if (**p != '\'')
		return -1;
	for ((*p)++; **p && **p != '\'' && n + 1 < cap; (*p)++)
		out[n++] = **p;
	out[n] = 0;
	(*p)++;
	return 1;
}

/* test_vectors - the PSL project's checkPublicSuffix() lines */
static void test_vectors(void)
{
	const struct psl *p;
	char line[1024], in[512], want[512], name[600];
	unsigned run = 0;
	FILE *f = fopen(VECTORS, "r");
	struct str got = STR_INIT;

	CHECK("vectors_file", f != NULL);
	CHECK_INT("psl_default", psl_default(&p), 0);
	if (!f || !p)
		return;
	while (fgets(line, sizeof line, f)) {
		const char *s = line;
		int hi, hw, r;

		if (strncmp(s, "checkPublicSuffix(", 18))
			continue;
		s += 18;
		hi = quoted(&s, in, sizeof in);
		hw = quoted(&s, want, sizeof want);
		if (hi != 1)
			continue;	/* null input */
		r = psl_registrable(p, in, &got);
		snprintf(name, sizeof name, "psl %s", in);
		if (hw == 1)
			CHECK_STR(name, r == 0 ? got.s : "(none)", want);
		else
			CHECK(name, r < 0);
		run++;
	}
	fclose(f);
	str_free(&got);
	CHECK("vectors_run", run >= 60);
}

/* test_own_list - wildcards, exceptions, comments, bad input */
static void test_own_list(void)
{
	static const char list[] =
	    "// a comment\n\ncom\nuk\nco.uk\n*.ck\n!www.ck\t// why\n"
	    "  \nEXAMPLE.TEST extra words\n";
	static const struct { const char *in, *want; } c[] = {
		{"a.b.example.com", "example.com"}, {"com", NULL},
		{"example.co.uk", "example.co.uk"}, {"co.uk", NULL},
		{"x.example.co.uk", "example.co.uk"}, {"b.uk", "b.uk"},
		{"y.ck", NULL}, {"x.y.ck", "x.y.ck"}, {"a.x.y.ck", "x.y.ck"},
		{"www.ck", "www.ck"}, {"a.www.ck", "www.ck"}, {"ck", NULL},
		{"Sub.Example.Test", "sub.example.test"}, {"a.sub.example.test",
					    "sub.example.test"},
		{"other", NULL}, {"a.other", "a.other"},
		{"a..com", NULL}, {"a.com.", NULL}, {".a.com", NULL}, {"", NULL},
	};
	struct psl *p = NULL;
	struct str got = STR_INIT;
	size_t i;

	CHECK_INT("own_parse", psl_parse(list, sizeof list - 1, &p), 0);
	if (!p)
		return;
	for (i = 0; i < sizeof c / sizeof *c; i++) {
		int r = psl_registrable(p, c[i].in, &got);

		if (c[i].want)
			CHECK_STR(c[i].in, r == 0 ? got.s : "(none)", c[i].want);
		else
			CHECK(c[i].in, r < 0);
	}
	CHECK_INT("org_of_suffix", dmarc_org(p, "co.uk", &got), 0);
	CHECK_STR("org_of_suffix_v", got.s, "co.uk");
	CHECK_INT("org_of_sub", dmarc_org(p, "A.B.Example.COM", &got), 0);
	CHECK_STR("org_of_sub_v", got.s, "example.com");
	psl_free(p);
	CHECK_INT("missing_file", psl_load("/nonexistent/psl", &p), -ENOENT);
	str_free(&got);
}

/* rec - parse S, 0 or the error */
static int rec(const char *s, struct dmarc_record *r)
{
	return dmarc_parse(s, strlen(s), r);
}

/* test_parse - the record parser */
static void test_parse(void)
{
	struct dmarc_record r;

	CHECK_INT("full", rec("v=DMARC1; p=reject; sp=quarantine; pct=20; "
			      "adkim=s; aspf=s; rua=mailto:a@b.test; x=y", &r),
		  0);
	CHECK("full_v", r.p == DMARC_P_REJECT && r.has_sp &&
	      r.sp == DMARC_P_QUARANTINE && r.pct == 20 && r.adkim_strict &&
	      r.aspf_strict);
	CHECK_INT("minimal", rec("v=DMARC1;p=quarantine", &r), 0);
	CHECK("minimal_v", r.p == DMARC_P_QUARANTINE && !r.has_sp &&
	      r.pct == 100 && !r.adkim_strict && !r.aspf_strict);
	CHECK_INT("trailing_semicolon", rec(" v = DMARC1 ; p = none ; ", &r),
		  0);
	CHECK("trailing_v", r.p == DMARC_P_NONE);
	CHECK_INT("v_not_first", rec("p=reject; v=DMARC1", &r), -EINVAL);
	CHECK_INT("v_wrong", rec("v=DMARC2; p=reject", &r), -EINVAL);
	CHECK_INT("spf_record", rec("v=spf1 -all", &r), -EINVAL);
	CHECK_INT("empty", rec("", &r), -EINVAL);
	CHECK_INT("no_p_no_rua", rec("v=DMARC1; pct=50", &r), -EINVAL);
	CHECK_INT("bad_p_no_rua", rec("v=DMARC1; p=bounce", &r), -EINVAL);
	CHECK_INT("bad_p_rua", rec("v=DMARC1; p=bounce; rua=mailto:a@b.test",
				   &r), 0);
	CHECK("bad_p_rua_none", r.p == DMARC_P_NONE && r.pct == 100);
	CHECK_INT("bad_sp_rua", rec("v=DMARC1; p=reject; sp=x; rua=m:a", &r),
		  0);
	CHECK("bad_sp_rua_none", r.p == DMARC_P_NONE && !r.has_sp);
	CHECK_INT("pct_bad", rec("v=DMARC1; p=reject; pct=101", &r), 0);
	CHECK("pct_bad_100", r.pct == 100 && r.p == DMARC_P_REJECT);
	CHECK_INT("pct_0", rec("v=DMARC1; p=reject; pct=0", &r), 0);
	CHECK("pct_0_v", r.pct == 0);
	CHECK_INT("pct_junk", rec("v=DMARC1; p=reject; pct=5x", &r), 0);
	CHECK("pct_junk_100", r.pct == 100);
	CHECK_INT("no_equals", rec("v=DMARC1; p=reject; junk", &r), -EINVAL);
	CHECK_INT("case_p", rec("v=DMARC1; p=REJECT", &r), 0);
	CHECK("case_p_v", r.p == DMARC_P_REJECT);
	CHECK_INT("bad_adkim_ignored", rec("v=DMARC1; p=none; adkim=x", &r),
		  0);
	CHECK("bad_adkim_relaxed", !r.adkim_strict);
}

/* test_aligned - the alignment matrix */
static void test_aligned(void)
{
	static const char list[] = "com\nco.uk\nuk\n";
	static const struct {
		const char *a, *b;
		int relaxed, strict;
	} c[] = {
		{"example.com", "example.com", 1, 1},
		{"EXAMPLE.com", "example.COM", 1, 1},
		{"mail.example.com", "example.com", 1, 0},
		{"example.com", "news.example.com", 1, 0},
		{"a.example.com", "b.example.com", 1, 0},
		{"example.com", "example.net", 0, 0},
		{"example.com", "com", 0, 0},
		{"a.example.co.uk", "example.co.uk", 1, 0},
		{"example.co.uk", "other.co.uk", 0, 0},
		{"example.com", "example.com.evil.test", 0, 0},
		{"a..com", "a.com", 0, 0},
	};
	struct psl *p = NULL;
	char name[300];
	size_t i;

	CHECK_INT("aligned_psl", psl_parse(list, sizeof list - 1, &p), 0);
	if (!p)
		return;
	for (i = 0; i < sizeof c / sizeof *c; i++) {
		snprintf(name, sizeof name, "relaxed %s %s", c[i].a, c[i].b);
		CHECK_INT(name, dmarc_aligned(p, c[i].a, c[i].b, 0),
			  c[i].relaxed);
		snprintf(name, sizeof name, "strict %s %s", c[i].a, c[i].b);
		CHECK_INT(name, dmarc_aligned(p, c[i].a, c[i].b, 1),
			  c[i].strict);
	}
	psl_free(p);
}

/* test_idna - RFC 3492 7.1's sample strings (A, B, L, Q, R) as labels,
 * names of several labels, and UTF-8 that is not well-formed */
static void test_idna(void)
{
	static const struct { const char *in, *want; } c[] = {
		{"\u0644\u064A\u0647\u0645\u0627\u0628\u062A\u0643\u0644"
		 "\u0645\u0648\u0634\u0639\u0631\u0628\u064A\u061F",
		 "xn--egbpdaj6bu4bxfgehfvwxn"},
		{"\u4ED6\u4EEC\u4E3A\u4EC0\u4E48\u4E0D\u8BF4\u4E2D\u6587",
		 "xn--ihqwcrb4cv8a8dqg056pqjye"},
		{"3\u5E74B\u7D44\u91D1\u516B\u5148\u751F",
		 "xn--3B-ww4c5e180e575a65lsy2b"},
		{"\u30D1\u30D5\u30A3\u30FCde\u30EB\u30F3\u30D0",
		 "xn--de-jg4avhby1noc0d"},
		{"\u305D\u306E\u30B9\u30D4\u30FC\u30C9\u3067",
		 "xn--d9juau41awczczp"},
		{"www.\u98DF\u72EE.\u516C\u53F8.cn",
		 "www.xn--85x722f.xn--55qx5d.cn"},
		{"plain.example", "plain.example"}, {"", ""},
	};
	static const char *const bad[] = {
		"\xc0\xaf.cn",	/* overlong '/' */
		"\xed\xa0\x80.cn",	/* a surrogate */
		"\xf4\x90\x80\x80",	/* over U+10FFFF */
		"a\xe4\xb8",		/* cut short */
		"\x80",		/* a continuation byte alone */
	};
	struct str out = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof c / sizeof c[0]; i++) {
		char name[64];

		str_trunc(&out, 0);
		snprintf(name, sizeof name, "idna_%zu", i);
		CHECK_INT(name, idna_to_ascii(c[i].in, strlen(c[i].in), &out),
			  0);
		CHECK_STR(name, out.s ? out.s : "", c[i].want);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char name[64];

		str_trunc(&out, 0);
		snprintf(name, sizeof name, "idna_bad_%zu", i);
		CHECK_INT(name, idna_to_ascii(bad[i], strlen(bad[i]), &out),
			  -EINVAL);
	}
	str_free(&out);
}

int main(void)
{
	test_idna();
	test_vectors();
	test_own_list();
	test_parse();
	test_aligned();
	return tt_exit();
}
