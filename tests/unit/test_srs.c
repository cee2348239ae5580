/*
 * NAME
 *	test_srs - unit tests of lib/srs, the SRS0 addresses of forwards
 *
 * DESCRIPTION
 *	The exact address of a known secret and day (its hash computed
 *	apart, by Python's hmac), the round trip, a hash whose case a relay
 *	changed, a wrong secret, the second line of control/srssecret
 *	verifying but never signing, the age limit on both sides, the null
 *	sender and our own SRS addresses kept, and malformed addresses:
 *	missing fields, '=' in the local part, too long, a hash that is not
 *	base64, another domain. Prints one line per check (tests/run.py)
 *	and exits 1 if any failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"
#include "srs.h"
#include "tinytest.h"

#define ME "mx.here.test"
#define DAY 86400
#define T0 ((time_t)20000 * DAY + 3600)	/* day 20000: stamp 544, "RA" */

/* secrets - a secret list as srs_secrets gives it: lines NUL-ended */
static void secrets(struct str *s, const char *a, const char *b)
{
	str_trunc(s, 0);
	(void)str_catb(s, a, strlen(a) + 1);
	if (b)
		(void)str_catb(s, b, strlen(b) + 1);
}

/* test_golden - the exact address, and back */
static void test_golden(void)
{
	struct str k = STR_INIT, o = STR_INIT, b = STR_INIT;

	secrets(&k, "k1", NULL);
	CHECK_INT("fwd", srs_forward(&k, ME, "alice@Example.ORG", T0, &o), 0);
	CHECK_STR("fwd_v", o.s, "SRS0=ZsilaY=RA=example.org=alice@" ME);
	CHECK_INT("rev", srs_reverse(&k, ME, o.s, T0, &b), 0);
	CHECK_STR("rev_v", b.s, "alice@example.org");
	CHECK_INT("is", srs_is(ME, o.s), 1);
	CHECK_INT("is_other_domain", srs_is("other.test", o.s), 0);
	CHECK_INT("is_plain", srs_is(ME, "alice@" ME), 0);
	/* a relay that lower-cases (or upper-cases) the whole address */
	CHECK_INT("rev_lower", srs_reverse(&k, ME,
		  "srs0=zsilay=ra=example.org=alice@mx.here.test", T0, &b), 0);
	CHECK_STR("rev_lower_v", b.s, "alice@example.org");
	CHECK_INT("rev_upper", srs_reverse(&k, ME,
		  "SRS0=ZSILAY=RA=EXAMPLE.ORG=ALICE@MX.HERE.TEST", T0, &b), 0);
	CHECK_STR("rev_upper_v", b.s, "ALICE@example.org");
	/* one digit of the hash changed, the domain or local part changed */
	CHECK_INT("rev_forged", srs_reverse(&k, ME,
		  "SRS0=ZsilaZ=RA=example.org=alice@" ME, T0, &b), -EINVAL);
	CHECK_INT("rev_domain", srs_reverse(&k, ME,
		  "SRS0=ZsilaY=RA=example.net=alice@" ME, T0, &b), -EINVAL);
	CHECK_INT("rev_local", srs_reverse(&k, ME,
		  "SRS0=ZsilaY=RA=example.org=alicf@" ME, T0, &b), -EINVAL);
	CHECK_INT("rev_stamp", srs_reverse(&k, ME,
		  "SRS0=ZsilaY=RB=example.org=alice@" ME, T0, &b), -EINVAL);
	str_free(&k);
	str_free(&o);
	str_free(&b);
}

