/*
 * test_acct - the account-table locator (lib/acct.c) and the pread lookup
 * of lib/cdbx.c that every delivery and login goes through.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "fsx.h"
#include "tinytest.h"

static char root[] = "/tmp/facteur-acct-XXXXXX";

/* test_fields - the record splitter every table reader uses */
static void test_fields(void)
{
	const char *f[3];
	size_t len[3];

	CHECK_INT("fields_3", acct_fields("a\0bc\0", 5, f, len, 3), 0);
	CHECK_MEM("fields_3_0", f[0], len[0], "a", 1);
	CHECK_MEM("fields_3_1", f[1], len[1], "bc", 2);
	CHECK_INT("fields_3_2", (long long)len[2], 0);
	CHECK_INT("fields_3_2_nul", f[2][0], 0);
	CHECK_INT("fields_few", acct_fields("a\0b", 3, f, len, 3), -EILSEQ);
	CHECK_INT("fields_many", acct_fields("a\0b\0c\0d", 7, f, len, 3),
		  -EILSEQ);
	CHECK_INT("fields_trailing", acct_fields("a\0b\0c\0", 6, f, len, 3),
		  -EILSEQ);
	CHECK_INT("fields_unterminated", acct_fields("a\0b\0cX", 5, f, len,
						    3), -EILSEQ);
	CHECK_INT("fields_null", acct_fields(NULL, 0, f, len, 1), -EILSEQ);
	CHECK_INT("fields_one_empty", acct_fields("", 0, f, len, 1), 0);
}

/* write_assign - assign.cdb with one domain split into shards */
static void write_assign(const char *domain, const char *real, unsigned shards)
{
	struct str p = STR_INIT, v = STR_INIT;
	struct cdbw w;

	str_catf(&p, "%s/control/assign.cdb", root);
	str_cats(&v, real);
	str_catc(&v, 0);
	str_catf(&v, "domains/%s", real);
	str_catc(&v, 0);
	str_catf(&v, "%u", shards);
	if (cdbw_start(&w, p.s, 0644) == 0) {
		cdbw_add(&w, domain, strlen(domain), v.s, v.len);
		if (strcmp(domain, real))
			cdbw_add(&w, real, strlen(real), v.s, v.len);
		cdbw_finish(&w);
	}
	str_free(&p);
	str_free(&v);
}

/* write_shards - the delivery table of real split into shards files */
static void write_shards(const char *real, unsigned shards, unsigned users)
{
	struct cdbw *w = calloc(shards, sizeof *w);
	struct str p = STR_INIT, k = STR_INIT, l = STR_INIT;
	unsigned i;

	for (i = 0; i < shards; i++) {
		acct_path(&p, root, ACCT_DELIVERY, real, shards, i);
		cdbw_start(&w[i], p.s, 0600);
	}
	for (i = 0; i < users; i++) {
		l.len = 0;
		str_catf(&l, "user%u", i);
		k.len = 0;
		str_catc(&k, 'u');
		str_catb(&k, l.s, l.len);
		cdbw_add(&w[acct_shard(acct_bucket(l.s, l.len), shards)], k.s,
			 k.len, l.s, l.len);
	}
	for (i = 0; i < shards; i++)
		cdbw_finish(&w[i]);
	free(w);
	str_free(&p);
	str_free(&k);
	str_free(&l);
}

/* get_every_user - look user0..N-1 of big.test up; how many failed */
static unsigned get_every_user(unsigned n)
{
	struct str v = STR_INIT;
	unsigned i, bad = 0;

	for (i = 0; i < n; i++) {
		char l[32], key[33];
		int r;

		snprintf(l, sizeof l, "user%u", i);
		snprintf(key, sizeof key, "u%s", l);
		r = acct_get(root, "big.test", ACCT_DELIVERY, l, key,
			     strlen(key), &v);
		if (r != 0 || !str_eqs(&v, l))
			bad++;
	}
	str_free(&v);
	return bad;
}

/* shard16_other - a user of big.test in another of 16 shards than user7 */
static unsigned shard16_other(void)
{
	unsigned want = acct_shard(acct_bucket("user7", 5), 16), i;
	char l[32];

	for (i = 8;; i++) {
		snprintf(l, sizeof l, "user%u", i);
		if (acct_shard(acct_bucket(l, strlen(l)), 16) != want)
			return i;
	}
}

