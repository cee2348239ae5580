/*
 * NAME
 *	flush_shim.so - an LD_PRELOAD library for bench/flush_bound.py only
 *
 * DESCRIPTION
 *	Measures what the disk's cache flushes cost Facteur by taking some of
 *	them away; it gives up durability and is never a way to run Facteur.
 *	FLUSH_SHIM=dirs: fsync(2) of a directory returns 0 at once (files are
 *	still synced, their names are not: the durability Postfix has, whose
 *	programs fsync their files and no directory). FLUSH_SHIM=none: fsync
 *	and fdatasync return 0 at once (no flush at all). Unset or anything
 *	else: the real calls.
 *
 * SEE ALSO
 *	bench/flush_bound.py, docs/performance.md ("What the flushes cost at
 *	one session")
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fsync(int fd);
int fdatasync(int fd);

/* mode - 'd' (directories skipped), 'n' (every flush skipped) or 0;
 * read once */
static int mode(void)
{
	static int m = -1;
	const char *e;

	if (m >= 0)
		return m;
	e = getenv("FLUSH_SHIM");
	m = e && !strcmp(e, "dirs") ? 'd' : e && !strcmp(e, "none") ? 'n' : 0;
	return m;
}

/* call_next - the C library's NAME, looked up once by the caller */
static int call_next(int (**real)(int), const char *name, int fd)
{
	if (!*real)
		*real = (int (*)(int))dlsym(RTLD_NEXT, name);
	if (!*real) {
		errno = ENOSYS;
		return -1;
	}
	return (*real)(fd);
}

int fsync(int fd)
{
	static int (*real)(int);
	struct stat st;
	int m = mode();

	if (m == 'n' || (m == 'd' && fstat(fd, &st) == 0 &&
			 S_ISDIR(st.st_mode)))
		return 0;
	return call_next(&real, "fsync", fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);

	if (mode() == 'n')
		return 0;
	return call_next(&real, "fdatasync", fd);
}
