/*
 * test_vpopparse - the vpopmail tree's lines (vadmin/vpopparse.c), as
 * vpopmail's own code writes them: vpasswd (vcdb.c auth_adduser_line,
 * auth_setpw), the gid flags (vpopmail.h), quotas (vpopmail.c
 * format_maildirquota and older spellings), users/assign
 * (add_domain_assign), .qmail names (vpalias.c: '.' written ':') and lines
 * (qmail's dot-qmail), vdelivermail's .qmail-default and valias -s.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "acct.h"
#include "mdquota.h"
#include "tinytest.h"
#include "vpopparse.h"

/* test_passwd - seven or eight fields, split in place */
static void test_passwd(void)
{
	char l1[] = "bob:$1$abcdefgh$xyz:1:0:Bob:/home/vpopmail/domains/"
		    "e.test/bob:NOQUOTA";
	char l2[] = "al:$6$s$h:1:2050:Al:/d/e.test/0/al:2147483648:clear:x\r";
	char l3[] = "al:$6$s$h:1:2050:Al:/d/e.test/0/al:2G:clear\r";
	char l4[] = "short:x:1";
	char l5[] = ":x:1:0:g:/d:NOQUOTA";
	char l6[] = "a:b:c:d:e:f:g:h:i";
	struct vpp_user u;
	const char *why = "";

	CHECK_INT("passwd.seven", vpp_passwd(l1, &u, &why), 0);
	CHECK_STR("passwd.seven.name", u.name, "bob");
	CHECK_STR("passwd.seven.pass", u.pass, "$1$abcdefgh$xyz");
	CHECK_STR("passwd.seven.dir", u.dir,
		  "/home/vpopmail/domains/e.test/bob");
	CHECK_STR("passwd.seven.quota", u.quota, "NOQUOTA");
	CHECK("passwd.seven.noclear", u.clear == NULL);
	/* a ':' ends a field: nine fields are too many */
	CHECK_INT("passwd.nine", vpp_passwd(l2, &u, &why), -EINVAL);
	CHECK("passwd.nine.why", strstr(why, "too many") != NULL);
	CHECK_INT("passwd.eight", vpp_passwd(l3, &u, &why), 0);
	CHECK_STR("passwd.eight.clear", u.clear, "clear");
	CHECK_STR("passwd.eight.gid", u.gid, "2050");
	CHECK_INT("passwd.short", vpp_passwd(l4, &u, &why), -EINVAL);
	CHECK("passwd.short.why", strstr(why, "too few") != NULL);
	CHECK_INT("passwd.noname", vpp_passwd(l5, &u, &why), -EINVAL);
	CHECK_INT("passwd.many", vpp_passwd(l6, &u, &why), -EINVAL);
}

/* test_flags - NO_POP, NO_SMTP, BOUNCE_MAIL map; the rest is dropped */
static void test_flags(void)
{
	unsigned long dropped;
	int acct;

	CHECK_INT("flags.zero", vpp_flags("0", &acct, &dropped), 0);
	CHECK_INT("flags.zero.acct", acct, 0);
	CHECK_INT("flags.empty", vpp_flags("", &acct, &dropped), 0);
	CHECK_INT("flags.map", vpp_flags("2066", &acct, &dropped), 0);
	/* 2066 = NO_SMTP 0x800 | BOUNCE_MAIL 0x10 | NO_POP 0x02 */
	CHECK_INT("flags.map.acct", acct,
		  ACCT_NOPOP | ACCT_NOSMTP | ACCT_NODELIVERY);
	CHECK_U64("flags.map.dropped", dropped, 0);
	CHECK_INT("flags.imap", vpp_flags("12", &acct, &dropped), 0);
	CHECK_INT("flags.imap.acct", acct, 0);
	CHECK_U64("flags.imap.dropped", dropped, 0x0c);
	CHECK_STR("flags.name.imap", vpp_flag_name(0x08), "NO_IMAP");
	CHECK_STR("flags.name.maildrop", vpp_flag_name(0x40000),
		  "NO_MAILDROP");
	CHECK("flags.name.unknown", vpp_flag_name(0x80000) == NULL);
	CHECK_INT("flags.bad", vpp_flags("x2", &acct, &dropped), -EINVAL);
	CHECK_INT("flags.negative", vpp_flags("-1", &acct, &dropped),
		  -EINVAL);
}

