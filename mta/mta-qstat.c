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
 *	queue/msg/??/ (docs/queue.md). It counts directory entries and reads
 *	no message.
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
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "msg.h"
#include "priv.h"
#include "str.h"

static const char usage_text[] = "usage: mta-qstat [--root DIR]\n";

/* count - entries of a directory that do not start with '.' (-1: error) */
static long count(const char *dir, int missing_ok)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	long n = 0;

	if (!d)
		return errno == ENOENT && missing_ok ? 0 : -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	struct str p = STR_INIT;
	const char *root;
	long fresh, done = 0, n;
	unsigned h;
	int r;

	msg_init(argv[0]);
	root = args_start(&argc, argv, usage_text);
	if (argc > 1)
		msg_usage(usage_text, "unexpected argument %s", argv[1]);
	r = priv_become_mailuser(root);
	if (r < 0)
		msg_die(111, "cannot become the mail user: %s", msg_err(r));
	if (str_catf(&p, "%s/queue/new", root))
		msg_die(111, "out of memory");
	fresh = count(p.s, 0);
	if (fresh < 0)
		msg_die(111, "cannot read %s: %s", p.s, strerror(errno));
	for (h = 0; h < 256; h++) {
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