/* test_cache - the tables kept open in a batch (lib/cdbx.h): a table
 * regenerated between two batches is read anew, one gone is -ENODATA,
 * within a batch the first check holds, a re-split is followed */
static void test_cache(void)
{
	struct acct_domain d = {STR_INIT, STR_INIT, 0};
	struct str v = STR_INIT, p = STR_INIT;
	unsigned i, bad, other = shard16_other();
	char l[32], key[33];
	int r;

	write_shards("big.test", 16, 5000);
	write_assign("big.test", "big.test", 16);
	write_assign("one.test", "real1.test", 1);
	cdbx_batch_begin();
	r = acct_domain(root, "one.test", &d);
	tt_check(r == 0 && str_eqs(&d.real, "real1.test"), "cache_first",
		 "r=%d", r);
	/* vadmin's regeneration: a new file renamed over the old */
	write_assign("one.test", "real2.test", 1);
	r = acct_domain(root, "one.test", &d);
	tt_check(r == 0 && str_eqs(&d.real, "real1.test"),
		 "cache_same_batch_keeps_its_table", "r=%d real=%s", r,
		 str_cstr(&d.real));
	cdbx_batch_end();
	cdbx_batch_begin();
	r = acct_domain(root, "one.test", &d);
	tt_check(r == 0 && str_eqs(&d.real, "real2.test"),
		 "cache_next_batch_sees_regenerated", "r=%d real=%s", r,
		 str_cstr(&d.real));
	cdbx_batch_end();
	/* outside a batch nothing is cached */
	write_assign("one.test", "real3.test", 1);
	r = acct_domain(root, "one.test", &d);
	tt_check(r == 0 && str_eqs(&d.real, "real3.test"),
		 "cache_off_outside_batch", "r=%d", r);
	str_catf(&p, "%s/control/assign.cdb", root);
	cdbx_batch_begin();
	r = acct_domain(root, "one.test", &d);
	tt_check(r == 0, "cache_before_unlink", "r=%d", r);
	cdbx_batch_end();
	unlink(p.s);
	cdbx_batch_begin();
	r = acct_domain(root, "one.test", &d);
	tt_check(r == -ENODATA, "cache_gone_is_nodata", "r=%d", r);
	cdbx_batch_end();

	/* 16 shards and assign: more tables than the cache holds */
	write_assign("big.test", "big.test", 16);
	cdbx_batch_begin();
	bad = get_every_user(5000);
	tt_check(bad == 0, "cache_evicts_correctly", "%u lookups failed",
		 bad);
	cdbx_batch_end();
	cdbx_cache_free();

	/* a re-split inside a batch: assign was read with 16 shards, the
	 * files of 16 are gone; acct_get reads assign again (cdbx_recheck) */
	cdbx_batch_begin();
	r = acct_get(root, "big.test", ACCT_DELIVERY, "user7", "uuser7", 6, &v);
	tt_check(r == 0 && str_eqs(&v, "user7"), "cache_resplit_before",
		 "r=%d", r);
	write_shards("big.test", 32, 5000);
	write_assign("big.test", "big.test", 32);
	for (i = 0; i < 16; i++) {
		acct_path(&p, root, ACCT_DELIVERY, "big.test", 16, i);
		unlink(p.s);
	}
	snprintf(l, sizeof l, "user%u", other);
	snprintf(key, sizeof key, "u%s", l);
	r = acct_get(root, "big.test", ACCT_DELIVERY, l, key, strlen(key), &v);
	tt_check(r == 0 && str_eqs(&v, l), "cache_resplit_followed",
		 "r=%d", r);
	cdbx_batch_end();
	cdbx_cache_free();
	acct_domain_free(&d);
	str_free(&v);
	str_free(&p);
}

