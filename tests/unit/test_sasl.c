/*
 * NAME
 *	test_sasl - unit tests of the login rules that mta-smtpd and pop3d
 *	share: lib/b64, lib/sasl and lib/login
 *
 * DESCRIPTION
 *	Base64 against RFC 4648's vectors and what a strict decoder must
 *	refuse; the SASL PLAIN, LOGIN and CRAM-MD5 messages, bad ones
 *	included; CRAM-MD5's digest against RFC 2195's example; login names,
 *	passwd records, and the password and CRAM-MD5 checks against a
 *	passwd table in a scratch root (unknown user, wrong password,
 *	disabled service, a digest made with the dummy context). Prints one
 *	line per check (tests/run.py) and exits 1 if any failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "fsx.h"
#include "login.h"
#include "pw.h"
#include "sasl.h"
#include "tinytest.h"

/* test_b64_rfc - RFC 4648 section 10, both ways */
static void test_b64_rfc(void)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob",
					    "fooba", "foobar"};
	static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v",
					    "Zm9vYg==", "Zm9vYmE=",
					    "Zm9vYmFy"};
	struct str s = STR_INIT;
	size_t i;

	for (i = 0; i < 7; i++) {
		CHECK_INT(tt_name("b64_dec_%zu", i),
			  b64_decode(coded[i], strlen(coded[i]), &s), 0);
		CHECK_MEM(tt_name("b64_dec_%zu_v", i), s.s, s.len, plain[i],
			  strlen(plain[i]));
		CHECK(tt_name("b64_dec_%zu_nul", i), s.s && s.s[s.len] == 0);
		CHECK_INT(tt_name("b64_enc_%zu", i),
			  b64_encode(plain[i], strlen(plain[i]), &s), 0);
		CHECK_MEM(tt_name("b64_enc_%zu_v", i), s.s, s.len, coded[i],
			  strlen(coded[i]));
	}
	CHECK_INT("b64_binary", b64_decode("AHUAcA==", 8, &s), 0);
	CHECK_MEM("b64_binary_v", s.s, s.len, "\0u\0p", 4);
	CHECK_INT("b64_binary_enc", b64_encode("\0\xff\xfe", 3, &s), 0);
	CHECK_STR("b64_binary_enc_v", s.s, "AP/+");
	str_free(&s);
}

/* test_b64_bad - every text that is not the one spelling of its bytes */
static void test_b64_bad(void)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Z===", "Zm9v=", "Zh==", "Zm9=", "Zm 9v",
		"Zm9v\n", "=Zg=", "Zg==Zg==", "Zm-v", "****", "Y=Q=", "====",
		"YR==", "YWK=", "D+/=", "YWJ!", "Zm9v\r\n", "Zm9_",
	};
	struct str s = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_INT(tt_name("b64_bad_%zu", i),
			  b64_decode(bad[i], strlen(bad[i]), &s), -EINVAL);
	CHECK_INT("b64_bad_nul", b64_decode("Zg\0=", 4, &s), -EINVAL);
	/* "" decodes to an allocated empty string (callers memchr it) */
	CHECK_INT("b64_empty", b64_decode("", 0, &s), 0);
	CHECK(tt_name("b64_empty_alloc"), s.s != NULL && s.len == 0);
	str_free(&s);
}