/* test_quota - every spelling vpopmail wrote */
static void test_quota(void)
{
	static const struct {
		const char *in;
		int r;
		unsigned long long bytes, msgs;
	} cases[] = {
		{"NOQUOTA", 0, 0, 0}, {"noquota", 0, 0, 0}, {"", 0, 0, 0},
		{"2147483648", 0, 2147483648ull, 0},
		{"2147483648S", 0, 2147483648ull, 0},
		{"52428800S,1000C", 0, 52428800, 1000},
		{"1000C,10MBS", 0, 10 << 20, 1000},
		{"1000C", 0, 0, 1000}, {"50M", 0, 50 << 20, 0},
		{"5MB", 0, 5 << 20, 0}, {"5mbs", 0, 5 << 20, 0},
		{"1024KB", 0, 1 << 20, 0}, {"2G", 0, 2ull << 30, 0},
		{"1.5M", -EINVAL, 0, 0}, {"M", -EINVAL, 0, 0},
		{"10X", -EINVAL, 0, 0}, {"10,", -EINVAL, 0, 0},
		{"1S,2S", -EINVAL, 0, 0},
		{"99999999999999999999", -EINVAL, 0, 0},
	};
	struct quota q;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_INT(tt_name("quota[%s]", cases[i].in),
			  vpp_quota(cases[i].in, &q), cases[i].r);
		if (cases[i].r == 0) {
			CHECK_U64(tt_name("quota[%s].bytes", cases[i].in),
				  q.bytes, cases[i].bytes);
			CHECK_U64(tt_name("quota[%s].msgs", cases[i].in),
				  q.msgs, cases[i].msgs);
		}
	}
}

/* test_hash - what is kept, and the scheme named in the report */
static void test_hash(void)
{
	const char *s;

	CHECK_INT("hash.md5", vpp_hash("$1$saltsalt$9xy1btjgzLYfb7hivXtC//",
				       &s), VPP_PW_KEEP);
	CHECK_STR("hash.md5.name", s, "MD5-crypt");
	CHECK_INT("hash.sha512", vpp_hash("$6$saltstring$svn8UoSVapNtMuq1ukKS"
					  "4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJ"
					  "uesI68u4OTLiBFdcbYEdFCoEOfaS35in"
					  "z1", &s), VPP_PW_KEEP);
	CHECK_INT("hash.empty", vpp_hash("", &s), VPP_PW_EMPTY);
	CHECK_INT("hash.des", vpp_hash("abJnggxhB/yWI", &s), VPP_PW_OTHER);
	CHECK_STR("hash.des.name", s, "DES-crypt");
	CHECK_INT("hash.sha256", vpp_hash("$5$salt$abcdefghijklmnopqrstu",
					  &s), VPP_PW_OTHER);
	CHECK_STR("hash.sha256.name", s, "SHA-256-crypt");
	CHECK_INT("hash.bcrypt", vpp_hash("$2y$10$abcdefghijklmnopqrstuv",
					  &s), VPP_PW_OTHER);
	CHECK_STR("hash.bcrypt.name", s, "bcrypt");
	CHECK_INT("hash.cleartext", vpp_hash("secret", &s), VPP_PW_OTHER);
	CHECK_STR("hash.cleartext.name", s, "unknown");
	CHECK_INT("hash.md5.damaged", vpp_hash("$1$x y", &s), VPP_PW_OTHER);
}

/* test_rel - the part below the domain's directory; traversal refused */
static void test_rel(void)
{
	struct str r = STR_INIT;

	CHECK_INT("rel.plain", vpp_rel("/home/vpopmail/domains/e.test/bob",
				       "domains/e.test", &r), 0);
	CHECK_STR("rel.plain.value", r.s, "bob");
	CHECK_INT("rel.hashed", vpp_rel("/var/vpopmail/domains/e.test/0/bob/",
					"domains/e.test", &r), 0);
	CHECK_STR("rel.hashed.value", r.s, "0/bob");
	CHECK_INT("rel.bucket", vpp_rel("/h/domains/3/e.test/al/Maildir/",
					"domains/3/e.test", &r), 0);
	CHECK_STR("rel.bucket.value", r.s, "al/Maildir");
	CHECK_INT("rel.dotdot", vpp_rel("/h/domains/e.test/../../../etc",
					"domains/e.test", &r), -EINVAL);
	CHECK_INT("rel.dotdot_end", vpp_rel("/h/domains/e.test/bob/..",
					    "domains/e.test", &r), -EINVAL);
	CHECK_INT("rel.dot", vpp_rel("/h/domains/e.test/./bob",
				     "domains/e.test", &r), -EINVAL);
	CHECK_INT("rel.double_slash", vpp_rel("/h/domains/e.test//bob",
					      "domains/e.test", &r), -EINVAL);
	CHECK_INT("rel.outside", vpp_rel("/etc/passwd", "domains/e.test", &r),
		  -ENOENT);
	CHECK_INT("rel.other_domain", vpp_rel("/h/domains/f.test/bob",
					      "domains/e.test", &r), -ENOENT);
	/* a longer name that ends like the domain is another domain */
	CHECK_INT("rel.suffix", vpp_rel("/h/domains/xe.test/bob",
					"domains/e.test", &r), -ENOENT);
	CHECK_INT("rel.domain_itself", vpp_rel("/h/domains/e.test/",
					       "domains/e.test", &r), -EINVAL);
	CHECK_INT("rel.control", vpp_rel("/h/domains/e.test/b\nob",
					 "domains/e.test", &r), -EINVAL);
	str_free(&r);
}

