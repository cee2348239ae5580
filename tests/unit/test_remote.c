/*
 * test_remote - case tables for mta-remote's parsers, linked without
 * main(): smtproutes (host[:port] syntax and which line wins), the SMTP
 * reply parser (multi-line replies, EHLO keywords, the limits), the DATA
 * writer (CR LF, dot-stuffing, the final dot; whole and byte at a time),
 * the result-line cleaner, lib/dns's resolvers lines and name check, and
 * the loop check (self.c): every spelling of this host, on our ports only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "remote.h"
#include "tinytest.h"

struct hp_case {
	const char *in;
	int want_r;
	const char *want_host;
	unsigned long want_port;
	int want_literal;
};

static const struct hp_case hp_cases[] = {
	{"", 0, "", 0, 0},
	{"mx.example.test", 0, "mx.example.test", 0, 0},
	{"mx.example.test:2525", 0, "mx.example.test", 2525, 0},
	{"192.0.2.1", 0, "192.0.2.1", 0, 1},
	{"192.0.2.1:26", 0, "192.0.2.1", 26, 1},
	{"[192.0.2.1]", 0, "192.0.2.1", 0, 1},
	{"[192.0.2.1]:587", 0, "192.0.2.1", 587, 1},
	{"[::1]:2525", 0, "::1", 2525, 1},
	{"[IPv6:2001:db8::1]", 0, "2001:db8::1", 0, 1},
	{":25", 0, "", 25, 0},
	{"mx:0", -EINVAL, NULL, 0, 0},
	{"mx:65536", -EINVAL, NULL, 0, 0},
	{"mx:", -EINVAL, NULL, 0, 0},
	{"mx:25x", -EINVAL, NULL, 0, 0},
	{"[192.0.2.1", -EINVAL, NULL, 0, 0},
	{"[192.0.2.1]x", -EINVAL, NULL, 0, 0},
	{"[mx.example.test]", -EINVAL, NULL, 0, 0},
	{"2001:db8::1", -EINVAL, NULL, 0, 0},
	{"bad host", -EINVAL, NULL, 0, 0},
	{"a..b", -EINVAL, NULL, 0, 0},
};

/* test_hostport - the HOST[:PORT] half of a line */
static void test_hostport(void)
{
	size_t i;

	for (i = 0; i < sizeof hp_cases / sizeof hp_cases[0]; i++) {
		const struct hp_case *c = &hp_cases[i];
		struct hostport hp = {STR_INIT, 0, 0};
		int got_r = route_hostport(c->in, strlen(c->in), &hp);

		if (c->want_r < 0)
			tt_check(got_r == c->want_r, tt_name("hostport_%zu", i),
				 "\"%s\": got %d, want %d", c->in, got_r,
				 c->want_r);
		else
			tt_check(got_r == 0 &&
				 !strcmp(str_cstr(&hp.host), c->want_host) &&
				 hp.port == c->want_port &&
				 hp.literal == c->want_literal,
				 tt_name("hostport_%zu", i),
				 "\"%s\": got %d host \"%s\" port %lu lit %d",
				 c->in, got_r, str_cstr(&hp.host), hp.port,
				 hp.literal);
		str_free(&hp.host);
	}
}

/* lines - "a\nb\n" as ctl_get_lines gives it: NUL-separated, counted */
static char *lines(const char *text, size_t *n)
{
	char *s = strdup(text), *p;

	*n = 0;
	for (p = s; p && *p; p++)
		if (*p == '\n') {
			*p = 0;
			(*n)++;
		}
	return s;
}

struct route_case {
	const char *file;
	const char *domain;
	int want_r;
	int want_found;
	int want_mx;
	const char *want_host;
	unsigned long want_port;
	size_t want_line;	/* the matching or the bad line */
};

static const char routes[] =
	".example.test:suffix.example.test\n"
	"example.test:[192.0.2.1]:2525\n"
	".deep.example.test:deep.example.test\n"
	"example.test:second.example.test\n"
	"mx.test:\n"
	":smarthost.test:26\n";