/* test_response - one response line: cancel, empty, strict base64 */
static void test_response(void)
{
	struct str s = STR_INIT;

	CHECK_INT("resp_cancel", sasl_response("*", 1, 0, &s), -ECANCELED);
	CHECK_INT("resp_cancel_initial", sasl_response("*", 1, 1, &s),
		  -ECANCELED);
	CHECK_INT("resp_eq_initial", sasl_response("=", 1, 1, &s), 0);
	CHECK_INT("resp_eq_initial_len", (long long)s.len, 0);
	CHECK_INT("resp_eq_later", sasl_response("=", 1, 0, &s), -EILSEQ);
	CHECK_INT("resp_empty", sasl_response("", 0, 0, &s), 0);
	CHECK_INT("resp_bad", sasl_response("Zg=", 3, 0, &s), -EILSEQ);
	CHECK_INT("resp_ok", sasl_response("AHUAcA==", 8, 1, &s), 0);
	CHECK_MEM("resp_ok_v", s.s, s.len, "\0u\0p", 4);
	CHECK_INT("mech_plain", sasl_mech("plain", 5), SASL_PLAIN);
	CHECK_INT("mech_login", sasl_mech("LOGIN", 5), SASL_LOGIN);
	CHECK_INT("mech_cram", sasl_mech("Cram-Md5", 8), SASL_CRAM);
	CHECK_INT("mech_prefix", sasl_mech("CRAM-MD", 7), 0);
	CHECK_INT("mech_other", sasl_mech("DIGEST-MD5", 10), 0);
	str_free(&s);
}

/* test_plain - RFC 4616 messages, good and bad */
static void test_plain(void)
{
	struct str u = STR_INIT, p = STR_INIT, big = STR_INIT;
	size_t i;

	CHECK_INT("plain_ok", sasl_plain("\0u@d\0pw", 7, &u, &p), 0);
	CHECK_STR("plain_ok_user", u.s, "u@d");
	CHECK_STR("plain_ok_pass", p.s, "pw");
	CHECK_INT("plain_authzid_same",
		  sasl_plain("u@d\0u@d\0pw", 10, &u, &p), 0);
	CHECK_INT("plain_authzid_other",
		  sasl_plain("x@d\0u@d\0pw", 10, &u, &p), -EPERM);
	CHECK_STR("plain_authzid_other_user", u.s, "u@d");
	CHECK_INT("plain_authzid_prefix",
		  sasl_plain("u@\0u@d\0pw", 9, &u, &p), -EPERM);
	CHECK_INT("plain_empty_pass", sasl_plain("\0u@d\0", 5, &u, &p), 0);
	CHECK_STR("plain_empty_pass_v", p.s, "");
	CHECK_INT("plain_one_nul", sasl_plain("u@d\0pw", 6, &u, &p), -EINVAL);
	CHECK_INT("plain_no_nul", sasl_plain("u@d", 3, &u, &p), -EINVAL);
	CHECK_INT("plain_three_nul", sasl_plain("\0u@d\0pw\0x", 9, &u, &p),
		  -EINVAL);
	CHECK_INT("plain_no_user", sasl_plain("\0\0pw", 4, &u, &p), -EINVAL);
	CHECK_INT("plain_empty", sasl_plain("", 0, &u, &p), -EINVAL);
	/* an overlong message is still only bytes: no limit is assumed */
	str_catc(&big, 0);
	for (i = 0; i < 5000; i++)
		str_catc(&big, 'a');
	str_cats(&big, "@d");
	str_catc(&big, 0);
	for (i = 0; i < 5000; i++)
		str_catc(&big, 'p');
	CHECK_INT("plain_overlong", sasl_plain(big.s, big.len, &u, &p), 0);
	CHECK_INT("plain_overlong_user", (long long)u.len, 5002);
	CHECK_INT("plain_overlong_pass", (long long)p.len, 5000);
	str_free(&u);
	str_free(&p);
	str_free(&big);
}

/* exchange - start MECH (with INITIAL unless NULL) and feed LINES;
 * returns the last code */
static int exchange(struct sasl *x, int mech, const char *initial,
		    const char *const *lines)
{
	int r = sasl_start(x, mech, initial, initial ? strlen(initial) : 0,
			   "mx.test");

	while (r == SASL_MORE && *lines) {
		r = sasl_step(x, *lines, strlen(*lines));
		lines++;
	}
	return r;
}

