/*
 * test_rules - relayrules: compiling tcprules syntax and looking clients up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"
#include "rules.h"
#include "tinytest.h"

static char root[] = "/tmp/facteur-rules-XXXXXX";

static int write_rules(const char *text)
{
	struct str p = STR_INIT;
	int r;

	str_catf(&p, "%s/control/relayrules", root);
	r = fsx_write_atomic(p.s, text, strlen(text), 0644);
	str_free(&p);
	return r;
}

static const struct {
	const char *ip;
	int want_matched, want_allow;
	const char *want_relay; /* RELAYCLIENT value, NULL when unset */
	const char *want_rbl;
} cases[] = {
	{"127.0.0.1", 1, 1, "", NULL},
	{"127.5.6.7", 1, 1, "", NULL},
	{"10.1.2.3", 1, 1, "", NULL},
	{"10.2.2.3", 1, 1, NULL, NULL},         /* falls to the "" rule */
	{"1.2.3.4", 1, 0, NULL, NULL},          /* exact deny */
	{"1.2.3.10", 1, 1, "x", ""},            /* range, two settings */
	{"1.2.3.15", 1, 1, "x", ""},
	{"1.2.3.20", 1, 1, "x", ""},
	{"1.2.3.21", 1, 1, NULL, NULL},
	{"192.168.7.9", 1, 1, "a,b", NULL},     /* quoted value with comma */
	{"::1", 1, 1, "", NULL},
	{"2001:db8::5", 1, 1, "", NULL},        /* whole-group prefix */
	{"2001:db8:1::5", 1, 0, NULL, NULL},    /* longer prefix wins */
	{"2001:db9::1", 1, 1, NULL, NULL},
	{"2a00:1450:4000::1", 1, 1, "v6", NULL},   /* /35: not whole nibbles */
	{"2a00:1450:5fff::1", 1, 1, "v6", NULL},
	{"2a00:1450:6000::1", 1, 1, NULL, NULL},
	{"2a00:1450:3fff::1", 1, 1, NULL, NULL},
	{"::ffff:10.1.9.9", 1, 1, "", NULL},    /* IPv4-mapped */
};