/* test_qmail_name - '.' is written ':'; the catch-all; extensions */
static void test_qmail_name(void)
{
	struct str l = STR_INIT;

	CHECK_INT("qname.alias", vpp_qmail_name(".qmail-info", &l),
		  VPP_Q_ALIAS);
	CHECK_STR("qname.alias.local", l.s, "info");
	CHECK_INT("qname.colon", vpp_qmail_name(".qmail-first:last", &l),
		  VPP_Q_ALIAS);
	CHECK_STR("qname.colon.local", l.s, "first.last");
	CHECK_INT("qname.default", vpp_qmail_name(".qmail-default", &l),
		  VPP_Q_DEFAULT);
	CHECK_INT("qname.ext", vpp_qmail_name(".qmail-list-default", &l),
		  VPP_Q_EXTDEFAULT);
	CHECK_STR("qname.ext.local", l.s, "list");
	CHECK_INT("qname.dash", vpp_qmail_name(".qmail-a-b", &l), VPP_Q_ALIAS);
	CHECK_STR("qname.dash.local", l.s, "a-b");
	CHECK_INT("qname.empty", vpp_qmail_name(".qmail-", &l), -EINVAL);
	CHECK_INT("qname.none", vpp_qmail_name(".qmail", &l), -EINVAL);
	CHECK_INT("qname.other", vpp_qmail_name("vpasswd", &l), -EINVAL);
	str_free(&l);
}

/* test_qmail_line - qmail's dot-qmail kinds */
static void test_qmail_line(void)
{
	static const struct {
		const char *in;
		int kind;
		const char *arg;
	} cases[] = {
		{"", VPP_L_SKIP, ""}, {"# note", VPP_L_SKIP, "# note"},
		{"|/usr/bin/prog a b", VPP_L_PROGRAM, "/usr/bin/prog a b"},
		{"| preline x\r", VPP_L_PROGRAM, " preline x"},
		{"&bob@e.test", VPP_L_ADDRESS, "bob@e.test"},
		{"bob@e.test  ", VPP_L_ADDRESS, "bob@e.test"},
		{"./Maildir/", VPP_L_MAILDIR, "./Maildir/"},
		{"/h/domains/e.test/bob/Maildir/", VPP_L_MAILDIR,
		 "/h/domains/e.test/bob/Maildir/"},
		{"/var/mail/bob", VPP_L_MBOX, "/var/mail/bob"},
		{"&", -EINVAL, ""},
	};
	char buf[128];
	char *arg;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(buf, sizeof buf, "%s", cases[i].in);
		CHECK_INT(tt_name("qline[%zu].kind", i),
			  vpp_qmail_line(buf, &arg), cases[i].kind);
		CHECK_STR(tt_name("qline[%zu].arg", i), arg, cases[i].arg);
	}
}

/* test_vdelivermail - the argument of vpopmail's .qmail-default */
static void test_vdelivermail(void)
{
	struct str a = STR_INIT;

	CHECK_INT("vdm.bounce", vpp_vdelivermail(" /home/vpopmail/bin/"
						 "vdelivermail '' "
						 "bounce-no-mailbox", &a), 0);
	CHECK_STR("vdm.bounce.arg", a.s, "bounce-no-mailbox");
	CHECK_INT("vdm.quoted", vpp_vdelivermail("vdelivermail \"\" "
						 "'pm@e.test'", &a), 0);
	CHECK_STR("vdm.quoted.arg", a.s, "pm@e.test");
	CHECK_INT("vdm.path", vpp_vdelivermail("/v/bin/vdelivermail '' "
					       "/h/domains/e.test/pm", &a), 0);
	CHECK_STR("vdm.path.arg", a.s, "/h/domains/e.test/pm");
	CHECK_INT("vdm.other", vpp_vdelivermail("/usr/bin/maildrop '' x", &a),
		  -EINVAL);
	CHECK_INT("vdm.two", vpp_vdelivermail("vdelivermail ''", &a),
		  -EINVAL);
	CHECK_INT("vdm.four", vpp_vdelivermail("vdelivermail '' a b", &a),
		  -EINVAL);
	CHECK_INT("vdm.unclosed", vpp_vdelivermail("vdelivermail '' 'a", &a),
		  -EINVAL);
	CHECK_INT("vdm.empty_arg", vpp_vdelivermail("vdelivermail '' ''", &a),
		  -EINVAL);
	str_free(&a);
}