/* test_exchange - whole exchanges of each mechanism */
static void test_exchange(void)
{
	static const char *const none[] = {NULL};
	static const char *const plain[] = {"AHVAZABwdw==", NULL};
	static const char *const cancel[] = {"*", NULL};
	static const char *const login[] = {"dUBk", "cHc=", NULL};
	static const char *const login_nul[] = {"dUBk", "cAB3", NULL};
	static const char *const cram[] = {"dGltIGI5MTM=", NULL};
	struct sasl x = SASL_INIT;
	struct str back = STR_INIT, c2 = STR_INIT;

	CHECK_INT("x_plain_initial", exchange(&x, SASL_PLAIN, "AHVAZABwdw==",
					      none), 0);
	CHECK_STR("x_plain_initial_user", x.user.s, "u@d");
	CHECK_STR("x_plain_initial_pass", x.pass.s, "pw");
	CHECK_INT("x_plain_prompt", exchange(&x, SASL_PLAIN, NULL, none),
		  SASL_MORE);
	CHECK_STR("x_plain_prompt_v", x.prompt.s, "");
	CHECK_INT("x_plain_later", exchange(&x, SASL_PLAIN, NULL, plain), 0);
	CHECK_STR("x_plain_later_pass", x.pass.s, "pw");
	CHECK_INT("x_plain_empty_initial", exchange(&x, SASL_PLAIN, "=", none),
		  -EINVAL);
	CHECK_INT("x_plain_cancel", exchange(&x, SASL_PLAIN, NULL, cancel),
		  -ECANCELED);
	CHECK_INT("x_plain_bad64", exchange(&x, SASL_PLAIN, "####", none),
		  -EILSEQ);
	CHECK_INT("x_login", exchange(&x, SASL_LOGIN, NULL, login), 0);
	CHECK_STR("x_login_user", x.user.s, "u@d");
	CHECK_STR("x_login_pass", x.pass.s, "pw");
	CHECK_INT("x_login_prompt", exchange(&x, SASL_LOGIN, NULL, none),
		  SASL_MORE);
	CHECK_INT("x_login_prompt_v", b64_decode(x.prompt.s, x.prompt.len,
						 &back), 0);
	CHECK_STR("x_login_prompt_user", back.s, "Username:");
	CHECK_INT("x_login_initial", exchange(&x, SASL_LOGIN, "dUBk", none),
		  SASL_MORE);
	CHECK_INT("x_login_initial_v", b64_decode(x.prompt.s, x.prompt.len,
						  &back), 0);
	CHECK_STR("x_login_prompt_pass", back.s, "Password:");
	CHECK_INT("x_login_nul", exchange(&x, SASL_LOGIN, NULL, login_nul),
		  -EPERM);
	CHECK_STR("x_login_nul_user", x.user.s, "?");
	CHECK_INT("x_cram_initial", exchange(&x, SASL_CRAM, "dGlt", none),
		  -EPROTO);
	CHECK_INT("x_cram", exchange(&x, SASL_CRAM, NULL, none), SASL_MORE);
	CHECK_INT("x_cram_prompt", b64_decode(x.prompt.s, x.prompt.len, &back),
		  0);
	CHECK_MEM("x_cram_chal", back.s, back.len, x.chal.s, x.chal.len);
	CHECK(tt_name("x_cram_chal_shape"), x.chal.len > 30 &&
	      x.chal.s[0] == '<' && x.chal.s[25] == '.' &&
	      strstr(x.chal.s, "@mx.test>") &&
	      x.chal.s[x.chal.len - 1] == '>');
	str_copys(&c2, x.chal.s);
	CHECK_INT("x_cram_done", exchange(&x, SASL_CRAM, NULL, cram), 0);
	CHECK_STR("x_cram_user", x.user.s, "tim");
	CHECK_STR("x_cram_digest", x.pass.s, "b913");
	CHECK(tt_name("x_cram_chal_differs"), !str_eqs(&x.chal, c2.s));
	sasl_free(&x);
	str_free(&back);
	str_free(&c2);
}

