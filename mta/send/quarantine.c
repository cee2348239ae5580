/*
 * quarantine - moving what mta-send cannot use into queue/quarantine/, with
 * a log line saying why; never over a file (a numbered suffix), never
 * deleted. quarantine_file() is for drop/ entries, which their owners
 * control: one that has become a directory is put back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"
#include "send.h"

/* move_aside - move PATH into queue/quarantine/, never over a file; DST
 * is where it went */
static int move_aside(const char *root, const char *path, const char *why,
		      struct str *dst_out)
{
	struct str dst = STR_INIT;
	const char *base = strrchr(path, '/');
	unsigned k;
	int r = -EEXIST;

	base = base ? base + 1 : path;
	for (k = 0; r == -EEXIST && k < 1000; k++) {
		dst.len = 0;
		if (str_catf(&dst, "%s/queue/quarantine/%s", root, base) < 0 ||
		    (k && str_catf(&dst, ".%u", k) < 0)) {
			r = -ENOMEM;
			break;
		}
		r = renameat2(AT_FDCWD, path, AT_FDCWD, dst.s,
			      RENAME_NOREPLACE) < 0 ? -errno : 0;
		if (r == -ENOENT && access(path, F_OK) == 0) {
			struct str q = STR_INIT;

			if (str_catf(&q, "%s/queue/quarantine", root) == 0)
				(void)fsx_mkdir(q.s, 0700);
			str_free(&q);
			r = renameat2(AT_FDCWD, path, AT_FDCWD, dst.s,
				      RENAME_NOREPLACE) < 0 ? -errno : 0;
		}
	}
	if (r == 0)
		slog("quarantine %s: %s; moved to %s", path, why, dst.s);
	else
		slog("warning: cannot quarantine %s (%s): %s", path, why,
		     strerror(-r));
	str_free(dst_out);
	*dst_out = dst;
	return r;
}

/* quarantine - move PATH into queue/quarantine/, never over a file */
int quarantine(const char *root, const char *path, const char *why)
{
	struct str dst = STR_INIT;
	int r = move_aside(root, path, why, &dst);

	str_free(&dst);
	return r;
}

/* quarantine_file - quarantine() for a drop/ entry, which its owner may
 * swap for a directory of theirs between our look and the rename: one
 * that arrives as a directory goes back where it was (writable by all, it
 * would let its owner write inside queue/); -EISDIR then */
int quarantine_file(const char *root, const char *path, const char *why)
{
	struct str dst = STR_INIT;
	struct stat st;
	int r = move_aside(root, path, why, &dst);

	if (r == 0 && lstat(dst.s, &st) == 0 && S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		if (renameat2(AT_FDCWD, dst.s, AT_FDCWD, path,
			      RENAME_NOREPLACE) == 0)
			slog("warning: %s was a directory by the time it was "
			     "moved; put back", path);
		else
			slog("warning: %s was a directory by the time it was "
			     "moved, and cannot be put back: %s", dst.s,
			     strerror(errno));
	}
	str_free(&dst);
	return r;
}
