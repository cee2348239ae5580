/*
 * test_vchkpw - vchkpw's input (descriptor 3, whole and a byte at a time,
 * over-long, without its NULs), the flag each service obeys, and the
 * userdb fields of an account.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acct.h"
#include "tinytest.h"
#include "vchkpw.h"

/* check_parse - one input against the user and password it must give,
 * or the error (WANT_R) it must be refused with */
static void check_parse(const char *name, const char *buf, size_t len,
			int want_r, const char *want_user,
			const char *want_pass)
{
	struct cpw_in in;
	int got = cpw_parse(buf, len, &in);

	if (want_r < 0) {
		tt_check(got == want_r, name, "got %d, want %d", got, want_r);
		return;
	}
	tt_check(got == 0 && in.ulen == strlen(want_user) &&
		 !memcmp(in.user, want_user, in.ulen) &&
		 !strcmp(in.pass, want_pass), name, "got %d", got);
}

/* test_parse - the checkpassword protocol's fields */
static void test_parse(void)
{
	static char big[CPW_MAX + 2];

	check_parse("parse_dovecot", "u@ex.test\0pw\0\0", 14, 0, "u@ex.test",
		    "pw");
	check_parse("parse_no_timestamp", "u@ex.test\0pw\0", 13, 0,
		    "u@ex.test", "pw");
	check_parse("parse_timestamp", "u\0p w\0<1.2@x>\0", 14, 0, "u",
		    "p w");
	check_parse("parse_empty_user", "\0pw\0\0", 5, 0, "", "pw");
	check_parse("parse_empty_pass", "u\0\0\0", 4, 0, "u", "");
	check_parse("parse_nothing", "", 0, -EINVAL, NULL, NULL);
	check_parse("parse_no_nul", "u@ex.test", 9, -EINVAL, NULL, NULL);
	check_parse("parse_no_pass_nul", "u@ex.test\0pw", 12, -EINVAL, NULL,
		    NULL);
	memset(big, 'a', sizeof big);
	big[1] = 0;
	big[CPW_MAX - 1] = 0;
	check_parse("parse_max", big, CPW_MAX, 0, "a",
		    big + 2);
	check_parse("parse_over_max", big, CPW_MAX + 1, -EMSGSIZE, NULL, NULL);
}

/* feed - write LEN bytes of BUF into a pipe, STEP at a time, and read
 * them back with cpw_read(); returns its result */
