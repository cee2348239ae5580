/*
 * cdb_lookup - how long a user lookup takes in a 1,000,000-user table.
 *
 * SYNOPSIS
 *	cdb_lookup [USERS] [LOOKUPS]
 *
 * Builds, in a temporary directory, one domain's delivery table with USERS
 * records (default 1,000,000) twice: as a single CDB, and split into shards
 * with an assign.cdb the way vadmin writes big domains (lib/acct.h). Then
 * times LOOKUPS (default 200,000) random lookups, each of existing users:
 *   hot    - cdbr_find in a table kept open (a long-running reader)
 *   open   - cdbx_lookup: open, map, find, close per lookup (one delivery)
 *   acct   - acct_get: assign.cdb, then the shard, per lookup (vdeliver's
 *            and pop3d's path)
 * Prints one line per mode: `cdb_lookup mode=.. users=.. us_per_lookup=..`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "fsx.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "cdb_lookup: %s: %s\n", what, strerror(-r));
	exit(111);
}

/* value - a delivery record of realistic size */
static void value(struct str *v, unsigned long i)
{
	v->len = 0;
	if (str_catf(v, "domains/bench.test/user%lu/Maildir", i) ||
	    str_catc(v, 0) || str_cats(v, "52428800") || str_catc(v, 0) ||
	    str_cats(v, "0") || str_catc(v, 0) || str_cats(v, "0"))
		die("value", -ENOMEM);
}

int main(int argc, char **argv)
{
	unsigned long users = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	unsigned long lookups = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
	char tmpl[] = "/tmp/cdb-bench-XXXXXX";
	struct str p = STR_INIT, k = STR_INIT, v = STR_INIT, local = STR_INIT;
	struct cdbw *sw, one;
	struct cdbr rd;
	unsigned shards = 1, s;
	unsigned long i, found = 0;
	const char *val;
	size_t vlen;
	double t0, t;
	char *root = mkdtemp(tmpl);
	int r;

	if (!root || users == 0 || lookups == 0)
		die("setup", -EINVAL);
	while ((unsigned long)shards * 1024 < users && shards < ACCT_BUCKETS)
		shards *= 2;
	if (str_catf(&p, "%s/control/domains", root) ||
	    fsx_mkdir_p(p.s, 0700) < 0)
		die("mkdir", -EIO);
	/* the single table */
	p.len = 0;
	str_catf(&p, "%s/single.cdb", root);
	if ((r = cdbw_start(&one, p.s, 0600)) < 0)
		die("cdbw_start", r);
	sw = calloc(shards, sizeof *sw);
	if (!sw)
		die("calloc", -ENOMEM);
	for (s = 0; s < shards; s++) {
		if ((r = acct_path(&p, root, ACCT_DELIVERY, "bench.test", shards,
				   s)) < 0 ||
		    (r = cdbw_start(&sw[s], p.s, 0600)) < 0)
			die("cdbw_start shard", r);
	}
	for (i = 0; i < users; i++) {
		local.len = 0;
		str_catf(&local, "user%lu", i);
		k.len = 0;
		str_catc(&k, 'u');
		str_catb(&k, local.s, local.len);
		value(&v, i);
		if ((r = cdbw_add(&one, k.s, k.len, v.s, v.len)) < 0)
			die("cdbw_add", r);
		s = acct_shard(acct_bucket(local.s, local.len), shards);
		if ((r = cdbw_add(&sw[s], k.s, k.len, v.s, v.len)) < 0)
			die("cdbw_add shard", r);
	}
	if ((r = cdbw_finish(&one)) < 0)
		die("cdbw_finish", r);
	for (s = 0; s < shards; s++)
		if ((r = cdbw_finish(&sw[s])) < 0)
			die("cdbw_finish shard", r);
	p.len = 0;
	str_catf(&p, "%s/control/assign.cdb", root);
	if ((r = cdbw_start(&one, p.s, 0644)) < 0)
		die("assign", r);
	v.len = 0;
	str_cats(&v, "bench.test");
	str_catc(&v, 0);
	str_cats(&v, "domains/bench.test");
	str_catc(&v, 0);
	str_catf(&v, "%u", shards);
	if (cdbw_add(&one, "bench.test", 10, v.s, v.len) < 0 ||
	    cdbw_finish(&one) < 0)
		die("assign", -EIO);

	srandom(42);
	p.len = 0;
	str_catf(&p, "%s/single.cdb", root);
	if ((r = cdbr_open(&rd, p.s)) < 0)
		die("cdbr_open", r);
	t0 = now();
	for (i = 0; i < lookups; i++) {
		k.len = 0;
		str_catf(&k, "uuser%lu", (unsigned long)random() % users);
		found += cdbr_find(&rd, k.s, k.len, &val, &vlen) == 0;
	}
	t = now() - t0;
	cdbr_close(&rd);
	printf("cdb_lookup mode=hot users=%lu us_per_lookup=%.2f found=%lu/%lu\n",
	       users, t * 1e6 / (double)lookups, found, lookups);

	found = 0;
	t0 = now();
	for (i = 0; i < lookups; i++) {
		k.len = 0;
		str_catf(&k, "uuser%lu", (unsigned long)random() % users);
		found += cdbx_lookup(p.s, k.s, k.len, &v) == 0;
	}
	t = now() - t0;
	printf("cdb_lookup mode=open users=%lu us_per_lookup=%.2f found=%lu/%lu\n",
	       users, t * 1e6 / (double)lookups, found, lookups);

	found = 0;
	t0 = now();
	for (i = 0; i < lookups; i++) {
		local.len = 0;
		str_catf(&local, "user%lu", (unsigned long)random() % users);
		k.len = 0;
		str_catc(&k, 'u');
		str_catb(&k, local.s, local.len);
		found += acct_get(root, "bench.test", ACCT_DELIVERY, local.s,
				  k.s, k.len, &v) == 0;
	}
	t = now() - t0;
	printf("cdb_lookup mode=acct users=%lu shards=%u us_per_lookup=%.2f "
	       "found=%lu/%lu\n", users, shards, t * 1e6 / (double)lookups,
	       found, lookups);
	fsx_rmtree(root);
	str_free(&p);
	str_free(&k);
	str_free(&v);
	str_free(&local);
	free(sw);
	return found == lookups ? 0 : 1;
}