static const struct route_case route_cases[] = {
	{routes, "example.test", 0, 1, 0, "192.0.2.1", 2525, 2},
	{routes, "EXAMPLE.Test", 0, 1, 0, "192.0.2.1", 2525, 2},
	{routes, "a.example.test", 0, 1, 0, "suffix.example.test", 0, 1},
	{routes, "a.deep.example.test", 0, 1, 0, "deep.example.test", 0, 3},
	{routes, "deep.example.test", 0, 1, 0, "suffix.example.test", 0, 1},
	{routes, "mx.test", 0, 1, 1, "", 0, 5},
	{routes, "other.org", 0, 1, 0, "smarthost.test", 26, 6},
	{routes, "xexample.test", 0, 1, 0, "smarthost.test", 26, 6},
	{"a.test:[192.0.2.1]\n", "b.test", 0, 0, 0, "", 0, 0},
	{"", "b.test", 0, 0, 0, "", 0, 0},
	{"a.test:[192.0.2.1]\nno colon\n", "a.test", -EINVAL, 0, 0, NULL, 0, 2},
	{"a.test:x:99999\n", "b.test", -EINVAL, 0, 0, NULL, 0, 1},
	{"bad key:x\n", "b.test", -EINVAL, 0, 0, NULL, 0, 1},
	{".:x\n", "b.test", -EINVAL, 0, 0, NULL, 0, 1},
	{".bad key:x\n", "b.test", -EINVAL, 0, 0, NULL, 0, 1},
};

/* test_route - which line wins, and malformed files */
static void test_route(void)
{
	size_t i;

	for (i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++) {
		const struct route_case *c = &route_cases[i];
		struct route rt = {0, 0, {STR_INIT, 0, 0}, 0};
		size_t n, bad = 0;
		char *l = lines(c->file, &n);
		int got_r = route_lookup(l, n, c->domain, &rt, &bad);

		if (c->want_r < 0)
			tt_check(got_r == c->want_r && bad == c->want_line,
				 tt_name("route_%zu", i), "%s: got %d line %zu",
				 c->domain, got_r, bad);
		else
			tt_check(got_r == 0 && rt.found == c->want_found &&
				 rt.use_mx == c->want_mx &&
				 !strcmp(str_cstr(&rt.hp.host), c->want_host) &&
				 rt.hp.port == c->want_port &&
				 rt.line == c->want_line,
				 tt_name("route_%zu", i),
				 "%s: got %d found %d mx %d host \"%s\" port %lu "
				 "line %zu", c->domain, got_r, rt.found,
				 rt.use_mx, str_cstr(&rt.hp.host), rt.hp.port,
				 rt.line);
		route_free(&rt);
		free(l);
	}
}

struct reply_case {
	const char *lines;	/* '\n' between reply lines */
	int want_r;		/* of the last line fed */
	int want_code;
	unsigned want_ext;
	const char *want_text;
};

static const struct reply_case reply_cases[] = {
	{"250 ok", 1, 250, 0, "250 ok"},
	{"220", 1, 220, 0, "220"},
	{"250-mx.example\n250-PIPELINING\n250-SIZE 1000\n250-STARTTLS\n"
	 "250-8bitmime\n250 SMTPUTF8", 1, 250,
	 EXT_PIPELINING | EXT_SIZE | EXT_STARTTLS | EXT_8BITMIME | EXT_SMTPUTF8,
	 NULL},
	{"250-mx.example\n250-PIPELININGX\n250 SIZEABLE", 1, 250, 0, NULL},
	{"250-mx.example\n250 AUTH PLAIN", 1, 250, 0,
	 "250-mx.example / 250 AUTH PLAIN"},
	{"550-5.1.1 no\n550 5.1.1 such user", 1, 550, 0,
	 "550-5.1.1 no / 550 5.1.1 such user"},
	{"250-first", 0, 250, 0, "250-first"},
	{"25", -EPROTO, 0, 0, NULL},
	{"2500 ok", -EPROTO, 0, 0, NULL},
	{"abc ok", -EPROTO, 0, 0, NULL},
	{"650 ok", -EPROTO, 0, 0, NULL},
	{"150 ok", -EPROTO, 0, 0, NULL},
	{"250-a\n550 b", -EPROTO, 0, 0, NULL},
};

/* feed_all - every line of a case; the result of the last */
static int feed_all(struct reply *rp, const char *text)
{
	int r = 0;

	while (r >= 0) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);

		r = reply_feed(rp, text, len);
		if (!nl)
			break;
		text = nl + 1;
	}
	return r;
}

