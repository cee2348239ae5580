/*
 * priv - running as the mail user (see priv.h).
 */
#include "priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "msg.h"
#include "str.h"

/* owns_queue - uid is queue/'s owner, or the root has no queue/ yet.
 * control/ is the mail user's, so control/mailuser could name any user;
 * only root can give queue/ away (facteur init does, to the real mail
 * user), so the owner of queue/ is what the file must agree with */
static int owns_queue(const char *root, uid_t uid)
{
	struct str path = STR_INIT;
	struct stat st;
	int ok = 0;

	if (str_catf(&path, "%s/queue", root) < 0)
		return 0;
	if (lstat(path.s, &st) == 0)
		ok = st.st_uid == uid;
	else
		ok = errno == ENOENT;
	str_free(&path);
	return ok;
}

/* priv_mailuser - uid and gid of control/mailuser: -EPERM when it names
 * uid 0, gid 0 or a user that does not own queue/ */
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
	else if (pw->pw_uid == 0 || pw->pw_gid == 0 ||
		 !owns_queue(root, pw->pw_uid))
		r = -EPERM;
	else {
		*uid_r = pw->pw_uid;
		*gid_r = pw->pw_gid;
	}
	str_free(&name);
	return r;
}

/* priv_error - what a failure of priv_mailuser() or
 * priv_become_mailuser() means to the administrator, said once for all */
const char *priv_error(int r)
{
	if (r == -ENOENT)
		return "the user named in control/mailuser does not exist; "
		       "run 'facteur init' as root or fix the file";
	if (r == -EPERM)
		return "control/mailuser names a user with uid 0 or gid 0, or "
		       "one that does not own queue/; name the mail user that "
		       "facteur init made there (facteur)";
	return msg_err(r);
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

/* priv_start - see priv.h */
void priv_start(const char *root)
{
	int r = priv_become_mailuser(root);

	if (r < 0)
		msg_die(111, "cannot become the mail user of %s: %s", root,
			priv_error(r));
	if (geteuid() == 0 || getuid() == 0)
		msg_die(111, "still root after dropping privileges; refusing "
			"to go on");
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
	return priv_drop(uid, gid);
}
