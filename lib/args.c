/*
 * args - shared options (see args.h).
 */
#include "args.h"
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "str.h"

/* args_root - take --root out of argv and return the root to use */
const char *args_root(int *argc, char **argv)
{
	const char *root = NULL;
	int i, j;

	for (i = 1; i < *argc && strcmp(argv[i], "--"); ) {
		int take = 0;

		if (!strcmp(argv[i], "--root")) {
			if (i + 1 >= *argc)
				return NULL;
			root = argv[i + 1];
			take = 2;
		} else if (!strncmp(argv[i], "--root=", 7)) {
			root = argv[i] + 7;
			take = 1;
		}
		if (!take) {
			i++;
			continue;
		}
		for (j = i; j + take <= *argc; j++)
			argv[j] = argv[j + take];
		*argc -= take;
	}
	if (root && !*root)
		return NULL;	/* "--root=" or "--root ''": no value */
	if (!root)
		root = getenv("FACTEUR_ROOT");
	if (!root || !*root)
		root = ROOT_DEFAULT;
	return root;
}

/* args_has_help - 1 when --help or -h is among the arguments (before --) */
int args_has_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

/* args_start - the root, or exit: 2 for a bare --root, 0 after --help */
const char *args_start(int *argc, char **argv, const char *usage)
{
	const char *root = args_root(argc, argv);

	if (!root)
		msg_usage(usage, "--root needs a directory");
	if (args_has_help(*argc, argv)) {
		fputs(usage, stdout);
		exit(0);
	}
	return root;
}

/* args_sibling - DIR/PROG, DIR being where this program's binary lies */
int args_sibling(struct str *out, const char *prog)
{
	size_t cap = 256;
	ssize_t n;
	char *slash;
	int r;

	for (;;) {
		out->len = 0;
		r = str_ready(out, cap);
		if (r < 0)
			return r;
		n = readlink("/proc/self/exe", out->s, cap);
		if (n < 0)
			return -errno;
		if ((size_t)n < cap)
			break;
		cap *= 2;
	}
	out->len = (size_t)n;
	out->s[n] = 0;
	slash = strrchr(out->s, '/');
	if (!slash)
		return -ENOENT;
	str_trunc(out, (size_t)(slash - out->s) + 1);
	return str_cats(out, prog);
}
