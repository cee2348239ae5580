/*
 * args - the options every program shares.
 *
 * args_root() removes "--root DIR" or "--root=DIR" from anywhere in argv
 * (before "--"), so it may come before or after a subcommand, and returns
 * the root: the flag, else $FACTEUR_ROOT, else /var/facteur. It returns
 * NULL when --root has no value. args_start() does both checks every
 * program makes first: --root without a value exits 2 with the usage,
 * --help prints the usage and exits 0; it returns the root.
 * args_sibling() names another Facteur program in the directory this one
 * was started from, so that a build tree and an install run their own.
 */
#ifndef FACTEUR_ARGS_H
#define FACTEUR_ARGS_H

#define ROOT_DEFAULT "/var/facteur"

const char *args_root(int *argc, char **argv);
int args_has_help(int argc, char **argv);
const char *args_start(int *argc, char **argv, const char *usage);

struct str;
int args_sibling(struct str *out, const char *prog);

#endif