/* test_secrets - wrong key refused; the second line verifies, never signs */
static void test_secrets(void)
{
	struct str k = STR_INIT, old = STR_INIT, o = STR_INIT, o2 = STR_INIT;
	struct str b = STR_INIT;

	secrets(&old, "old secret", NULL);
	CHECK_INT("old_fwd", srs_forward(&old, ME, "bob@ex.test", T0, &o), 0);
	secrets(&k, "new secret", NULL);
	CHECK_INT("wrong_key", srs_reverse(&k, ME, o.s, T0, &b), -EINVAL);
	secrets(&k, "new secret", "old secret");
	CHECK_INT("second_line_verifies", srs_reverse(&k, ME, o.s, T0, &b), 0);
	CHECK_STR("second_line_v", b.s, "bob@ex.test");
	CHECK_INT("rotated_fwd", srs_forward(&k, ME, "bob@ex.test", T0, &o2),
		  0);
	CHECK("first_line_signs", strcmp(o.s, o2.s) != 0);
	CHECK_INT("new_refused_by_old", srs_reverse(&old, ME, o2.s, T0, &b),
		  -EINVAL);
	str_trunc(&k, 0);
	CHECK_INT("no_secret_fwd", srs_forward(&k, ME, "bob@ex.test", T0, &o),
		  -ENOENT);
	CHECK_INT("no_secret_rev", srs_reverse(&k, ME, o2.s, T0, &b),
		  -ENOENT);
	str_free(&k);
	str_free(&old);
	str_free(&o);
	str_free(&o2);
	str_free(&b);
}

/* test_age - SRS_MAX_AGE days accepted, one more refused; the stamp
 * wraps at 1024 days; a day ahead is clock skew */
static void test_age(void)
{
	struct str k = STR_INIT, o = STR_INIT, b = STR_INIT;
	time_t t = (time_t)1023 * DAY + 5;	/* stamp 1023, just before a wrap */

	secrets(&k, "k", NULL);
	CHECK_INT("age_fwd", srs_forward(&k, ME, "c@ex.test", t, &o), 0);
	CHECK("age_stamp", strstr(o.s, "=77=") != NULL);
	CHECK_INT("age_0", srs_reverse(&k, ME, o.s, t, &b), 0);
	CHECK_INT("age_max", srs_reverse(&k, ME, o.s,
		  t + (time_t)SRS_MAX_AGE * DAY, &b), 0);
	CHECK_INT("age_over", srs_reverse(&k, ME, o.s,
		  t + (time_t)(SRS_MAX_AGE + 1) * DAY, &b), -ETIMEDOUT);
	CHECK_INT("age_ahead_1", srs_reverse(&k, ME, o.s, t - DAY, &b), 0);
	CHECK_INT("age_ahead_2", srs_reverse(&k, ME, o.s, t - 2 * DAY, &b),
		  -ETIMEDOUT);
	CHECK_INT("age_year", srs_reverse(&k, ME, o.s, t + 365 * DAY, &b),
		  -ETIMEDOUT);
	str_free(&k);
	str_free(&o);
	str_free(&b);
}

/* test_kept - what is never rewritten, and what cannot be */
static void test_kept(void)
{
	struct str k = STR_INIT, o = STR_INIT, o2 = STR_INIT, b = STR_INIT;
	char big[80];

	secrets(&k, "k", NULL);
	CHECK_INT("null", srs_forward(&k, ME, "", T0, &o), SRS_KEPT);
	CHECK_STR("null_v", o.s, "");
	CHECK_INT("ours", srs_forward(&k, ME, "a@ex.test", T0, &o), 0);
	CHECK_INT("ours_again", srs_forward(&k, ME, o.s, T0, &o2), SRS_KEPT);
	CHECK_STR("ours_again_v", o2.s, o.s);
	/* another forwarder's SRS0 address: wrapped like any sender */
	CHECK_INT("theirs", srs_forward(&k, ME, "SRS0=abcd=RA=x.test=y@f.test",
		  T0, &o), 0);
	CHECK_INT("theirs_back", srs_reverse(&k, ME, o.s, T0, &b), 0);
	CHECK_STR("theirs_back_v", b.s, "SRS0=abcd=RA=x.test=y@f.test");
	CHECK_INT("eq_local", srs_forward(&k, ME, "a=b@ex.test", T0, &o), 0);
	CHECK_INT("eq_local_back", srs_reverse(&k, ME, o.s, T0, &b), 0);
	CHECK_STR("eq_local_v", b.s, "a=b@ex.test");
	CHECK_INT("no_at", srs_forward(&k, ME, "alice", T0, &o), -EINVAL);
	CHECK_INT("bad_domain", srs_forward(&k, ME, "a@[10.0.0.1]", T0, &o),
		  -EINVAL);
	CHECK_INT("empty_local", srs_forward(&k, ME, "@ex.test", T0, &o),
		  -EINVAL);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	memcpy(big + 42, "@ex.test", 9);	/* 23 + 42 > 64 */
	CHECK_INT("too_long", srs_forward(&k, ME, big, T0, &o), -E2BIG);
	memcpy(big + 41, "@ex.test", 9);	/* 23 + 41 = 64 */
	CHECK_INT("longest", srs_forward(&k, ME, big, T0, &o), 0);
	CHECK_INT("longest_back", srs_reverse(&k, ME, o.s, T0, &b), 0);
	CHECK_STR("longest_v", b.s, big);
	str_free(&k);
	str_free(&o);
	str_free(&o2);
	str_free(&b);
}