/* test_reply - reply lines, keywords and the limits */
static void test_reply(void)
{
	struct reply rp = {0};
	struct str big = STR_INIT;
	size_t i;
	int r = 0;

	for (i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
		const struct reply_case *c = &reply_cases[i];
		int got_r;

		reply_reset(&rp, 1);
		got_r = feed_all(&rp, c->lines);
		if (c->want_r < 0)
			tt_check(got_r == c->want_r, tt_name("reply_%zu", i),
				 "got %d, want %d", got_r, c->want_r);
		else
			tt_check(got_r == c->want_r && rp.code == c->want_code &&
				 rp.ext == c->want_ext &&
				 (!c->want_text ||
				  !strcmp(str_cstr(&rp.text), c->want_text)),
				 tt_name("reply_%zu", i),
				 "got %d code %d ext %u text \"%s\"", got_r,
				 rp.code, rp.ext, str_cstr(&rp.text));
	}
	/* keywords only in an EHLO reply, and not from its first line */
	reply_reset(&rp, 0);
	feed_all(&rp, "250-x\n250 PIPELINING");
	CHECK_INT("reply_no_ext_wanted", rp.ext, 0);
	reply_reset(&rp, 1);
	feed_all(&rp, "250 PIPELINING");
	CHECK_INT("reply_first_line_no_keyword", rp.ext, 0);

	reply_reset(&rp, 0);
	for (i = 0; i < REPLY_MAX_LINES && r == 0; i++)
		r = reply_feed(&rp, "250-more", 8);
	CHECK_INT("reply_100_lines_ok", r, 0);
	CHECK_INT("reply_101_lines_refused", reply_feed(&rp, "250 end", 7),
		  -EPROTO);
	CHECK("reply_text_bounded", rp.text.len <= REPLY_MAX_TEXT + 3);

	reply_reset(&rp, 0);
	(void)str_cats(&big, "250 ");
	while (big.len <= REPLY_MAX_LINE)
		(void)str_catc(&big, 'x');
	CHECK_INT("reply_long_line_refused",
		  reply_feed(&rp, big.s, big.len), -EPROTO);
	reply_reset(&rp, 0);
	CHECK_INT("reply_64k_line_ok",
		  reply_feed(&rp, big.s, REPLY_MAX_LINE), 1);
	CHECK("reply_64k_text_bounded", rp.text.len <= REPLY_MAX_TEXT);
	str_free(&big);
	reply_free(&rp);
}

struct dot_case {
	const char *in;
	const char *want;
};

static const struct dot_case dot_cases[] = {
	{"", ".\r\n"},
	{"a\n", "a\r\n.\r\n"},
	{"a", "a\r\n.\r\n"},
	{".\n", "..\r\n.\r\n"},
	{".", "..\r\n.\r\n"},
	{"..x\n.y\nz.\n", "...x\r\n..y\r\nz.\r\n.\r\n"},
	{"\n\n.\n", "\r\n\r\n..\r\n.\r\n"},
	{"a\nb", "a\r\nb\r\n.\r\n"},
	/* a bare CR never reaches the wire ("\r.\r" must not end DATA): a
	 * space, which starts no dot line */
	{"x\r\n", "x \r\n.\r\n"},
	{"a\r.\rb\n", "a . b\r\n.\r\n"},
	{"a\n\r.\r\n", "a\r\n . \r\n.\r\n"},
	{"\r", " \r\n.\r\n"},
	{"\xc3\xa9\n", "\xc3\xa9\r\n.\r\n"},
};

/* test_dot - whole input and byte at a time give the same wire bytes */
static void test_dot(void)
{
	size_t i, k;

	for (i = 0; i < sizeof dot_cases / sizeof dot_cases[0]; i++) {
		const struct dot_case *c = &dot_cases[i];
		struct str whole = STR_INIT, bytes = STR_INIT;
		struct dotstuff ds;
		size_t n = strlen(c->in);

		dot_start(&ds);
		(void)dot_encode(&ds, c->in, n, &whole);
		(void)dot_finish(&ds, &whole);
		dot_start(&ds);
		for (k = 0; k < n; k++)
			(void)dot_encode(&ds, c->in + k, 1, &bytes);
		(void)dot_encode(&ds, c->in, 0, &bytes);
		(void)dot_finish(&ds, &bytes);
		CHECK_MEM(tt_name("dot_%zu", i), whole.s, whole.len, c->want,
			  strlen(c->want));
		CHECK_MEM(tt_name("dot_bytes_%zu", i), bytes.s, bytes.len,
			  c->want, strlen(c->want));
		str_free(&whole);
		str_free(&bytes);
	}
}

