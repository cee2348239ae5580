/*
 * test_spf - lib/spf's record parser and macro expander (RFC 7208 4.6,
 * 5, 7); evaluation against DNS is tests/integration/test_spf.py.
 */
#include <errno.h>
#include <string.h>

#include "spf.h"
#include "tinytest.h"

static const struct {
	const char *rec;
	int want;		/* 0 or -EINVAL */
	size_t want_n;		/* terms when 0 */
} parse_cases[] = {
	{"v=spf1", 0, 0},
	{"V=SpF1 -all", 0, 1},
	{"v=spf1  a  -all", 0, 2},
	{"v=spf1 ", 0, 0},
	{"v=spf10", -EINVAL, 0},
	{"spf1 -all", -EINVAL, 0},
	{"v=spf1 +a ~mx ?ptr -include:ex.com exists:%{i}.x.org -all", 0, 6},
	{"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all", 0, 3},
	{"v=spf1 ip4:192.0.2.0/33", -EINVAL, 0},
	{"v=spf1 ip4:192.0.2.0/024", -EINVAL, 0},
	{"v=spf1 ip4:192.0.2", -EINVAL, 0},
	{"v=spf1 ip6:2001:db8::/129", -EINVAL, 0},
	{"v=spf1 ip4", -EINVAL, 0},
	{"v=spf1 a/24 mx//64 a:ex.com/24//64 mx:ex.com//0", 0, 4},
	{"v=spf1 a/33", -EINVAL, 0},
	{"v=spf1 a:foo-bar -all", -EINVAL, 0},	/* no toplabel */
	{"v=spf1 a:ex.123", -EINVAL, 0},	/* numeric toplabel */
	{"v=spf1 a:ex.com. -all", 0, 2},
	{"v=spf1 all.", -EINVAL, 0},
	{"v=spf1 all:ex.com", -EINVAL, 0},
	{"v=spf1 include", -EINVAL, 0},
	{"v=spf1 foo", -EINVAL, 0},
	{"v=spf1 -all moo", -EINVAL, 0},		/* an error after all */
	{"v=spf1 redirect=ex.com", 0, 1},
	{"v=spf1 redirect=ex.com redirect=ex.org", -EINVAL, 0},
	{"v=spf1 exp=a.ex.com exp=b.ex.com", -EINVAL, 0},
	{"v=spf1 redirect:ex.com", -EINVAL, 0},
	{"v=spf1 moo.cow-far_out=man:dog/cat -all", 0, 2},
	{"v=spf1 moo.cow/far_out=man:dog/cat", -EINVAL, 0},
	{"v=spf1 1moo=x", -EINVAL, 0},
	{"v=spf1 a:%{d}", 0, 1},
	{"v=spf1 a:%{c}.ex.com", -EINVAL, 0},	/* c only in exp */
	{"v=spf1 exists:%{i", -EINVAL, 0},
	{"v=spf1 a:ex.com\r -all", -EINVAL, 0},
	{"v=spf1 a:\xef\xbb\xbf" "ex.com", -EINVAL, 0},
	{"v=spf1 \x96" "all", -EINVAL, 0},
};

/* test_parse - syntax, the terms counted */
static void test_parse(void)
{
	size_t i;

	for (i = 0; i < sizeof parse_cases / sizeof *parse_cases; i++) {
		struct spf_record rec;
		const char *why = NULL;
		int got = spf_parse(parse_cases[i].rec,
				    strlen(parse_cases[i].rec), &rec, &why);

		tt_check(got == parse_cases[i].want &&
			 (got < 0 || rec.n == parse_cases[i].want_n),
			 tt_name("parse_%zu", i), "%s: got %d (%zu terms, %s)",
			 parse_cases[i].rec, got, got ? 0 : rec.n,
			 why ? why : "-");
		if (got == 0)
			spf_record_free(&rec);
	}
}

/* test_terms - what the parser keeps of each term */
static void test_terms(void)
{
	static const char r[] =
		"v=spf1 -a:ex.com/24//64 ~mx//48 ip4:192.0.2.1 redirect=x.org";
	struct spf_record rec;
	const char *why;
	int ok = spf_parse(r, strlen(r), &rec, &why) == 0 && rec.n == 4;

	ok = ok && rec.t[0].kind == SPF_A && rec.t[0].qual == '-' &&
	     rec.t[0].arglen == 6 && !memcmp(rec.t[0].arg, "ex.com", 6) &&
	     rec.t[0].cidr4 == 24 && rec.t[0].cidr6 == 64;
	ok = ok && rec.t[1].kind == SPF_MX && rec.t[1].qual == '~' &&
	     !rec.t[1].arg && rec.t[1].cidr4 == 32 && rec.t[1].cidr6 == 48;
	ok = ok && rec.t[2].kind == SPF_IP4 && rec.t[2].qual == '+' &&
	     rec.t[2].net[3] == 1 && rec.t[2].cidr4 == 32;
	ok = ok && rec.redirect == &rec.t[3] && !rec.exp;
	tt_check(ok, "terms", "terms of %s", r);
	if (ok || rec.t)
		spf_record_free(&rec);
}