/* test_malformed - what srs_reverse refuses before any hash */
static void test_malformed(void)
{
	static const char *const bad[] = {
		"SRS0=@" ME,
		"SRS0=ZsilaY@" ME,
		"SRS0=ZsilaY=RA@" ME,
		"SRS0=ZsilaY=RA=example.org@" ME,
		"SRS0=ZsilaY=RA=example.org=@" ME,
		"SRS0=ZsilaY=RA==alice@" ME,
		"SRS0=Zsil*Y=RA=example.org=alice@" ME,
		"SRS0=Zsila=RA=example.org=alice@" ME,
		"SRS0=ZsilaYY=RA=example.org=alice@" ME,
		"SRS0=ZsilaY=R1=example.org=alice@" ME,
		"SRS0=ZsilaY=RAA=example.org=alice@" ME,
		"SRS0=ZsilaY=RA=exa_mple.org=alice@" ME,
		"SRS0=ZsilaY=RA=example.org=al ice@" ME,
		"SRS0=ZsilaY=RA=example.org=alice@other.test",
		"SRS1=ZsilaY=RA=example.org=alice@" ME,
		"SRS0=ZsilaY=RA=example.org=alice",
	};
	struct str k = STR_INIT, b = STR_INIT, big = STR_INIT;
	size_t i;

	secrets(&k, "k1", NULL);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_INT(tt_name("malformed_%zu", i),
			  srs_reverse(&k, ME, bad[i], T0, &b), -EINVAL);
	(void)str_cats(&big, "SRS0=ZsilaY=RA=example.org=");
	for (i = 0; i < 5000; i++)
		(void)str_catc(&big, 'a');
	(void)str_cats(&big, "@" ME);
	CHECK_INT("very_long", srs_reverse(&k, ME, big.s, T0, &b), -EINVAL);
	str_free(&k);
	str_free(&b);
	str_free(&big);
}

/* test_file - control/srssecret read; srs_secret_new's lines differ */
static void test_file(void)
{
	char dir[] = "/tmp/test_srs.XXXXXX";
	struct str p = STR_INIT, k = STR_INIT, l1 = STR_INIT, l2 = STR_INIT;
	size_t n = 0;

	if (!mkdtemp(dir)) {
		CHECK("mkdtemp", 0);
		return;
	}
	CHECK_INT("file_missing", srs_secrets(dir, &k, &n), -ENOENT);
	CHECK_INT("new_1", srs_secret_new(&l1), 0);
	CHECK_INT("new_2", srs_secret_new(&l2), 0);
	CHECK_INT("new_len", (int)l1.len, 45);
	CHECK("new_differ", strcmp(l1.s, l2.s) != 0);
	(void)str_catf(&p, "%s/control", dir);
	CHECK_INT("mkdir", mkdir(p.s, 0700), 0);
	(void)str_cats(&p, "/srssecret");
	(void)str_catb(&l1, l2.s, l2.len);
	CHECK_INT("write", fsx_write_atomic(p.s, l1.s, l1.len, 0600), 0);
	CHECK_INT("file_read", srs_secrets(dir, &k, &n), 0);
	CHECK_INT("file_lines", (int)n, 2);
	CHECK_INT("file_len", (int)k.len, 2 * 45);
	unlink(p.s);
	str_trunc(&p, p.len - 10);
	rmdir(p.s);
	rmdir(dir);
	str_free(&p);
	str_free(&k);
	str_free(&l1);
	str_free(&l2);
}

int main(void)
{
	test_golden();
	test_secrets();
	test_age();
	test_kept();
	test_malformed();
	test_file();
	return tt_exit();
}