/* test_cram - RFC 2195 section 2's example, and the response parser */
static void test_cram(void)
{
	static const char chal[] = "<1896.697170952@postoffice.reston.mci.net>";
	struct str ctx = STR_INIT, u = STR_INIT, d = STR_INIT;
	char got[33];

	CHECK_INT("cram_context", pw_cram_context("tanstaaftanstaaf", 16, &ctx),
		  0);
	CHECK_INT("cram_digest", pw_cram_digest(ctx.s, chal, strlen(chal), got),
		  0);
	CHECK_STR("cram_rfc2195", got, "b913a602c7eda7a495b4e6e7334d3890");
	CHECK_INT("cram_parse", sasl_cram("tim b913a602c7eda7a495b4e6e7334d3890",
					  36, &u, &d), 0);
	CHECK_STR("cram_parse_user", u.s, "tim");
	CHECK_STR("cram_parse_digest", d.s, "b913a602c7eda7a495b4e6e7334d3890");
	CHECK_INT("cram_parse_nospace", sasl_cram("timb913", 7, &u, &d),
		  -EINVAL);
	CHECK_INT("cram_parse_nul", sasl_cram("t\0m 12", 6, &u, &d), -EINVAL);
	CHECK_INT("cram_parse_empty", sasl_cram("", 0, &u, &d), -EINVAL);
	str_free(&ctx);
	str_free(&u);
	str_free(&d);
}

/* test_user - login names: @ or %, folded, checked */
static void test_user(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *local, *domain;
	} cases[] = {
		{"u@ex.test", 0, "u", "ex.test"},
		{"First.Last@Ex.TEST", 0, "first.last", "ex.test"},
		{"u%ex.test", 0, "u", "ex.test"},
		{"a%b@ex.test", 0, "a%b", "ex.test"},
		{"u@", -EINVAL, NULL, NULL},
		{"@ex.test", -EINVAL, NULL, NULL},
		{"u", -EINVAL, NULL, NULL},
		{"u@ex..test", -EINVAL, NULL, NULL},
		{"../x@ex.test", -EINVAL, NULL, NULL},
		{"u/x@ex.test", -EINVAL, NULL, NULL},
		{"u@ex/test", -EINVAL, NULL, NULL},
		{"u@@ex.test", -EINVAL, NULL, NULL},
	};
	struct str l = STR_INIT, d = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = login_user(cases[i].in, strlen(cases[i].in), &l, &d);

		CHECK_INT(tt_name("user_%zu", i), got, cases[i].rc);
		if (got == 0 && cases[i].rc == 0) {
			CHECK_STR(tt_name("user_%zu_local", i), l.s,
				  cases[i].local);
			CHECK_STR(tt_name("user_%zu_domain", i), d.s,
				  cases[i].domain);
		}
	}
	str_free(&l);
	str_free(&d);
}

/* test_parse - passwd records as vadmin writes them, and damaged ones */
static void test_parse(void)
{
#define R(lit) lit, sizeof(lit) - 1
	static const struct {
		const char *v;
		size_t n;
		int rc;
	} cases[] = {
		{R("$6$h\0c\0" "3\0domains/d/u/Maildir\0" "5\0" "6"), 0},
		{R("$6$h\0\0" "0\0domains/d/u/Maildir\0" "0\0" "0"), 0},
		{R("$6$h\0c\0" "3\0domains/d/u/Maildir\0" "5"), -EILSEQ},
		{R("$6$h\0c\0" "3\0domains/d/u/Maildir\0" "5\0" "6\0"),
		 -EILSEQ},
		{R("$6$h\0c\0x\0domains/d/u/Maildir\0" "5\0" "6"), -EILSEQ},
		{R("$6$h\0c\0\0domains/d/u/Maildir\0" "5\0" "6"), -EILSEQ},
		{R("$6$h\0c\0" "3\0/etc/u/Maildir\0" "5\0" "6"), -EILSEQ},
		{R("$6$h\0c\0" "3\0domains/d/../Maildir\0" "5\0" "6"),
		 -EILSEQ},
		{R("$6$h\0c\0" "3\0domains/d/./Maildir\0" "5\0" "6"),
		 -EILSEQ},
		{R("$6$h\0c\0" "3\0domains/d/u/Maildir/\0" "5\0" "6"),
		 -EILSEQ},
		{R("$6$h\0c\0" "3\0domains/d/u\nx\0" "5\0" "6"), -EILSEQ},
		{R("$6$h\0c\0" "3\0domains/d/u/Maildir\0-5\0" "6"),
		 -EILSEQ},
		{R("$6$h"), -EILSEQ},
		{R(""), -EILSEQ},
	};
#undef R
	struct login l = LOGIN_INIT;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CHECK_INT(tt_name("parse_%zu", i),
			  login_parse(cases[i].v, cases[i].n, &l), cases[i].rc);
	CHECK_INT("parse_fields", login_parse(cases[0].v, cases[0].n, &l), 0);
	CHECK_STR("parse_hash", l.hash.s, "$6$h");
	CHECK_STR("parse_cram", l.cram.s, "c");
	CHECK_INT("parse_flags", (long long)l.flags, 3);
	CHECK_STR("parse_maildir", l.maildir.s, "domains/d/u/Maildir");
	CHECK_INT("parse_qb", (long long)l.quota.bytes, 5);
	CHECK_INT("parse_qm", (long long)l.quota.msgs, 6);
	login_free(&l);
}

