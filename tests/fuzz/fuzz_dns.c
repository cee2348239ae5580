/*
 * fuzz_dns - libFuzzer target for the answers lib/dns reads from the
 * network: A, AAAA, MX, TXT and PTR messages through dns_parse(), the
 * code every lookup's callback runs (c-ares' parsers, then lib/dns's
 * sorting, null-MX rule and TXT joining).
 *
 * The first byte picks the type, the rest is the message. Checked: the
 * result is 0 with at least one record, or one of the lookups' errors; an
 * address is 4 or 16 bytes found in the message; MX records come sorted
 * by preference and a null MX is ""; TXT records hold no more bytes than
 * the message. And a round trip: the records written as a fresh answer
 * (question f.test, one record each) parse back to the same records
 * (MX and addresses as multisets: equal preferences are shuffled).
 */
#include <arpa/nameser.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int types[] = {ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt, ns_t_ptr};

/* put16 - a 16-bit number, network order */
static void put16(struct str *m, unsigned v)
{
	if (str_catc(m, (char)(v >> 8)) || str_catc(m, (char)(v & 255)))
		abort();
}

/* put_name - HOST as labels: 0, or -1 when it cannot be written back
 * (c-ares spells odd bytes with '\\' escapes, which this does not read) */
static int put_name(struct str *m, const char *host)
{
	const char *p = host;
	size_t n;

	if (strlen(host) > 253 || strchr(host, '\\'))
		return -1;
	while (*p) {
		n = strcspn(p, ".");
		if (n == 0 || n > 63)
			return -1;
		if (str_catc(m, (char)n) || str_catb(m, p, n))
			abort();
		p += n;
		if (*p == '.' && !*++p)
			return -1;
	}
	return str_catc(m, 0) ? (abort(), -1) : 0;
}

/* put_rr - one answer record's head (name: the question) and rdata */
static void put_rr(struct str *m, int type, const struct str *rd)
{
	put16(m, 0xc00c);
	put16(m, (unsigned)type);
	put16(m, ns_c_in);
	put16(m, 0);
	put16(m, 60);
	put16(m, (unsigned)rd->len);
	if (str_catb(m, rd->s ? rd->s : "", rd->len))
		abort();
}

/* encode - A's records as a fresh answer of TYPE: 0, or -1 when one
 * cannot be written back */
static int encode(int type, const struct dns_answer *a, struct str *m)
{
	static const char head[] = "\x12\x34\x81\x80\0\1";
	struct str rd = STR_INIT;
	size_t i, n, k;
	int r = 0;

	n = a->naddrs + a->nmx + a->ntxt + a->nnames;
	m->len = 0;
	if (str_catb(m, head, 6))
		abort();
	put16(m, (unsigned)n);
	put16(m, 0);
	put16(m, 0);
	if (str_catb(m, "\1f\4test\0", 8))
		abort();
	put16(m, (unsigned)type);
	put16(m, ns_c_in);
	for (i = 0; r == 0 && i < n; i++) {
		rd.len = 0;
		if (type == ns_t_a || type == ns_t_aaaa) {
			if (str_catb(&rd, (const char *)&a->addrs[i].a,
				     type == ns_t_a ? 4 : 16))
				abort();
		} else if (type == ns_t_mx) {
			put16(&rd, a->mx[i].pref);
			r = put_name(&rd, a->mx[i].host);
		} else if (type == ns_t_ptr) {
			r = put_name(&rd, a->names[i]);
		} else {
			/* strings of at most 255 bytes; an empty record
			 * is one empty string */
			k = 0;
			do {
				size_t c = a->txt[i].len - k > 255 ? 255 :
					   a->txt[i].len - k;

				if (str_catc(&rd, (char)c) ||
				    str_catb(&rd, a->txt[i].s ? a->txt[i].s + k
					     : "", c))
					abort();
				k += c;
			} while (k < a->txt[i].len);
		}
		if (rd.len > 65535)
			r = -1;
		if (r == 0)
			put_rr(m, type, &rd);
	}
	str_free(&rd);
	return r == 0 && m->len <= 65535 ? 0 : -1;
}

