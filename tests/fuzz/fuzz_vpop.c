/*
 * fuzz_vpop - libFuzzer target for the vpopmail tree's parsers
 * (vadmin/vpopparse.c), fed one line each, with the properties that
 * import-vpopmail relies on: a relative path that vpp_rel() accepts holds
 * no `..`, `.` or empty component and no control byte (it is opened below
 * a domain's directory); the fields of a vpasswd line are 7 or 8 and hold
 * no ':'; a quota that parses formats as lib/quota does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpopparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* rel_ok - the property of vpp_rel's output */
static int rel_ok(const struct str *r)
{
	const char *p = r->s;

	if (!r->len || r->s[0] == '/' || r->s[r->len - 1] == '/')
		return 0;
	for (size_t i = 0; i < r->len; i++)
		if ((unsigned char)r->s[i] < 0x20 || r->s[i] == 0x7f)
			return 0;
	while (p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (!n || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p = e ? e + 1 : NULL;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = STR_INIT, work = STR_INIT, out = STR_INIT;
	struct vpp_user u;
	struct vpp_assign a;
	struct quota q;
	const char *why, *scheme;
	char *arg, *dest;
	unsigned long dropped;
	int acct;

	if (str_copyb(&in, data, size) < 0)
		abort();
	in.len = strlen(in.s);	/* a line is what the reader cut at NUL */
#define FRESH() do { if (str_copyb(&work, in.s, in.len) < 0) abort(); } \
	while (0)
	FRESH();
	if (vpp_passwd(work.s, &u, &why) == 0) {
		if (strchr(u.name, ':') || strchr(u.dir, ':') || !*u.name)
			abort();
		(void)vpp_flags(u.gid, &acct, &dropped);
		(void)vpp_hash(u.pass, &scheme);
	}
	if (vpp_quota(in.s, &q) == 0 && (q.bytes || q.msgs) &&
	    quota_format(&q, &out) < 0)
		abort();
	if (vpp_rel(in.s, "domains/e.test", &out) == 0 && !rel_ok(&out))
		abort();
	(void)vpp_qmail_name(in.s, &out);
	FRESH();
	(void)vpp_qmail_line(work.s, &arg);
	(void)vpp_vdelivermail(in.s, &out);
	FRESH();
	if (vpp_assign(work.s, &a) == 1 && (!*a.real || !*a.dir))
		abort();
	FRESH();
	if (vpp_valias(work.s, &arg, &dest) == 1 && (!*arg || !*dest))
		abort();
	str_free(&in);
	str_free(&work);
	str_free(&out);
	return 0;
}