static char root[] = "/tmp/facteur-sasl-XXXXXX";

/* put - KEY -> VAL (a str) into the cdb being written */
static void put(struct cdbw *w, const char *key, const struct str *val)
{
	cdbw_add(w, key, strlen(key), val->s, val->len);
}

/* record - a passwd record as vadmin writes it */
static void record(struct str *v, const char *hash, const char *cram,
		   unsigned flags, const char *local)
{
	str_trunc(v, 0);
	str_cats(v, hash);
	str_catc(v, 0);
	str_cats(v, cram);
	str_catc(v, 0);
	str_catf(v, "%u", flags);
	str_catc(v, 0);
	str_catf(v, "domains/ex.test/%s/Maildir", local);
	str_catc(v, 0);
	str_cats(v, "0");
	str_catc(v, 0);
	str_cats(v, "0");
}

/* make_root - ex.test with tim (both services), nopop (POP3 off),
 * nosmtp (SMTP off), nocram (no CRAM context) and broken (a damaged
 * record), all with RFC 2195's password */
static int make_root(struct str *hash, struct str *ctx)
{
	struct str p = STR_INIT, v = STR_INIT;
	struct cdbw w;

	if (!mkdtemp(root) || pw_hash("tanstaaftanstaaf", "sha512crypt",
				       hash) < 0 ||
	    pw_cram_context("tanstaaftanstaaf", 16, ctx) < 0)
		return -1;
	str_catf(&p, "%s/control/passwd", root);
	fsx_mkdir_p(p.s, 0700);
	str_trunc(&p, 0);
	str_catf(&p, "%s/control/assign.cdb", root);
	str_cats(&v, "ex.test");
	str_catc(&v, 0);
	str_cats(&v, "domains/ex.test");
	str_catc(&v, 0);
	str_cats(&v, "1");
	if (cdbw_start(&w, p.s, 0644) < 0)
		return -1;
	put(&w, "ex.test", &v);
	cdbw_finish(&w);
	acct_path(&p, root, ACCT_PASSWD, "ex.test", 1, 0);
	if (cdbw_start(&w, p.s, 0600) < 0)
		return -1;
	record(&v, hash->s, ctx->s, 0, "tim");
	put(&w, "tim", &v);
	record(&v, hash->s, ctx->s, ACCT_NOPOP, "nopop");
	put(&w, "nopop", &v);
	record(&v, hash->s, ctx->s, ACCT_NOSMTP, "nosmtp");
	put(&w, "nosmtp", &v);
	record(&v, hash->s, "", 0, "nocram");
	put(&w, "nocram", &v);
	str_copys(&v, hash->s);
	put(&w, "broken", &v);
	cdbw_finish(&w);
	str_free(&p);
	str_free(&v);
	return 0;
}

/* try_pass - login_check for user with the RFC 2195 password or another */
static int try_pass(const char *user, const char *pass, unsigned long deny,
		    const char *dummy, struct login *l)
{
	return login_check(root, user, strlen(user), pass, NULL, dummy, deny, l);
}

