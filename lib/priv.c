/*
 * priv - running as the mail user (see priv.h).
 */
#include "priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "ctl.h"
#include "str.h"

/* priv_mailuser - uid and gid of control/mailuser */
int priv_mailuser(const char *root, uid_t *uid_r, gid_t *gid_r)
{
	struct str name = STR_INIT;
	struct passwd *pw;
	int r = ctl_get(root, "mailuser", MAILUSER_DEFAULT, &name);

	if (r < 0)
		return r;
	errno = 0;
	pw = getpwnam(name.s);
	if (!pw)
		r = errno ? -errno : -ENOENT;
	else {
		*uid_r = pw->pw_uid;
		*gid_r = pw->pw_gid;
	}
	str_free(&name);
	return r;
}

/* priv_drop - become uid/gid for good, each step checked */
int priv_drop(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;

	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -errno;
	if (getresuid(&ru, &eu, &su) < 0)
		return -errno;
	if (ru != uid || eu != uid || su != uid)
		return -EPERM;
	if (uid != 0 && setuid(0) == 0)
		return -EPERM;
	return 0;
}

/* priv_become_mailuser - as root, drop to the mail user; else do nothing */
int priv_become_mailuser(const char *root)
{
	uid_t uid;
	gid_t gid;
	int r;

	if (geteuid() != 0)
		return 0;
	r = priv_mailuser(root, &uid, &gid);
	if (r < 0)
		return r;
	/* control/ belongs to the mail user: it must not talk root into
	 * staying root by naming it */
	if (uid == 0)
		return -EPERM;
	return priv_drop(uid, gid);
}
