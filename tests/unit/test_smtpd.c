/*
 * test_smtpd - case tables for mta-smtpd's parsers, linked without main():
 * addr_parse() (the <address> of MAIL and RCPT, with the relay tricks it
 * must refuse as syntax), the strict base64 of AUTH, the per-address AUTH
 * failure table, and the DNSBL question rbl_name() builds (RFC 5782).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "smtpd.h"
#include "tinytest.h"

struct addr_case {
	const char *in;
	int null_ok;
	int want_r;
	const char *want_addr;
	const char *want_rest;
};

static const struct addr_case addr_cases[] = {
	{"<bob@Example.TEST>", 0, 0, "bob@example.test", ""},
	{" <Bob@example.test> SIZE=10", 0, 0, "Bob@example.test", " SIZE=10"},
	{"<>", 1, 0, "", ""},
	{"<>", 0, -EINVAL, NULL, NULL},
	{"<postmaster>", 0, 0, "postmaster", ""},
	{"<x@example.test.>", 0, 0, "x@example.test", ""},
	{"<x@[192.0.2.1]>", 0, 0, "x@[192.0.2.1]", ""},
	{"<x@[IPv6:2001:db8::1]>", 0, 0, "x@[IPv6:2001:db8::1]", ""},
	{"<x@[300.1.1.1]>", 0, -EINVAL, NULL, NULL},
	{"<x@[example.test]>", 0, -EINVAL, NULL, NULL},
	{"bob@example.test", 0, -EINVAL, NULL, NULL},
	{"<bob@example.test", 0, -EINVAL, NULL, NULL},
	{"<\"x@other\"@example.test>", 0, -EINVAL, NULL, NULL},
	{"<@example.test:x@other.org>", 0, -EINVAL, NULL, NULL},
	{"<x@other.org@example.test>", 0, -EINVAL, NULL, NULL},
	{"<x y@example.test>", 0, -EINVAL, NULL, NULL},
	{"<x\\@y@example.test>", 0, -EINVAL, NULL, NULL},
	{"<.x@example.test>", 0, -EINVAL, NULL, NULL},
	{"<x.@example.test>", 0, -EINVAL, NULL, NULL},
	{"<x..y@example.test>", 0, -EINVAL, NULL, NULL},
	{"<x@example..test>", 0, -EINVAL, NULL, NULL},
	{"<x@-example.test>", 0, -EINVAL, NULL, NULL},
	{"<@example.test>", 0, -EINVAL, NULL, NULL},
	{"<x@>", 0, -EINVAL, NULL, NULL},
	{"<x%other.org@example.test>", 0, 0, "x%other.org@example.test", ""},
	{"<"
	 "a234567890123456789012345678901234567890123456789012345678901234"
	 "@example.test>", 0, 0,
	 "a234567890123456789012345678901234567890123456789012345678901234"
	 "@example.test", ""},
	{"<"
	 "a2345678901234567890123456789012345678901234567890123456789012345"
	 "@example.test>", 0, -EINVAL, NULL, NULL},
};

/* test_addr - every case of addr_cases */
static void test_addr(void)
{
	size_t i;

	for (i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
		const struct addr_case *c = &addr_cases[i];
		struct str got_addr = STR_INIT;
		const char *got_rest = NULL;
		int got_r = addr_parse(c->in, &got_addr, &got_rest, c->null_ok);

		if (c->want_r < 0)
			tt_check(got_r == c->want_r, tt_name("addr_%zu", i),
				 "%s: got %d, want %d", c->in, got_r,
				 c->want_r);
		else
			tt_check(got_r == 0 && !strcmp(got_addr.s ? got_addr.s
						       : "", c->want_addr) &&
				 !strcmp(got_rest, c->want_rest),
				 tt_name("addr_%zu", i),
				 "%s: got %d '%s' rest '%s', want '%s' rest '%s'",
				 c->in, got_r, got_addr.s ? got_addr.s : "",
				 got_rest ? got_rest : "(null)", c->want_addr,
				 c->want_rest);
		str_free(&got_addr);
	}
}

struct rbl_case {
	const char *ip, *zone;
	int want_r;
	const char *want;
};

static const struct rbl_case rbl_cases[] = {
	{"192.0.2.99", "bl.test", 0, "99.2.0.192.bl.test"},
	{"127.0.0.2", "zen.example.org.", 0, "2.0.0.127.zen.example.org"},
	{"2001:db8:1:2:3:4:567:89ab", "bl.test", 0,
	 "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
	 ".bl.test"},
	{"::1", "bl.test", 0,
	 "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
	 ".bl.test"},
	{"2001:DB8::FF", "v6.Bl-1.test", 0,
	 "f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	 ".v6.Bl-1.test"},
	{"::ffff:198.51.100.7", "bl.test", 0, "7.100.51.198.bl.test"},
	{"192.0.2.300", "bl.test", -EINVAL, NULL},
	{"example.org", "bl.test", -EINVAL, NULL},
	{"192.0.2.1", "", -EINVAL, NULL},
	{"192.0.2.1", ".bl.test", -EINVAL, NULL},
	{"192.0.2.1", "bl..test", -EINVAL, NULL},
	{"192.0.2.1", "bl test", -EINVAL, NULL},
	{"192.0.2.1", "bl.test\r\n250 ok", -EINVAL, NULL},
	{"192.0.2.1", "-bl.test", -EINVAL, NULL},
	{"192.0.2.1",
	 "a234567890123456789012345678901234567890123456789012345678901234"
	 ".test", -EINVAL, NULL},
};

/* test_rbl - the reversed address in each zone, and what is refused */
static void test_rbl(void)
{
	size_t i;

	for (i = 0; i < sizeof rbl_cases / sizeof rbl_cases[0]; i++) {
		const struct rbl_case *c = &rbl_cases[i];
		struct str got = STR_INIT;
		int got_r = rbl_name(c->ip, c->zone, &got);

		if (c->want_r < 0)
			tt_check(got_r == c->want_r, tt_name("rbl_%zu", i),
				 "%s %s: got %d", c->ip, c->zone, got_r);
		else
			tt_check(got_r == 0 && got.s && !strcmp(got.s, c->want),
				 tt_name("rbl_%zu", i), "%s %s: got %d %s",
				 c->ip, c->zone, got_r, got.s ? got.s : "");
		str_free(&got);
	}
}

int main(void)
{
	test_addr();
	test_rbl();
	return tt_failed ? 1 : 0;
}
