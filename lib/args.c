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

/* step - how many words at argv[i] are options: 0 when argv[i] ends them
 * ("--", or an envelope program's first operand), 2 for --root or a short
 * option of VALUED and its value, else 1. VALUED NULL: a command program
 * (args.h) */
static int step(int argc, char **argv, int i, const char *valued)
{
	const char *a = argv[i];

	if (!strcmp(a, "--"))
		return 0;
	/* its value is a directory, never an option ("--root -h") */
	if (!strcmp(a, "--root") && i + 1 < argc)
		return 2;
	if (!valued)
		return 1;
	if (a[0] != '-' || !a[1])
		return 0;
	if (a[1] != '-' && !a[2] && strchr(valued, a[1]) && i + 1 < argc)
		return 2;
	return 1;
}

/* canonical - as root, the root's real path when it exists: a program
 * started as root drops to the mail user before it touches the root, and
 * the path it was given may pass through a directory only root can enter
 * (a link ./run-root in a clone in root's 0700 home, made by make run to
 * a root outside it). Kept for the life of the program */
static const char *canonical(const char *root)
{
	static char *real;

	if (geteuid() != 0)
		return root;
	free(real);
	real = realpath(root, NULL);
	return real ? real : root;
}

/* root_scan - take --root out of the options part of argv; the root */
static const char *root_scan(int *argc, char **argv, const char *valued)
{
	const char *root = NULL;
	int i, j, n;

	for (i = 1; i < *argc && (n = step(*argc, argv, i, valued)); ) {
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
			i += n;
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
	return canonical(root);
}

/* help_scan - 1 when --help or -h is among the options */
static int help_scan(int argc, char **argv, const char *valued)
{
	int i, n;

	for (i = 1; i < argc && (n = step(argc, argv, i, valued)); i += n)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

/* start - the root, or exit: 2 for a bare --root, 0 after --help */
static const char *start(int *argc, char **argv, const char *usage,
			 const char *valued)
{
	const char *root = root_scan(argc, argv, valued);

	if (!root)
		msg_usage(usage, "--root needs a directory");
	if (help_scan(*argc, argv, valued)) {
		fputs(usage, stdout);
		exit(0);
	}
	return root;
}

/* the command programs' forms: only "--" ends the options */
const char *args_root(int *argc, char **argv)
{
	return root_scan(argc, argv, NULL);
}

int args_has_help(int argc, char **argv)
{
	return help_scan(argc, argv, NULL);
}

const char *args_start(int *argc, char **argv, const char *usage)
{
	return start(argc, argv, usage, NULL);
}

/* the envelope programs' forms: the first operand ends the options too */
const char *args_root_env(int *argc, char **argv, const char *valued)
{
	return root_scan(argc, argv, valued ? valued : "");
}

int args_has_help_env(int argc, char **argv, const char *valued)
{
	return help_scan(argc, argv, valued ? valued : "");
}

const char *args_start_env(int *argc, char **argv, const char *usage,
			   const char *valued)
{
	return start(argc, argv, usage, valued ? valued : "");
}

/* args_sender_opt - "-fSENDER" as one word, "-f<>" for the null sender
 * (a bare "-f" would take the next word as its value) */
int args_sender_opt(struct str *out, const char *sender)
{
	out->len = 0;
	return str_catf(out, "-f%s", *sender ? sender : "<>");
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