static const struct {
	const char *spec, *want;
} macro_cases[] = {	/* RFC 7208 7.4 */
	{"%{s}", "strong-bad@email.example.com"},
	{"%{o}", "email.example.com"},
	{"%{d}", "email.example.com"},
	{"%{d4}", "email.example.com"},
	{"%{d3}", "email.example.com"},
	{"%{d2}", "example.com"},
	{"%{d1}", "com"},
	{"%{dr}", "com.example.email"},
	{"%{d2r}", "example.email"},
	{"%{l}", "strong-bad"},
	{"%{l-}", "strong.bad"},
	{"%{lr}", "strong-bad"},
	{"%{lr-}", "bad.strong"},
	{"%{l1r-}", "strong"},
	{"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
	{"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
	{"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
	 "3.2.0.192.in-addr.strong.lp._spf.example.com"},
	{"%{d2}.trusted-domains.example.net",
	 "example.com.trusted-domains.example.net"},
	{"%{S}", "strong-bad%40email.example.com"},
	{"%%%_%-", "% %20"},
	{"%{h}.%{p}", "mx.example.org.unknown"},
	{"%{d999999999999}", "email.example.com"},
};

/* test_macros - the examples of RFC 7208 7.4 */
static void test_macros(void)
{
	struct spf_env env = {"strong-bad@email.example.com",
			      "mx.example.org", {0}, 0, NULL};
	struct str out = STR_INIT;
	size_t i;

	spf_env_ip(&env, "192.0.2.3");
	for (i = 0; i < sizeof macro_cases / sizeof *macro_cases; i++) {
		const char *s = macro_cases[i].spec;
		int r = spf_expand(&env, "email.example.com", s, strlen(s), 0,
				   &out);

		tt_check(r == 0 && str_eqs(&out, macro_cases[i].want),
			 tt_name("macro_%zu", i), "%s: %d %s", s, r,
			 out.s ? out.s : "");
	}
	spf_env_ip(&env, "2001:db8::cb01");
	spf_expand(&env, "email.example.com", "%{ir}.%{v}._spf.%{d2}", 21, 0,
		   &out);
	tt_check(str_eqs(&out, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
			 "0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"),
		 "macro_ip6", "%s", out.s);
	spf_env_ip(&env, "::ffff:192.0.2.3");
	spf_expand(&env, "x.org", "%{i}", 4, 0, &out);
	tt_check(str_eqs(&out, "192.0.2.3"), "macro_mapped", "%s", out.s);
	str_free(&out);
}

/* test_macro_errors - bad syntax, c only in exp, the size bound */
static void test_macro_errors(void)
{
	static const char *const bad[] = {
		"%{d0}", "%{c}", "%", "%{x}", "%{d", "%{d2r-", "a b", "%x",
	};
	struct spf_env env = {"a@b.example", "h.example", {0}, 0, NULL};
	struct str out = STR_INIT, big = STR_INIT;
	size_t i;
	int r;

	spf_env_ip(&env, "192.0.2.3");
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		r = spf_expand(&env, "b.example", bad[i], strlen(bad[i]), 0,
			       &out);
		tt_check(r == -EINVAL, tt_name("macro_bad_%zu", i), "%s: %d",
			 bad[i], r);
	}
	r = spf_expand(&env, "b.example", "%{c}", 4, 1, &out);
	tt_check(r == 0 && str_eqs(&out, "192.0.2.3"), "macro_exp_c", "%d", r);
	for (i = 0; i < 400; i++)
		str_cats(&big, "%{s}");
	r = spf_expand(&env, "b.example", big.s, big.len, 0, &out);
	tt_check(r == -EMSGSIZE, "macro_size_bound", "%d (%zu bytes)", r,
		 out.len);
	tt_check(spf_env_ip(&env, "192.0.2") == -EINVAL, "bad_ip", "-");
	str_free(&out);
	str_free(&big);
}

int main(void)
{
	test_parse();
	test_terms();
	test_macros();
	test_macro_errors();
	tt_check(spf_is_record("v=spf1", 6) && !spf_is_record("v=spf1x", 7) &&
		 spf_is_record("V=SPF1 a", 8), "is_record", "-");
	tt_check(!strcmp(spf_res_name(SPF_SOFTFAIL), "softfail") &&
		 !strcmp(spf_res_name(SPF_TEMPERROR), "temperror"),
		 "res_name", "-");
	return tt_exit();
}