int main(void)
{
	struct str p = STR_INIT, v = STR_INIT, k = STR_INIT;
	struct acct_domain d = {STR_INIT, STR_INIT, 0};
	char longdom[254];
	unsigned i, bad;
	int r;

	if (!mkdtemp(root))
		return 1;
	str_catf(&p, "%s/control/domains", root);
	fsx_mkdir_p(p.s, 0700);

	/* buckets are 16 bits and spread; shards take the top bits */
	tt_check(acct_bucket("a", 1) < ACCT_BUCKETS, "bucket_range", "too big");
	tt_check(acct_bucket("user1", 5) != acct_bucket("user2", 5),
		 "bucket_differs", "same bucket for two names");
	tt_check(acct_shard(0, 64) == 0 && acct_shard(65535, 64) == 63 &&
		 acct_shard(1024, 64) == 1 && acct_shard(1023, 64) == 0,
		 "shard_top_bits", "wrong shard");
	tt_check(acct_shard(65535, 1) == 0, "shard_one", "one shard is 0");

	/* file names: plain, sharded, and hashed for very long domains */
	acct_path(&p, "/r", ACCT_DELIVERY, "ex.org", 1, 0);
	tt_check(str_eqs(&p, "/r/control/domains/ex.org.cdb"), "path_plain",
		 "got %s", p.s);
	acct_path(&p, "/r", ACCT_PASSWD, "ex.org", 128, 7);
	tt_check(str_eqs(&p, "/r/control/passwd/ex.org+128+7.cdb"),
		 "path_shard", "got %s", p.s);
	memset(longdom, 'a', 253);
	longdom[253] = 0;
	for (i = 63; i < 253; i += 64)
		longdom[i] = '.';
	acct_path(&p, "/r", ACCT_DELIVERY, longdom, 65536, 65535);
	tt_check(strlen(strrchr(p.s, '/') + 1) <= 255 && strchr(p.s, '~'),
		 "path_long_domain_fits", "name too long: %zu",
		 strlen(strrchr(p.s, '/') + 1));
	acct_file_key(&k, longdom);
	longdom[252] = 'b';
	acct_file_key(&v, longdom);
	tt_check(!str_eqs(&k, v.s), "long_keys_differ", "same key");

	/* acct_get through assign and shards, an alias domain, and misses */
	write_shards("big.test", 16, 5000);
	write_assign("alias.test", "big.test", 16);
	bad = get_every_user(5000);
	tt_check(bad == 0, "get_every_user", "%u lookups failed", bad);
	r = acct_get(root, "alias.test", ACCT_DELIVERY, "user42", "uuser42",
		     7, &v);
	tt_check(r == 0 && str_eqs(&v, "user42"), "get_via_alias_domain",
		 "r=%d", r);
	r = acct_get(root, "big.test", ACCT_DELIVERY, "nobody", "unobody", 7,
		     &v);
	tt_check(r == -ENOENT, "get_missing_user", "r=%d", r);
	r = acct_get(root, "other.test", ACCT_DELIVERY, "x", "ux", 2, &v);
	tt_check(r == -ENOENT, "get_unhosted_domain", "r=%d", r);
	r = acct_domain(root, "alias.test", &d);
	tt_check(r == 0 && str_eqs(&d.real, "big.test") &&
		 str_eqs(&d.dir, "domains/big.test") && d.shards == 16,
		 "domain_record", "r=%d", r);

	/* a re-split: assign says 32 while only 16 exist -> an error, not a
	 * wrong answer; once the files exist the lookup works */
	write_assign("big.test", "big.test", 32);
	r = acct_get(root, "big.test", ACCT_DELIVERY, "user7", "uuser7", 6, &v);
	tt_check(r == -EIO, "get_missing_shard_is_error", "r=%d", r);
	write_shards("big.test", 32, 5000);
	r = acct_get(root, "big.test", ACCT_DELIVERY, "user7", "uuser7", 6, &v);
	tt_check(r == 0 && str_eqs(&v, "user7"), "get_after_resplit", "r=%d",
		 r);

	/* a bad shard count in assign is refused */
	write_assign("big.test", "big.test", 3);
	r = acct_domain(root, "big.test", &d);
	tt_check(r == -EILSEQ, "domain_bad_shards", "r=%d", r);

	/* cdbx_lookup on a truncated file fails cleanly */
	acct_path(&p, root, ACCT_DELIVERY, "big.test", 32, 0);
	r = truncate(p.s, 1000);
	r = cdbx_lookup(p.s, "uuser0", 6, &v);
	tt_check(r == -EIO || r == -ENOENT, "lookup_truncated", "r=%d", r);
	r = cdbx_lookup("/nonexistent/x.cdb", "k", 1, &v);
	tt_check(r == -ENODATA, "lookup_no_file", "r=%d", r);

	test_cache();
	acct_domain_free(&d);
	fsx_rmtree(root);
	str_free(&p);
	str_free(&v);
	str_free(&k);
	test_fields();
	return tt_exit();
}