/* test_clean - result text: printable, one line, at most 500 bytes */
static void test_clean(void)
{
	struct str out = STR_INIT;
	char big[700];

	result_clean("550 a\r\nb\x01\xff", 10, &out);
	CHECK_STR("clean_controls", str_cstr(&out), "550 a??b??");
	memset(big, 'y', sizeof big);
	result_clean(big, sizeof big, &out);
	CHECK_INT("clean_cut_500", out.len, 500);
	str_free(&out);
}

struct resolver_case {
	const char *file;
	int want_r;
	const char *want_csv;
	size_t want_bad;
};

static const struct resolver_case resolver_cases[] = {
	{"127.0.0.1\n", 0, "127.0.0.1:53", 0},
	{"127.0.0.1:5353\n[::1]:53\n", 0, "127.0.0.1:5353,[::1]:53", 0},
	{"::1\n[2001:db8::2]\n", 0, "[::1]:53,[2001:db8::2]:53", 0},
	{"127.0.0.1:0\n", -EINVAL, NULL, 1},
	{"127.0.0.1\n127.0.0.1:70000\n", -EINVAL, NULL, 2},
	{"ns.example.test\n", -EINVAL, NULL, 1},
	{"[::1\n", -EINVAL, NULL, 1},
	{"[::1]x\n", -EINVAL, NULL, 1},
	{"[127.0.0.1]:53\n", -EINVAL, NULL, 1},
	{"1.2.3:53\n", -EINVAL, NULL, 1},
};

/* test_resolvers - control/resolvers lines to the c-ares server list */
static void test_resolvers(void)
{
	size_t i;

	for (i = 0; i < sizeof resolver_cases / sizeof resolver_cases[0];
	     i++) {
		const struct resolver_case *c = &resolver_cases[i];
		struct str csv = STR_INIT;
		size_t n, bad = 0;
		char *l = lines(c->file, &n);
		int got_r = dns_resolvers_csv(l, n, &csv, &bad);

		if (c->want_r < 0)
			tt_check(got_r == c->want_r && bad == c->want_bad,
				 tt_name("resolvers_%zu", i),
				 "got %d line %zu", got_r, bad);
		else
			tt_check(got_r == 0 &&
				 !strcmp(str_cstr(&csv), c->want_csv),
				 tt_name("resolvers_%zu", i), "got %d \"%s\"",
				 got_r, str_cstr(&csv));
		str_free(&csv);
		free(l);
	}
}

/* test_names - what dns_* will ask */
static void test_names(void)
{
	CHECK_INT("name_plain", dns_name_ok("mx.example.test"), 1);
	CHECK_INT("name_final_dot", dns_name_ok("example.test."), 1);
	CHECK_INT("name_dnsbl", dns_name_ok("4.3.2.1.zen.example"), 1);
	CHECK_INT("name_empty", dns_name_ok(""), 0);
	CHECK_INT("name_root", dns_name_ok("."), 0);
	CHECK_INT("name_double_dot", dns_name_ok("a..b"), 0);
	CHECK_INT("name_space", dns_name_ok("a b"), 0);
	CHECK_INT("name_literal", dns_name_ok("[192.0.2.1]"), 0);
	CHECK_INT("name_label_64",
		  dns_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			      "aaaaaaaaaaaaaaaa.test"), 0);
}

/* addr - a dns_addr from text (IPv6 when it has a colon) */
static struct dns_addr addr(const char *text)
{
	struct dns_addr a;

	memset(&a, 0, sizeof a);
	a.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(a.family, text, a.family == AF_INET ? (void *)&a.a.v4 :
		      (void *)&a.a.v6) != 1)
		a.family = -1;
	return a;
}

struct self_case {
	const char *addr;
	unsigned long port;
	int want;
};

/* this "host": interfaces 192.0.2.2 and fd00::2 (besides loopback),
 * control/listen.smtp on port 2525 */