/* test_assign - +NAME-:REAL:UID:GID:DIR:-:: */
static void test_assign(void)
{
	char l1[] = "+e.test-:e.test:89:89:/home/vpopmail/domains/e.test:-::";
	char l2[] = "+a.test-:e.test:89:89:/home/vpopmail/domains/e.test:-::\r";
	char l3[] = ".";
	char l4[] = "=bob:bob:1000:1000:/home/bob:::";
	char l5[] = "+e.test:e.test:89:89:/d:-::";
	char l6[] = "+e.test-:e.test:89";
	struct vpp_assign a;

	CHECK_INT("assign.real", vpp_assign(l1, &a), 1);
	CHECK_STR("assign.real.name", a.name, "e.test");
	CHECK_STR("assign.real.real", a.real, "e.test");
	CHECK_STR("assign.real.dir", a.dir, "/home/vpopmail/domains/e.test");
	CHECK_INT("assign.alias", vpp_assign(l2, &a), 1);
	CHECK_STR("assign.alias.name", a.name, "a.test");
	CHECK_STR("assign.alias.real", a.real, "e.test");
	CHECK_INT("assign.end", vpp_assign(l3, &a), 0);
	CHECK_INT("assign.user", vpp_assign(l4, &a), 0);
	CHECK_INT("assign.no_dash", vpp_assign(l5, &a), -EINVAL);
	CHECK_INT("assign.short", vpp_assign(l6, &a), -EINVAL);
}

/* test_valias - valias -s: ALIAS@DOMAIN -> LINE */
static void test_valias(void)
{
	char l1[] = "info@e.test -> &bob@e.test";
	char l2[] = "info@e.test -> /h/domains/e.test/bob/Maildir/\r";
	char l3[] = "";
	char l4[] = "info@e.test &bob@e.test";
	char l5[] = " -> x";
	char *al, *dest;

	CHECK_INT("valias.addr", vpp_valias(l1, &al, &dest), 1);
	CHECK_STR("valias.addr.alias", al, "info@e.test");
	CHECK_STR("valias.addr.dest", dest, "&bob@e.test");
	CHECK_INT("valias.maildir", vpp_valias(l2, &al, &dest), 1);
	CHECK_STR("valias.maildir.dest", dest,
		  "/h/domains/e.test/bob/Maildir/");
	CHECK_INT("valias.blank", vpp_valias(l3, &al, &dest), 0);
	CHECK_INT("valias.no_arrow", vpp_valias(l4, &al, &dest), -EINVAL);
	CHECK_INT("valias.no_alias", vpp_valias(l5, &al, &dest), -EINVAL);
}

/* test_maildirsize - vpopmail's maildirsize (its maildirquota.c writes
 * the limits, then "%ld %d" lines) as lib/mdquota reads it, so that
 * import-vpopmail can keep the file */
static void test_maildirsize(void)
{
	static const char f1[] = "2147483648S\n4096 1\n-1024 -1\n";
	static const char f2[] = "52428800S,1000C\n0 0\n";
	static const char f3[] = "1000C,10485760S\n1 1\n";
	struct mdq m;

	CHECK_INT("mds.bytes", mdq_parse(f1, strlen(f1), &m), 0);
	CHECK_U64("mds.bytes.limit", m.limit.bytes, 2147483648ull);
	CHECK_INT("mds.bytes.sum", m.bytes, 3072);
	CHECK_INT("mds.bytes.msgs", m.msgs, 0);
	CHECK_INT("mds.both", mdq_parse(f2, strlen(f2), &m), 0);
	CHECK_U64("mds.both.msgs", m.limit.msgs, 1000);
	CHECK_INT("mds.reversed", mdq_parse(f3, strlen(f3), &m), 0);
	CHECK_U64("mds.reversed.bytes", m.limit.bytes, 10485760);
}

int main(void)
{
	test_passwd();
	test_flags();
	test_quota();
	test_hash();
	test_rel();
	test_qmail_name();
	test_qmail_line();
	test_vdelivermail();
	test_assign();
	test_valias();
	test_maildirsize();
	return tt_exit();
}
