/*
 * NAME
 *	mta-qread - list the queued messages and their recipients
 *
 * SYNOPSIS
 *	mta-qread [--root DIR]
 *
 * DESCRIPTION
 *	One line a message, oldest first: arrival date (UTC), #ID, size of
 *	the message in bytes, <sender>, and "(not yet preprocessed)" for a
 *	message still in queue/new/. Then one line a recipient, indented by
 *	a tab: local or remote, the address, and its state:
 *
 *	  done                          delivered
 *	  failed: TEXT                  failed for good; in the bounce
 *	  pending, next try DATE, try N [: last error TEXT]
 *
 *	The words follow qmail-qread's ("remote", "local", "done"); the
 *	state and error columns are Facteur's. Local means the domain is in
 *	control/assign.cdb, as mta-send decides.
 *
 * SECURITY
 *	Read-only. Started as root it becomes the mail user first.
 *
 * EXIT STATUS
 *	0 listed, 2 usage, 111 the queue could not be read. A message file
 *	that cannot be read is listed as damaged and does not stop the list.
 *
 * SEE ALSO
 *	mta-qstat(8), mta-send(8), docs/queue.md
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "args.h"
#include "msg.h"
#include "priv.h"
#include "qstatus.h"
#include "queue.h"
#include "str.h"

static const char usage_text[] = "usage: mta-qread [--root DIR]\n";

struct ent {
	char *id;
	char *path;
	int fresh;
};

static int by_id(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	size_t lx = strcspn(x->id, "."), ly = strcspn(y->id, ".");

	/* arrival times in hex: the shorter is the older */
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int add_dir(const char *dir, int fresh, struct ent **v, size_t *n,
		   size_t *cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		uint64_t a, ino;
		struct str p = STR_INIT;

		if (queue_id_parse(de->d_name, &a, &ino) < 0)
			continue;
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 256;
			struct ent *nv = realloc(*v, c * sizeof *nv);

			if (!nv) {
				closedir(d);
				return -ENOMEM;
			}
			*v = nv;
			*cap = c;
		}
		if (str_catf(&p, "%s/%s", dir, de->d_name) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		(*v)[*n].path = p.s;
		(*v)[*n].id = strdup(de->d_name);
		(*v)[*n].fresh = fresh;
		if (!(*v)[*n].id) {
			free(p.s);
			closedir(d);
			return -ENOMEM;
		}
		(*n)++;
	}
	closedir(d);
	return 0;
}

static void date(char *out, size_t cap, uint64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, cap, "?");
}

static void show(const char *root, const struct ent *e)
{
	struct qenv env;
	struct qrcpt *q = NULL;
	struct str sp = STR_INIT;
	char when[64];
	off_t off;
	uint64_t len, a, ino;
	size_t i, k;
	int fd, r;

	qenv_init(&env);
	fd = open(e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	r = fd < 0 ? -errno : queue_read_env(fd, &env, &off, &len);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		(void)queue_id_parse(e->id, &a, &ino);
		date(when, sizeof when, a);
		printf("%s  #%s  damaged: %s (mta-send --check --repair "
		       "moves it aside)\n", when, e->id, msg_err(r));
		qenv_free(&env);
		return;
	}
	date(when, sizeof when, env.arrival_us);
	printf("%s  #%s  %llu  <%s>%s\n", when, e->id,
	       (unsigned long long)len, str_cstr(&env.sender),
	       e->fresh ? "  (not yet preprocessed)" : "");
	q = calloc(env.nrcpts, sizeof *q);
	if (q && str_catf(&sp, "%s.s", e->path) == 0)
		(void)qstatus_read(sp.s, q, env.nrcpts);
	for (i = 0, k = 0; i < env.nrcpts; i++) {
		const char *addr = env.rcpts.s + k;
		const char *where = acct_local(root, addr) == 1 ? "local" : "remote";

		k += strlen(addr) + 1;
		if (q && q[i].state == QS_DONE) {
			printf("\t%s\t%s\tdone\n", where, addr);
		} else if (q && q[i].state == QS_FAILED) {
			printf("\t%s\t%s\tfailed: %s\n", where, addr,
			       str_cstr(&q[i].text));
		} else {
			date(when, sizeof when, q && q[i].next_us ?
			     q[i].next_us : env.arrival_us);
			printf("\t%s\t%s\tpending, next try %s, try %u", where,
			       addr, q && q[i].next_us ? when : "now",
			       (q ? q[i].tries : 0) + 1);
			if (q && q[i].tries)
				printf(": last error %s", str_cstr(&q[i].text));
			printf("\n");
		}
	}
	if (q)
		qrcpt_free(q, env.nrcpts);
	free(q);
	str_free(&sp);
	qenv_free(&env);
}

int main(int argc, char **argv)
{
	struct str p = STR_INIT;
	struct ent *v = NULL;
	size_t n = 0, cap = 0, i;
	const char *root;
	unsigned h;
	int r;

	msg_init(argv[0]);
	root = args_start(&argc, argv, usage_text);
	if (argc > 1)
		msg_usage(usage_text, "unexpected argument %s", argv[1]);
	priv_start(root);
	if (str_catf(&p, "%s/queue/new", root) < 0)
		msg_die(111, "out of memory");
	r = add_dir(p.s, 1, &v, &n, &cap);
	for (h = 0; r == 0 && h < 256; h++) {
		p.len = 0;
		if (str_catf(&p, "%s/queue/msg/%02x", root, h) < 0)
			msg_die(111, "out of memory");
		r = add_dir(p.s, 0, &v, &n, &cap);
	}
	if (r < 0)
		msg_die(111, "cannot read %s: %s", p.s, msg_err(r));
	qsort(v, n, sizeof *v, by_id);
	for (i = 0; i < n; i++) {
		show(root, &v[i]);
		free(v[i].id);
		free(v[i].path);
	}
	free(v);
	str_free(&p);
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_die(111, "cannot write the list: %s", strerror(errno));
	return 0;
}