static int feed(const char *buf, size_t len, size_t step, struct str *out)
{
	int p[2], r;
	size_t i;

	if (pipe(p) < 0)
		return -errno;
	if (fork() == 0) {
		close(p[0]);
		for (i = 0; i < len; i += step)
			if (write(p[1], buf + i, len - i < step ? len - i :
				  step) < 0)
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	r = cpw_read(p[0], out);
	close(p[0]);
	while (wait(NULL) > 0)
		;
	return r;
}

/* test_read - whole, a byte at a time, the limit, a closed descriptor */
static void test_read(void)
{
	static char big[2 * CPW_MAX];
	struct str s = STR_INIT;
	int r, fd;

	r = feed("u\0pw\0\0", 6, 6, &s);
	tt_check(r == 0 && s.len == 6 && !memcmp(s.s, "u\0pw\0\0", 6),
		 "read_whole", "%d %zu", r, s.len);
	r = feed("u\0pw\0\0", 6, 1, &s);
	tt_check(r == 0 && s.len == 6 && !memcmp(s.s, "u\0pw\0\0", 6),
		 "read_bytewise", "%d %zu", r, s.len);
	memset(big, 'x', sizeof big);
	r = feed(big, CPW_MAX, 7, &s);
	tt_check(r == 0 && s.len == CPW_MAX, "read_max", "%d %zu", r, s.len);
	r = feed(big, CPW_MAX + 1, 1, &s);
	tt_check(r == -EMSGSIZE, "read_over_max", "%d", r);
	r = feed(big, sizeof big, 100, &s);
	tt_check(r == -EMSGSIZE, "read_far_over_max", "%d", r);
	r = feed("", 0, 1, &s);
	tt_check(r == 0 && s.len == 0, "read_empty", "%d", r);
	fd = open("/dev/null", O_RDONLY);
	close(fd);
	r = cpw_read(fd, &s);
	tt_check(r == -EBADF, "read_closed", "%d", r);
	str_free(&s);
}

/* test_deny - SMTP AUTH has its flag; every way into a mailbox the POP one */
static void test_deny(void)
{
	tt_check(cpw_deny("imap") == ACCT_NOPOP, "deny_imap",
		 "got %lu", cpw_deny("imap"));
	tt_check(cpw_deny("pop3") == ACCT_NOPOP, "deny_pop3",
		 "got %lu", cpw_deny("pop3"));
	tt_check(cpw_deny("smtp") == ACCT_NOSMTP, "deny_smtp",
		 "got %lu", cpw_deny("smtp"));
	tt_check(cpw_deny("submission") == ACCT_NOSMTP, "deny_submission",
		 "got %lu", cpw_deny("submission"));
	tt_check(cpw_deny("sieve") == ACCT_NOPOP, "deny_other",
		 "got %lu", cpw_deny("sieve"));
	tt_check(cpw_deny(NULL) == ACCT_NOPOP, "deny_none",
		 "got %lu", cpw_deny(NULL));
}

/* check_userdb - the fields of a Maildir and quota under ROOT */
static void check_userdb(const char *name, const char *root, const char *md,
			 unsigned long long bytes, unsigned long long msgs,
			 int want_r, const char *want_home,
			 const char *want_mail, const char *want_quota)
{
	struct login l = LOGIN_INIT;
	struct cpw_userdb u = CPW_USERDB_INIT;
	int got;

	str_copys(&l.maildir, md);
	l.quota.bytes = bytes;
	l.quota.msgs = msgs;
	got = cpw_userdb(root, &l, &u);
	if (want_r < 0)
		tt_check(got == want_r, name, "got %d, want %d", got, want_r);
	else
		tt_check(got == 0 && str_eqs(&u.home, want_home) &&
			 str_eqs(&u.mail, want_mail) &&
			 str_eqs(&u.quota, want_quota), name,
			 "%d home %s mail %s quota %s", got, u.home.s,
			 u.mail.s, u.quota.s);
	cpw_userdb_free(&u);
	login_free(&l);
}

/* test_userdb - home, mail location and quota rule */
static void test_userdb(void)
{
	check_userdb("userdb_quota", "/var/facteur",
		     "domains/ex.test/u/Maildir", 3000, 0, 0,
		     "/var/facteur/domains/ex.test/u",
		     "maildir:/var/facteur/domains/ex.test/u/Maildir",
		     "*:bytes=3000");
	check_userdb("userdb_both", "/r", "domains/d/u/Maildir", 52428800,
		     500, 0, "/r/domains/d/u", "maildir:/r/domains/d/u/Maildir",
		     "*:bytes=52428800:messages=500");
	check_userdb("userdb_msgs_only", "/r", "domains/d/u/Maildir", 0, 7, 0,
		     "/r/domains/d/u", "maildir:/r/domains/d/u/Maildir",
		     "*:bytes=0:messages=7");
	check_userdb("userdb_none", "/r", "domains/d/u/Maildir", 0, 0, 0,
		     "/r/domains/d/u", "maildir:/r/domains/d/u/Maildir",
		     "*:bytes=0");
	check_userdb("userdb_relative_root", "r", "domains/d/u/Maildir", 0, 0,
		     -EINVAL, NULL, NULL, NULL);
	check_userdb("userdb_tab_root", "/r\tx", "domains/d/u/Maildir", 0, 0,
		     -EINVAL, NULL, NULL, NULL);
	check_userdb("userdb_lf_root", "/r\nuserdb_uid=0", "domains/d/u/Maildir",
		     0, 0, -EINVAL, NULL, NULL, NULL);
	check_userdb("userdb_not_maildir", "/r", "domains/d/u/Mail", 0, 0,
		     -EINVAL, NULL, NULL, NULL);
	check_userdb("userdb_short", "/r", "Maildir", 0, 0, -EINVAL, NULL,
		     NULL, NULL);
}

int main(void)
{
	test_parse();
	test_read();
	test_deny();
	test_userdb();
	return tt_exit();
}