/* try_cram - login_check of CRAM-MD5 with a digest made from ctx */
static int try_cram(const char *user, const char *ctx, unsigned long deny,
		    struct login *l)
{
	static const char c[] = "<1896.697170952@postoffice.reston.mci.net>";
	struct str chal = STR_INIT;
	char dig[33];
	int r;

	str_copys(&chal, c);
	if (pw_cram_digest(ctx, c, strlen(c), dig) < 0)
		return -999;
	r = login_check(root, user, strlen(user), dig, &chal, NULL, deny, l);
	str_free(&chal);
	return r;
}

/* scheme - control/passwordscheme says TEXT (NULL: no such file) */
static void scheme(const char *text)
{
	struct str p = STR_INIT;

	str_catf(&p, "%s/control/passwordscheme", root);
	if (text)
		fsx_write_atomic(p.s, text, strlen(text), 0644);
	else
		unlink(p.s);
	str_free(&p);
}

/* test_dummy - the dummy hash follows the configured scheme */
static void test_dummy(void)
{
	struct str d = STR_INIT, v = STR_INIT;

	CHECK_INT("dummy_default", login_dummy(root, &d, &v), 0);
	CHECK(tt_name("dummy_default_y"), !strncmp(d.s, "$y$", 3));
	scheme("sha512crypt\n");
	CHECK_INT("dummy_sha512", login_dummy(root, &d, &v), 0);
	CHECK(tt_name("dummy_sha512_6"), !strncmp(d.s, "$6$", 3));
	/* a decoy: a hash of the scheme's shape that no password matches */
	CHECK_INT("dummy_usable", pw_hash_ok(d.s), 0);
	CHECK_INT("dummy_matches_nothing", pw_check("", d.s), -EACCES);
	CHECK_INT("dummy_matches_nothing2",
		  pw_check("facteur-no-such-user", d.s), -EACCES);
	scheme("md5\n");
	CHECK_INT("dummy_unknown", login_dummy(root, &d, &v), -EINVAL);
	CHECK_STR("dummy_unknown_name", v.s, "md5");
	CHECK(tt_name("dummy_unknown_y"), !strncmp(d.s, "$y$", 3));
	scheme(NULL);
	str_free(&d);
	str_free(&v);
}

