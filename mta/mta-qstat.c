/*
 * NAME
 *	mta-qstat - how many messages the queue holds
 *
 * SYNOPSIS
 *	mta-qstat [--root DIR]
 *
 * DESCRIPTION
 *	Prints "messages in queue: N" and "messages in queue but not yet
 *	preprocessed: M", as qmail-qstat did. M counts queue/new/ (injected,
 *	not yet taken by mta-send); N adds the preprocessed messages of
 *	queue/msg/??/ (docs/queue.md). While mta-send runs, the number of
 *	those is the one it keeps in queue/stat (at most 0.1 s old), so that
 *	a million queued messages are not counted one by one; otherwise it
 *	counts the directory entries. It reads no message.
 *
 * SECURITY
 *	Read-only. Started as root it becomes the mail user first.
 *
 * EXIT STATUS
 *	0 printed, 2 usage, 111 the queue could not be read.
 *
 * SEE ALSO
 *	docs/queue.md, mta-inject(8)
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "args.h"
#include "fsx.h"
#include "msg.h"
#include "num.h"
#include "priv.h"
#include "queue.h"
#include "str.h"

static const char usage_text[] = "usage: mta-qstat [--root DIR]\n";

/* count - message files of a directory (-1: error); status files and
 * stray names are not messages */
static long count(const char *dir, int missing_ok)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	long n = 0;

	if (!d)
		return errno == ENOENT && missing_ok ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		uint64_t a, ino;

		if (queue_id_parse(de->d_name, &a, &ino) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* kept - the count mta-send keeps in queue/stat, if it is running */
static long kept(const char *root)
{
	struct str p = STR_INIT, v = STR_INIT;
	uint64_t pid, k;
	size_t a, b;
	long n = -1;

	/* "PID COUNT\n" */
	if (str_catf(&p, "%s/queue/stat", root) == 0 &&
	    fsx_read_file(p.s, &v, 100) == 0 &&
	    num_scan(v.s, v.len, INT_MAX, &pid, &a) == 0 && pid > 0 &&
	    a < v.len && v.s[a] == ' ' &&
	    num_scan(v.s + a + 1, v.len - a - 1, LONG_MAX, &k, &b) == 0 &&
	    a + 1 + b < v.len && v.s[a + 1 + b] == '\n' &&
	    (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		n = (long)k;
	str_free(&p);
	str_free(&v);
	return n;
}

int main(int argc, char **argv)
{
	struct str p = STR_INIT;
	const char *root;
	long fresh, done = 0, n;
	int counting;
	unsigned h;

	msg_init(argv[0]);
	root = args_start(&argc, argv, usage_text);
	if (argc > 1)
		msg_usage(usage_text, "unexpected argument %s", argv[1]);
	priv_start(root);
	if (str_catf(&p, "%s/queue/new", root))
		msg_die(111, "out of memory");
	fresh = count(p.s, 0);
	if (fresh < 0)
		msg_die(111, "cannot read %s: %s", p.s, strerror(errno));
	done = kept(root);
	counting = done < 0;
	if (counting)
		done = 0;
	for (h = 0; counting && h < 256; h++) {
		p.len = 0;
		if (str_catf(&p, "%s/queue/msg/%02x", root, h))
			msg_die(111, "out of memory");
		n = count(p.s, 1);
		if (n < 0)
			msg_die(111, "cannot read %s: %s", p.s, strerror(errno));
		done += n;
	}
	printf("messages in queue: %ld\n", fresh + done);
	printf("messages in queue but not yet preprocessed: %ld\n", fresh);
	str_free(&p);
	return 0;
}
