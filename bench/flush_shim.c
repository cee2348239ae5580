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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fsync(int fd);
int fdatasync(int fd);

/* mode - 'd' (directories skipped), 'n' (every flush skipped) or 0 */
static int mode(void)
{
	const char *m = getenv("FLUSH_SHIM");

	if (m && !strcmp(m, "dirs"))
		return 'd';
	if (m && !strcmp(m, "none"))
		return 'n';
	return 0;
}

int fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	struct stat st;
	int m = mode();

	if (m == 'n' || (m == 'd' && fstat(fd, &st) == 0 &&
			 S_ISDIR(st.st_mode)))
		return 0;
	return real ? real(fd) : -1;
}

int fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	if (mode() == 'n')
		return 0;
	return real ? real(fd) : -1;
}