/* test_check - the login checks of both services against one table */
static void test_check(void)
{
	static const char dummy_cram[] = "0123456789abcdef0123456789abcdef"
					 "0123456789abcdef0123456789abcdef";
	struct str hash = STR_INIT, ctx = STR_INIT, other = STR_INIT,
		   dummy = STR_INIT;
	struct login l = LOGIN_INIT;
	const char *pw = "tanstaaftanstaaf";
	struct str chal = STR_INIT;

	if (make_root(&hash, &ctx) < 0 || pw_hash("x", "sha512crypt",
						  &dummy) < 0 ||
	    pw_cram_context("wrong", 5, &other) < 0) {
		tt_check(0, "check_setup", "cannot make %s", root);
		return;
	}
	CHECK_INT("check_ok", try_pass("tim@ex.test", pw, ACCT_NOPOP,
				       dummy.s, &l), 0);
	CHECK_STR("check_ok_addr", l.addr.s, "tim@ex.test");
	CHECK_STR("check_ok_maildir", l.maildir.s, "domains/ex.test/tim/Maildir");
	CHECK_INT("check_folded", try_pass("TIM%Ex.Test", pw, ACCT_NOPOP,
					   dummy.s, &l), 0);
	CHECK_INT("check_wrong", try_pass("tim@ex.test", "x", ACCT_NOPOP,
					  dummy.s, &l), -EACCES);
	CHECK_INT("check_wrong_addr", (long long)l.addr.len, 0);
	CHECK_INT("check_unknown", try_pass("bob@ex.test", pw, ACCT_NOPOP,
					    dummy.s, &l), -EACCES);
	CHECK_INT("check_unknown_domain", try_pass("tim@no.test", pw,
						   ACCT_NOPOP, dummy.s, &l),
		  -EACCES);
	CHECK_INT("check_bad_name", try_pass("tim", pw, ACCT_NOPOP, dummy.s,
					     &l), -EACCES);
	/* the dummy's own password logs nobody in */
	CHECK_INT("check_dummy_pw", try_pass("bob@ex.test", "x", ACCT_NOPOP,
					     dummy.s, &l), -EACCES);
	CHECK_INT("check_nopop_pop", try_pass("nopop@ex.test", pw, ACCT_NOPOP,
					      dummy.s, &l), -EPERM);
	CHECK_INT("check_nopop_wrong", try_pass("nopop@ex.test", "x",
						ACCT_NOPOP, dummy.s, &l),
		  -EACCES);
	CHECK_INT("check_nopop_smtp", try_pass("nopop@ex.test", pw,
					       ACCT_NOSMTP, dummy.s, &l), 0);
	CHECK_INT("check_nosmtp_smtp", try_pass("nosmtp@ex.test", pw,
						ACCT_NOSMTP, dummy.s, &l),
		  -EPERM);
	CHECK_INT("check_nosmtp_pop", try_pass("nosmtp@ex.test", pw,
					       ACCT_NOPOP, dummy.s, &l), 0);
	CHECK_INT("check_broken", try_pass("broken@ex.test", pw, ACCT_NOPOP,
					   dummy.s, &l), -EILSEQ);

	CHECK_INT("cram_ok", try_cram("tim@ex.test", ctx.s, ACCT_NOPOP, &l), 0);
	CHECK_STR("cram_ok_addr", l.addr.s, "tim@ex.test");
	CHECK_INT("cram_wrong", try_cram("tim@ex.test", other.s, ACCT_NOPOP,
					 &l), -EACCES);
	CHECK_INT("cram_wrong_addr", (long long)l.addr.len, 0);
	CHECK_INT("cram_unknown", try_cram("bob@ex.test", ctx.s, ACCT_NOPOP,
					   &l), -EACCES);
	/* a digest made with the fixed context of unknown users */
	CHECK_INT("cram_unknown_dummy", try_cram("bob@ex.test", dummy_cram,
						 ACCT_NOPOP, &l), -EACCES);
	CHECK_INT("cram_nocram_dummy", try_cram("nocram@ex.test", dummy_cram,
						ACCT_NOPOP, &l), -EACCES);
	CHECK_INT("cram_nocram", try_cram("nocram@ex.test", ctx.s, ACCT_NOPOP,
					  &l), -EACCES);
	CHECK_INT("cram_nopop", try_cram("nopop@ex.test", ctx.s, ACCT_NOPOP,
					 &l), -EPERM);
	CHECK_INT("cram_nosmtp", try_cram("nosmtp@ex.test", ctx.s, ACCT_NOSMTP,
					  &l), -EPERM);
	CHECK_INT("cram_broken", try_cram("broken@ex.test", ctx.s, ACCT_NOPOP,
					  &l), -EILSEQ);
	str_copys(&chal, "<1896.697170952@postoffice.reston.mci.net>");
	CHECK_INT("cram_short", login_check(root, "tim@ex.test", 11, "b913a602c7eda7a495b4e6e7334d389",
					   &chal, NULL, ACCT_NOPOP, &l), -EACCES);
	CHECK_INT("cram_upper", login_check(root, "tim@ex.test", 11, "B913A602C7EDA7A495B4E6E7334D3890",
					   &chal, NULL, ACCT_NOPOP, &l), -EACCES);
	CHECK_INT("cram_rfc", login_check(root, "tim@ex.test", 11, "b913a602c7eda7a495b4e6e7334d3890",
					 &chal, NULL, ACCT_NOPOP, &l), 0);
	test_dummy();
	login_free(&l);
	str_free(&hash);
	str_free(&ctx);
	str_free(&other);
	str_free(&dummy);
	str_free(&chal);
	(void)fsx_rmtree(root);
}

int main(void)
{
	test_b64_rfc();
	test_b64_bad();
	test_response();
	test_plain();
	test_exchange();
	test_cram();
	test_user();
	test_parse();
	test_check();
	return tt_exit();
}