int main(void)
{
	struct str p = STR_INIT, err = STR_INIT;
	struct rule ru = {0, 0, STR_INIT};
	unsigned long n;
	size_t i;
	int r;

	if (!mkdtemp(root))
		return 1;
	str_catf(&p, "%s/control", root);
	fsx_mkdir_p(p.s, 0755);

	/* no CDB: SPEC.md's defaults */
	r = rules_lookup(root, "127.0.0.1", &ru);
	tt_check(r == 0 && ru.matched && ru.allow &&
		 rules_env(&ru, "RELAYCLIENT"), "default_loopback", "r=%d", r);
	r = rules_lookup(root, "::1", &ru);
	tt_check(r == 0 && rules_env(&ru, "RELAYCLIENT"), "default_v6_loopback",
		 "r=%d", r);
	r = rules_lookup(root, "192.0.2.1", &ru);
	tt_check(r == 0 && !ru.matched && ru.allow &&
		 !rules_env(&ru, "RELAYCLIENT"), "default_other", "r=%d", r);

	write_rules("# comment\n"
		    "127.:allow,RELAYCLIENT=\"\"\n"
		    "10.1.:allow,RELAYCLIENT=\"\"\n"
		    "1.2.3.4:deny\n"
		    "1.2.3.10-20:allow,RELAYCLIENT=\"x\",RBLSMTPD=\"\"\n"
		    "192.168.:allow,RELAYCLIENT=\"a,b\"\n"
		    "::1:allow,RELAYCLIENT=\"\"\n"
		    "2001:db8::/32:allow,RELAYCLIENT=\"\"\n"
		    "2001:db8:1::deny\n"
		    "2a00:1450:4000::/35:allow,RELAYCLIENT=v6\n"
		    ":allow\n");
	r = rules_compile(root, &err, &n);
	tt_check(r == 0 && n == 10, "compile", "r=%d n=%lu %s", r, n,
		 str_cstr(&err));
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got_relay, *got_rbl;

		r = rules_lookup(root, cases[i].ip, &ru);
		got_relay = rules_env(&ru, "RELAYCLIENT");
		got_rbl = rules_env(&ru, "RBLSMTPD");
		tt_check(r == 0 && ru.matched == cases[i].want_matched &&
			 ru.allow == cases[i].want_allow &&
			 (got_relay ? cases[i].want_relay &&
			  !strcmp(got_relay, cases[i].want_relay) :
			  !cases[i].want_relay) &&
			 (got_rbl ? cases[i].want_rbl &&
			  !strcmp(got_rbl, cases[i].want_rbl) :
			  !cases[i].want_rbl),
			 tt_name("lookup[%s]", cases[i].ip),
			 "r=%d matched=%d allow=%d relay=%s", r, ru.matched,
			 ru.allow, got_relay ? got_relay : "(unset)");
	}

	/* a bad rule refuses the whole file and keeps the old CDB */
	{
		static const char *const bad[] = {
			"1.2.3:allow\n", "1.2.3.4.5:allow\n", "300.1.1.1:allow\n",
			"1.2.3.20-10:allow\n", "1.2.3.4:permit\n",
			"1.2.3.4:allow,NOVALUE\n", "1.2.3.4:allow,X=\"open\n",
			"2001:db8::/129:allow\n", "2001::db8::1:allow\n",
			"a.b.c.d:allow\n", "1.2.-3.4:allow\n",
			/* leading zeros: such a rule could never match */
			"010.1.:allow\n", "1.2.3.04:allow\n",
			"1.2.3.5-010:allow\n", "00.1.2.3:allow\n",
		};
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			write_rules(bad[i]);
			err.len = 0;
			r = rules_compile(root, &err, &n);
			tt_check(r == -EINVAL && err.len > 0,
				 tt_name("refused[%zu]", i), "r=%d for %s", r,
				 bad[i]);
		}
		r = rules_lookup(root, "1.2.3.4", &ru);
		tt_check(r == 0 && !ru.allow, "old_cdb_kept", "r=%d", r);
	}

	/* rules_check: the number of the bad rule among the kept lines,
	 * the reason and the rule; a good file is 0 */
	{
		size_t k = 0;

		write_rules("# c\n\n127.:allow\n1.2.3:allow\n:deny\n");
		err.len = 0;
		r = rules_check(root, &err, &k);
		tt_check(r == -EINVAL && k == 2 && strstr(str_cstr(&err),
			 "\"1.2.3:allow\""), "check_bad", "r=%d k=%zu %s", r,
			 k, str_cstr(&err));
		write_rules("127.:allow\n:deny\n");
		err.len = 0;
		r = rules_check(root, &err, &k);
		tt_check(r == 0 && err.len == 0, "check_good", "r=%d", r);
	}
	/* found by fuzz_rules: ::/0 matches every IPv6 client, and a longer
	 * IPv6 prefix wins over a shorter one written first, also when
	 * neither is whole nibbles (/126 and /128, /121 and /124) */
	{
		static const struct {
			const char *ip;
			int want_allow;
		} v6[] = {
			{"2001:db8::1", 1}, {"2001:db8::2", 0},
			{"2001:db8::5", 1}, {"2001:db8::20", 0},
			{"2001:db9::1", 0}, {"192.0.2.1", 1},
		};

		write_rules("2001:db8::/126:deny\n"
			    "2001:db8::1:allow,RELAYCLIENT=\"\"\n"
			    "2001:db8::/121:deny\n"
			    "2001:db8::/124:allow\n"
			    "::/0:deny\n"
			    ":allow\n");
		r = rules_compile(root, &err, &n);
		tt_check(r == 0 && n == 6, "compile_v6", "r=%d", r);
		for (i = 0; i < sizeof v6 / sizeof v6[0]; i++) {
			r = rules_lookup(root, v6[i].ip, &ru);
			tt_check(r == 0 && ru.matched &&
				 ru.allow == v6[i].want_allow,
				 tt_name("v6_specific[%s]", v6[i].ip),
				 "r=%d matched=%d allow=%d", r, ru.matched,
				 ru.allow);
		}
	}

	rules_free(&ru);
	fsx_rmtree(root);
	str_free(&p);
	str_free(&err);
	return tt_exit();
}
