/*
 * fuzz_args - libFuzzer target for the option scanners of lib/args.c.
 *
 * The input is an argument vector, its words separated by NUL bytes. For
 * an envelope program (args_root_env with "f" as the valued option) the
 * words after the end of the options (the first operand, "--", past the
 * value of -f) are envelope values: whatever they say, none may be taken
 * out of argv or chosen as the root, and --help among them is not help.
 * For a command program (args_root) nothing after "--" may be. Both keep
 * argv NULL-terminated and never grow it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

#define WORDS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_help(const char *w)
{
	return !strcmp(w, "--help") || !strcmp(w, "-h");
}

/* has_value - an option that takes the next word as its value */
static int has_value(const char *w, int env)
{
	return !strcmp(w, "--root") || (env && !strcmp(w, "-f"));
}

/* model_env - where an envelope program's options end, said plainly;
 * *help: one of the options (not an option's value) asks for help */
static int model_env(int argc, char **argv, int *help)
{
	int i = 1;

	*help = 0;
	while (i < argc && strcmp(argv[i], "--") &&
	       argv[i][0] == '-' && argv[i][1]) {
		*help |= is_help(argv[i]);
		i += has_value(argv[i], 1) && i + 1 < argc ? 2 : 1;
	}
	return i;
}

static int model_cmd(int argc, char **argv)
{
	int i = 1;

	while (i < argc && strcmp(argv[i], "--"))
		i += has_value(argv[i], 0) && i + 1 < argc ? 2 : 1;
	return i;
}

/* check - run one scanner on a copy of argv; the words from the model's
 * end of options on must come out as they went in */
static void check(char **words, int n, int env)
{
	char *argv[WORDS_MAX + 2], *tail[WORDS_MAX + 2];
	int argc = n + 1, end, ntail, i, help;
	const char *root;

	argv[0] = "prog";
	for (i = 0; i < n; i++)
		argv[i + 1] = words[i];
	argv[argc] = NULL;
	end = env ? model_env(argc, argv, &help) : model_cmd(argc, argv);
	ntail = argc - end;
	memcpy(tail, argv + end, sizeof *tail * (size_t)(ntail + 1));
	/* --help as an address or a sender is never help */
	if (env && args_has_help_env(argc, argv, "f") != help)
		abort();
	root = env ? args_root_env(&argc, argv, "f") : args_root(&argc, argv);
	if (argc > n + 1 || argv[argc] != NULL || argc < ntail + 1)
		abort();
	for (i = 0; i < ntail; i++) {
		if (argv[argc - ntail + i] != tail[i])
			abort();
		if (root && root == tail[i] + 7 &&
		    !strncmp(tail[i], "--root=", 7))
			abort();
		if (root && root == tail[i])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *words[WORDS_MAX];
	size_t i, start = 0;
	int n = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	for (i = 0; i <= size && n < WORDS_MAX; i++)
		if (buf[i] == 0) {
			words[n++] = buf + start;
			start = i + 1;
		}
	check(words, n, 1);
	check(words, n, 0);
	free(buf);
	return 0;
}
