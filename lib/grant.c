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

/* grant_touch - open-smtp/IP, created or its mtime set to now */
int grant_touch(const char *root, const char *ip)
{
	char norm[PEER_TEXT_MAX];
	struct str p = STR_INIT;
	int r = 0, fd;

	if (!*ip)
		return 0;
	/* only an address in its one spelling: never "../x", never a
	 * second name for one client */
	if (peer_parse(ip, norm, sizeof norm) < 0 || strcmp(norm, ip))
		return -EINVAL;
	if (str_catf(&p, "%s/open-smtp/%s", root, ip)) {
		str_free(&p);
		return -ENOMEM;
	}
	if (utimensat(AT_FDCWD, p.s, NULL, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			r = -errno;
		else if ((fd = open(p.s, O_WRONLY | O_CREAT | O_NOFOLLOW |
				    O_CLOEXEC | O_NONBLOCK, 0600)) < 0)
			r = -errno;
		else
			close(fd);
	}
	str_free(&p);
	return r;
}
