/*
 * acct - locating account records (see acct.h).
 */
#include "acct.h"

#include <errno.h>
#include <string.h>

#include "cdbx.h"
#include "name.h"
#include "num.h"

/* acct_bucket - FNV-1a of the local part, folded to 16 bits */
uint32_t acct_bucket(const char *local, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)local[i];
		h *= 16777619u;
	}
	return (h ^ (h >> 16)) & 0xffffu;
}

/* acct_file_key - the part of a table's file name that names the domain */
int acct_file_key(struct str *out, const char *domain)
{
	size_t len = strlen(domain), i;
	uint64_t h = 14695981039346656037ull;

	if (len <= 200)
		return str_copyb(out, domain, len);
	for (i = 0; i < len; i++) {
		h ^= (unsigned char)domain[i];
		h *= 1099511628211ull;
	}
	if (str_copyb(out, domain, 180))
		return -ENOMEM;
	return str_catf(out, "~%016llx", (unsigned long long)h);
}

/* acct_shard - which of SHARDS files holds a bucket: its top bits */
unsigned acct_shard(uint32_t bucket, unsigned shards)
{
	return (unsigned)(((uint64_t)bucket * shards) / ACCT_BUCKETS);
}

/* acct_path - the file of one shard of a domain's table */
int acct_path(struct str *out, const char *root, int which,
	      const char *domain, unsigned shards, unsigned index)
{
	const char *dir = which == ACCT_PASSWD ? "passwd" : "domains";
	struct str key = STR_INIT;
	int r = acct_file_key(&key, domain);

	out->len = 0;
	if (r == 0 && shards <= 1)
		r = str_catf(out, "%s/control/%s/%s.cdb", root, dir, key.s);
	else if (r == 0)
		r = str_catf(out, "%s/control/%s/%s+%u+%u.cdb", root, dir,
			     key.s, shards, index);
	str_free(&key);
	return r;
}

/* acct_fields - a record of exactly K NUL-separated fields, each a C
 * string: V is NUL-terminated after its N bytes, as a struct str is */
int acct_fields(const char *v, size_t n, const char **f, size_t *len,
		size_t k)
{
	size_t i = 0, j;

	if (!v || v[n] != 0)
		return -EILSEQ;
	for (j = 0; j < k; j++) {
		const char *z = memchr(v + i, 0, n - i);
		size_t end = z ? (size_t)(z - v) : n;

		if (!z && j + 1 < k)
			return -EILSEQ;	/* too few */
		f[j] = v + i;
		len[j] = end - i;
		i = end + 1;
	}
	return i <= n ? -EILSEQ : 0;	/* too many */
}

/* acct_maildir_ok - what vadmin writes: domains/..., relative, no "."
 * or ".." component, no control bytes; anything else was not vadmin's,
 * and neither a session nor a delivery may open it */
int acct_maildir_ok(const char *s, size_t len)
{
	size_t i;

	if (len < 9 || memcmp(s, "domains/", 8) || s[len - 1] == '/')
		return 0;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
		if (s[i] == '.' && s[i - 1] == '/' &&
		    (i + 1 == len || s[i + 1] == '/' ||
		     (s[i + 1] == '.' && (i + 2 == len || s[i + 2] == '/'))))
			return 0;
	}
	return 1;
}

/* parse_assign - REAL \0 DIR \0 SHARDS */
static int parse_assign(const struct str *v, struct acct_domain *d)
{
	const char *f[3];
	size_t len[3];
	uint64_t n;

	if (acct_fields(v->s, v->len, f, len, 3) < 0 ||
	    num_parseb(f[2], len[2], ACCT_BUCKETS, &n) || n == 0 ||
	    (n & (n - 1)))
		return -EILSEQ;
	if (str_copyb(&d->real, f[0], len[0]) ||
	    str_copyb(&d->dir, f[1], len[1]))
	return -ENOMEM;
	d->shards = (unsigned)n;
	return 0;
}

/* acct_domain - look a domain up in assign.cdb (-ENOENT: not hosted) */
int acct_domain(const char *root, const char *domain, struct acct_domain *d)
{
	struct str path = STR_INIT, v = STR_INIT;
	int r;

	r = str_catf(&path, "%s/control/assign.cdb", root);
	if (r == 0)
		r = cdbx_lookup(path.s, domain, strlen(domain), &v);
	if (r == 0)
		r = parse_assign(&v, d);
	str_free(&path);
	str_free(&v);
	return r;
}

/* acct_get - one record of a hosted domain's table; -ENOENT if absent */
int acct_get(const char *root, const char *domain, int which,
	     const char *local, const char *key, size_t klen,
	     struct str *val)
{
	struct acct_domain d = {STR_INIT, STR_INIT, 1};
	struct str path = STR_INIT;
	int r = 0, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		/* a cached assign.cdb (lib/cdbx.h) is read again too */
		if (attempt)
			cdbx_recheck();
		r = acct_domain(root, domain, &d);
		if (r < 0)
			break;
		r = acct_path(&path, root, which, d.real.s, d.shards,
			      acct_shard(acct_bucket(local, strlen(local)),
					 d.shards));
		if (r < 0)
			break;
		r = cdbx_lookup(path.s, key, klen, val);
		/* the file went away: the domain was re-split; look again */
		if (r != -ENODATA)
			break;
	}
	acct_domain_free(&d);
	str_free(&path);
	return r == -ENODATA ? -EIO : r;
}

/* acct_domain_free - release an acct_domain */
void acct_domain_free(struct acct_domain *d)
{
	str_free(&d->real);
	str_free(&d->dir);
}

/* acct_local - is ADDR's domain hosted here (in assign.cdb)? 1 local, 0
 * remote (no such domain, or no assign.cdb yet), <0 cannot tell now. An
 * address without '@' counts as local: its delivery agent says what is
 * wrong with it. The scheduler's split, and mta-qread's */
int acct_local(const char *root, const char *addr)
{
	struct acct_domain d = {STR_INIT, STR_INIT, 0};
	struct str dom = STR_INIT;
	const char *p = strrchr(addr, '@');
	int r;

	if (!p)
		return 1;
	r = name_fold(&dom, p + 1, strlen(p + 1));
	if (r == 0)
		r = acct_domain(root, str_cstr(&dom), &d);
	acct_domain_free(&d);
	str_free(&dom);
	if (r == 0)
		return 1;
	return r == -ENOENT || r == -ENODATA ? 0 : r;
}