static const struct self_case self_cases[] = {
	{"127.0.0.1", 25, 1},
	{"127.0.0.2", 25, 1},
	{"127.255.255.254", 2525, 1},
	{"0.0.0.0", 25, 1},
	{"0.1.2.3", 587, 1},
	{"::1", 25, 1},
	{"::", 465, 1},
	{"::ffff:127.0.0.1", 25, 1},
	{"::ffff:127.0.0.2", 2525, 1},
	{"::ffff:0.0.0.0", 25, 1},
	{"::127.0.0.1", 25, 1},		/* IPv4-compatible */
	{"::ffff:0:127.0.0.1", 25, 1},	/* SIIT */
	{"64:ff9b::127.0.0.1", 25, 1},	/* NAT64 */
	{"64:ff9b::192.0.2.2", 25, 1},
	{"192.0.2.2", 25, 1},
	{"::ffff:192.0.2.2", 25, 1},
	{"fd00::2", 25, 1},
	{"FD00:0:0:0:0:0:0:2", 25, 1},
	/* somebody else */
	{"192.0.2.3", 25, 0},
	{"::ffff:192.0.2.3", 25, 0},
	{"128.0.0.1", 25, 0},
	{"1.0.0.0", 25, 0},
	{"fd00::3", 25, 0},
	{"::2:0:0:1", 25, 0},
	{"2001:db8::127.0.0.1", 25, 0},
	{"64:ff9b:1::127.0.0.1", 25, 0},
	/* our addresses, where no MTA of ours listens: a lab's fake MX */
	{"127.0.0.2", 2526, 0},
	{"::ffff:127.0.0.1", 10025, 0},
	{"192.0.2.2", 2526, 0},
};

/* test_self - the loop check's idea of this host */
static void test_self(void)
{
	struct self sf = {NULL, 0, NULL, 0, 0};
	struct dns_addr own[] = {addr("192.0.2.2"), addr("fd00::2"),
				 addr("::ffff:10.9.8.7")}, c;
	unsigned long ports[] = {25, 465, 587, 2525};
	size_t i;

	sf.own = calloc(3, sizeof *sf.own);
	sf.ports = malloc(sizeof ports);
	if (!sf.own || !sf.ports)
		return;
	for (i = 0; i < 3; i++)
		self_canon(&own[i], &sf.own[sf.nown++]);
	memcpy(sf.ports, ports, sizeof ports);
	sf.nports = 4;
	for (i = 0; i < sizeof self_cases / sizeof *self_cases; i++) {
		const struct self_case *sc = &self_cases[i];
		struct dns_addr a = addr(sc->addr);

		CHECK_INT(tt_name("self_parse_%s", sc->addr), a.family != -1,
			  1);
		CHECK_INT(tt_name("self_%s_port%lu", sc->addr, sc->port),
			  self_addr(&sf, &a, sc->port), sc->want);
	}
	/* an interface listed as IPv4-mapped is compared as IPv4 */
	c = addr("10.9.8.7");
	CHECK_INT("self_mapped_interface", self_addr(&sf, &c, 25), 1);
	c = addr("::ffff:7f00:1");
	self_canon(&c, &c);
	CHECK_INT("self_canon_family", c.family, AF_INET);
	CHECK_INT("self_canon_v4", ntohl(c.a.v4.s_addr), 0x7f000001);
	/* a listen file that could not be read: every port is ours */
	sf.any_port = 1;
	c = addr("127.0.0.2");
	CHECK_INT("self_any_port", self_addr(&sf, &c, 2526), 1);
	c = addr("192.0.2.3");
	CHECK_INT("self_any_port_other_host", self_addr(&sf, &c, 2526), 0);
	self_free(&sf);

	/* the real thing: this machine's loopback, without control files */
	CHECK_INT("self_load", self_load(&sf, "/nonexistent"), 0);
	c = addr("::ffff:127.0.0.1");
	CHECK_INT("self_load_loopback_25", self_addr(&sf, &c, 25), 1);
	CHECK_INT("self_load_loopback_other", self_addr(&sf, &c, 2600), 0);
	CHECK_INT("self_load_ports", sf.nports, 3);
	self_free(&sf);
}

int main(void)
{
	test_hostport();
	test_route();
	test_reply();
	test_dot();
	test_clean();
	test_resolvers();
	test_names();
	test_self();
	return tt_exit();
}
