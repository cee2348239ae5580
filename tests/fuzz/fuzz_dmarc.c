/*
 * fuzz_dmarc - libFuzzer target for lib/dmarc: the DMARC record parser
 * (TXT records any domain publishes) and the Public Suffix List lookup
 * (the From: domain any sender writes).
 *
 * The input is cut at its first NUL: before it, a DMARC record and a
 * list text; after it, a domain. Checked: a record accepted has a
 * policy among the three and pct at most 100; the registrable domain
 * of a name, when there is one, is a suffix of that name (folded) made
 * of whole labels, and its organizational domain is itself; a domain
 * aligns with itself both ways.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_name - the PSL properties of NAME under P */
static void check_name(const struct psl *p, const char *name)
{
	struct str reg = STR_INIT, org = STR_INIT;
	size_t n = strlen(name);

	if (psl_registrable(p, name, &reg) == 0) {
		if (reg.len > n || strcasecmp(name + n - reg.len, reg.s) ||
		    (reg.len < n && name[n - reg.len - 1] != '.'))
			abort();
		if (dmarc_org(p, reg.s, &org) != 0 || strcmp(org.s, reg.s))
			abort();
		if (dmarc_aligned(p, name, name, 1) != 1 ||
		    dmarc_aligned(p, name, reg.s, 0) != 1)
			abort();
	}
	str_free(&reg);
	str_free(&org);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char base[] = "com\nco.uk\nuk\n*.ck\n!www.ck\n";
	const char *s = (const char *)data, *nul = memchr(s, 0, size);
	size_t head = nul ? (size_t)(nul - s) : size;
	struct dmarc_record rec;
	struct psl *p = NULL, *q = NULL;
	char *name;

	if (dmarc_parse(s, head, &rec) == 0 &&
	    (rec.p > DMARC_P_REJECT || rec.sp > DMARC_P_REJECT ||
	     rec.pct > 100))
		abort();
	if (!(name = malloc(size - head + 1)))
		abort();
	memcpy(name, s + head + (nul ? 1 : 0), size - head - (nul ? 1 : 0));
	name[size - head - (nul ? 1 : 0)] = 0;
	if (psl_parse(base, sizeof base - 1, &p) != 0)
		abort();
	check_name(p, name);
	if (psl_parse(s, head, &q) == 0) {
		check_name(q, name);
		check_name(q, "a.b.example.com");
		psl_free(q);
	}
	psl_free(p);
	free(name);
	return 0;
}