/* mx_cmp, addr_cmp - orders that make multisets comparable */
static int mx_cmp(const void *x, const void *y)
{
	const struct dns_mx *a = x, *b = y;

	return a->pref != b->pref ? (a->pref < b->pref ? -1 : 1) :
	       strcmp(a->host, b->host);
}

static int addr_cmp(const void *x, const void *y)
{
	return memcmp(&((const struct dns_addr *)x)->a,
		      &((const struct dns_addr *)y)->a, 16);
}

/* same - two answers hold the same records */
static int same(int type, struct dns_answer *a, struct dns_answer *b)
{
	size_t i;

	if (a->naddrs != b->naddrs || a->nmx != b->nmx ||
	    a->ntxt != b->ntxt || a->nnames != b->nnames)
		return 0;
	if (a->nmx) {
		qsort(a->mx, a->nmx, sizeof *a->mx, mx_cmp);
		qsort(b->mx, b->nmx, sizeof *b->mx, mx_cmp);
	}
	if (a->naddrs) {
		qsort(a->addrs, a->naddrs, sizeof *a->addrs, addr_cmp);
		qsort(b->addrs, b->naddrs, sizeof *b->addrs, addr_cmp);
	}
	for (i = 0; i < a->nmx; i++)
		if (mx_cmp(&a->mx[i], &b->mx[i]))
			return 0;
	for (i = 0; i < a->naddrs; i++)
		if (addr_cmp(&a->addrs[i], &b->addrs[i]) ||
		    a->addrs[i].family != b->addrs[i].family)
			return 0;
	for (i = 0; i < a->ntxt; i++)
		if (a->txt[i].len != b->txt[i].len || (a->txt[i].len &&
		    memcmp(a->txt[i].s, b->txt[i].s, a->txt[i].len)))
			return 0;
	for (i = 0; i < a->nnames; i++)
		if (strcmp(a->names[i], b->names[i]))
			return 0;
	(void)type;
	return 1;
}

/* check_records - what one parsed answer must hold */
static void check_records(int type, const struct dns_answer *a,
			  const uint8_t *msg, size_t len)
{
	size_t i, total = 0, w = type == ns_t_a ? 4 : 16;

	if (a->naddrs + a->nmx + a->ntxt + a->nnames == 0)
		abort();	/* success means records */
	for (i = 0; i < a->naddrs; i++)
		if (a->addrs[i].family != (w == 4 ? AF_INET : AF_INET6) ||
		    !memmem(msg, len, &a->addrs[i].a, w))
			abort();
	for (i = 0; i < a->nmx; i++)
		if (!a->mx[i].host || !strcmp(a->mx[i].host, ".") ||
		    a->mx[i].pref > 65535 ||
		    (i && a->mx[i - 1].pref > a->mx[i].pref))
			abort();
	for (i = 0; i < a->ntxt; i++)
		total += a->txt[i].len;
	if (total > len)
		abort();
	for (i = 0; i < a->nnames; i++)
		if (!a->names[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_answer a, b;
	struct str m = STR_INIT;
	int type, r;

	if (size < 1)
		return 0;
	type = types[data[0] % (sizeof types / sizeof *types)];
	r = dns_parse(type, data + 1, size - 1, &a);
	if (r != 0 && r != -ENOENT && r != -ENODATA && r != -EAGAIN &&
	    r != -EINVAL)
		abort();
	if (r != 0) {
		if (a.naddrs || a.nmx || a.ntxt || a.nnames)
			abort();	/* a failure holds nothing */
		return 0;
	}
	check_records(type, &a, data + 1, size - 1);
	if (encode(type, &a, &m) == 0) {
		if (dns_parse(type, (const unsigned char *)m.s, m.len, &b))
			abort();
		if (!same(type, &a, &b))
			abort();
		dns_answer_free(&b);
	}
	dns_answer_free(&a);
	str_free(&m);
	return 0;
}
