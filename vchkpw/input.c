/*
 * input - vchkpw's input and the userdb fields it gives (see vchkpw.h).
 *
 * @UNSAFE: splits the input on NULs with explicit lengths.
 */
#include "vchkpw.h"

#include <errno.h>
#include <string.h>

#include "acct.h"
#include "fsx.h"
#include "login.h"

/* USER, PASSWORD and a timestamp of 20 digits, each with its NUL */
_Static_assert(LOGIN_ADDR_MAX + PW_MAX + 20 + 3 <= CPW_MAX,
	       "checkpassword's input carries any password vadmin stores");

/* cpw_read - descriptor FD to its end, at most CPW_MAX bytes */
int cpw_read(int fd, struct str *out)
{
	int r = fsx_read_fd(fd, out, CPW_MAX);

	return r == -EFBIG ? -EMSGSIZE : r;
}

/* cpw_parse - USER \0 PASSWORD \0 [TIMESTAMP \0] */
int cpw_parse(const char *buf, size_t len, struct cpw_in *in)
{
	const char *u, *p;

	if (len > CPW_MAX)
		return -EMSGSIZE;
	u = memchr(buf, 0, len);
	if (!u)
		return -EINVAL;
	p = memchr(u + 1, 0, len - (size_t)(u + 1 - buf));
	if (!p)
		return -EINVAL;
	in->user = buf;
	in->ulen = (size_t)(u - buf);
	in->pass = u + 1;
	return 0;
}

/* cpw_deny - the flag that shuts SERVICE out: SMTP AUTH has its own,
 * every way into a mailbox obeys the POP one (docs/imap.md) */
unsigned long cpw_deny(const char *service)
{
	if (service && (!strcmp(service, "smtp") ||
			!strcmp(service, "submission")))
		return ACCT_NOSMTP;
	return ACCT_NOPOP;
}

/* clean - an absolute path without control bytes */
static int clean(const char *s)
{
	if (*s != '/')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* cpw_userdb - home, mail location and quota rule of an account */
int cpw_userdb(const char *root, const struct login *l,
	       struct cpw_userdb *u)
{
	const char *md = l->maildir.s;
	size_t n = l->maildir.len;
	int r;

	/* vadmin's layout: domains/D/U/Maildir, the home being D/U */
	if (!clean(root) || n < 8 || strcmp(md + n - 8, "/Maildir"))
		return -EINVAL;
	str_trunc(&u->home, 0);
	str_trunc(&u->mail, 0);
	str_trunc(&u->quota, 0);
	r = str_catf(&u->home, "%s/%.*s", root, (int)(n - 8), md);
	if (!r)
		r = str_catf(&u->mail, "maildir:%s/%s", root, md);
	if (!r)
		r = str_cats(&u->quota, "*:bytes=");
	if (!r)
		r = str_catu(&u->quota, l->quota.bytes);
	if (!r && l->quota.msgs)
		r = str_cats(&u->quota, ":messages=") ||
		    str_catu(&u->quota, l->quota.msgs);
	return r ? -ENOMEM : 0;
}

/* cpw_userdb_free - release the fields */
void cpw_userdb_free(struct cpw_userdb *u)
{
	str_free(&u->home);
	str_free(&u->mail);
	str_free(&u->quota);
}
