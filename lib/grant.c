/*
 * grant - the POP-before-SMTP grant of a login (see grant.h).
 */
#include "grant.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer.h"
#include "str.h"

/* grant_path - ROOT/open-smtp/IP for an address in its one spelling:
 * never "../x", never a second name for one client */
static int grant_path(const char *root, const char *ip, struct str *p)
{
	char norm[PEER_TEXT_MAX];

	if (peer_parse(ip, norm, sizeof norm) < 0 || strcmp(norm, ip))
		return -EINVAL;
	return str_catf(p, "%s/open-smtp/%s", root, ip) ? -ENOMEM : 0;
}

/* create - a new empty grant, its mtime ts (NULL: now) */
static int create(const char *path, const struct timespec *ts)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
		      O_NONBLOCK, 0600), r = 0;

	if (fd < 0)
		return -errno;
	if (ts && futimens(fd, ts) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* grant_touch - open-smtp/IP, created or its mtime set to now */
int grant_touch(const char *root, const char *ip)
{
	struct str p = STR_INIT;
	int r;

	if (!*ip)
		return 0;
	r = grant_path(root, ip, &p);
	if (r == 0 && utimensat(AT_FDCWD, p.s, NULL, AT_SYMLINK_NOFOLLOW) < 0)
		r = errno == ENOENT ? create(p.s, NULL) : -errno;
	str_free(&p);
	return r;
}

/* grant_age - the mtime of open-smtp/IP */
int grant_age(const char *root, const char *ip, time_t *at_r)
{
	struct str p = STR_INIT;
	struct stat st;
	int r = *ip ? grant_path(root, ip, &p) : -ENOENT;

	if (r == 0 && lstat(p.s, &st) < 0)
		r = -errno;
	else if (r == 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	else if (r == 0)
		*at_r = st.st_mtime;
	str_free(&p);
	return r;
}

/* grant_set - open-smtp/IP as new as AT, never older than it was: 1 when
 * changed (a login elsewhere, vadmin share) */
int grant_set(const char *root, const char *ip, time_t at)
{
	struct timespec ts[2] = {{at, 0}, {at, 0}};
	struct str p = STR_INIT;
	time_t was;
	int r;

	if (!*ip)
		return 0;
	r = grant_age(root, ip, &was);
	if (r == 0 && was >= at)
		return 0;
	if (r == 0 || r == -ENOENT)
		r = grant_path(root, ip, &p);
	if (r == 0 && utimensat(AT_FDCWD, p.s, ts, AT_SYMLINK_NOFOLLOW) < 0)
		r = errno == ENOENT ? create(p.s, ts) : -errno;
	str_free(&p);
	return r < 0 ? r : 1;
}

/* grant_live - see grant.h */
int grant_live(int64_t at, unsigned long life, int64_t now)
{
	return now - at < (int64_t)life;
}
