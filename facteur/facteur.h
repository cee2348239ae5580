/*
 * facteur.h - the pieces of the facteur program (see facteur.c).
 *
 * Each subcommand is one function that gets the root and the arguments
 * after the subcommand name (--root already taken out) and returns the
 * process exit status. The helpers below are shared between them:
 * cert.c makes the TLS certificate, runlog.c is the log sink
 * of `facteur run`. Functions that are not subcommands return 0 or a
 * negative errno code.
 */
#ifndef FACTEUR_FACTEUR_H
#define FACTEUR_FACTEUR_H

#include <sys/stat.h>
#include <sys/types.h>

#include "str.h"

/* exit codes, the same as vadmin's */
#define EX_DONE 0
#define EX_REFUSED 1
#define EX_USAGE 2
#define EX_TEMP 111

/* the directories of a root: path below ROOT and mode */
struct layout_dir {
	const char *path;
	mode_t mode;
};

extern const struct layout_dir layout_dirs[];
extern const size_t layout_count;

void usage_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_init(const char *root, int argc, char **argv);
int cmd_doctor(const char *root, int argc, char **argv);
int cmd_run(const char *root, int argc, char **argv);

/* run.c, shared with doctor.c so that both apply one rule: the services
 * `facteur run` starts (run_service(i), NULL past the last; each is taken
 * from this program's directory: args_sibling() in lib/args.h), and
 * whether root may run a file or directory (root's alone, not group- or
 * other-writable) */
const char *run_service(size_t i);
int run_trusted(const struct stat *st);

/* cert.c */
int cert_make(const char *dir, const char *host, int dev);
const char *cert_error(void);

/* runlog.c: ROOT/log/current with rotation, and a copy on stdout */
struct runlog {
	int fd;
	const char *root;
	uid_t uid;
	gid_t gid;
	int chown;
	int stdout_ok;
	struct str line;
};

int runlog_open(struct runlog *rl, const char *root, int chown, uid_t uid,
		gid_t gid);
int runlog_line(struct runlog *rl, const char *line, size_t len);
void runlog_say(struct runlog *rl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void runlog_child(struct runlog *rl, const char *prog, pid_t pid,
		  const char *line, size_t len);
void runlog_close(struct runlog *rl);

#endif
