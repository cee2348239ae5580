/*
 * vpop - vadddomain, vadduser and the other vpopmail names.
 *
 * Each takes vpopmail's arguments and becomes one (or, for vmoduser, a
 * few) vadmin commands, so there is one implementation of every change.
 * Exit codes are Facteur's (SPEC.md), not vpopmail's. vpopmail options
 * that have no meaning here (uid/gid/directory placement, web-mail and
 * IMAP flags) are refused as unknown rather than silently ignored.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "vpop.h"

/* what getopt found: the values of -q -c -e -i -d, the flags -p -s -b
 * -x, and the operands */
struct vargs {
	const char *q, *name, *hash, *ins, *del;
	int p, s, b, x;
	char **a;
	int n;
};

struct vcmd;
typedef int (*vpop_fn)(struct vctx *c, const struct vcmd *v,
		       const struct vargs *g);

/* a vpopmail name: its flags, its usage, and the handler that turns its
 * arguments into vadmin commands */
struct vcmd {
	const char *name;
	const char *opts;	/* getopt string */
	const char *usage;
	const char *cmd;	/* the vadmin command it becomes, if one */
	vpop_fn run;
};

/* vusage - the error, the name's usage, exit 2 */
static _Noreturn void vusage(const struct vcmd *v, const char *why)
{
	fprintf(stderr, "%s: %s\n%s", v->name, why, v->usage);
	exit(EX_USAGE);
}

/* count - refuse other than N operands */
static void count(const struct vcmd *v, const struct vargs *g, int n)
{
	if (g->n != n)
		vusage(v, g->n < n ? "missing argument" : "too many arguments");
}

/* call - run one vadmin command given as a NULL-terminated list */
static int call(struct vctx *c, const char *const *args)
{
	char *av[16];
	int n = 0;

	av[n++] = (char *)"vadmin";
	while (*args && n < 15)
		av[n++] = (char *)*args++;
	av[n] = NULL;
	return vadmin_run(c, n, av);
}

/* vadddomain, vadduser, vpasswd: NAME [PASSWORD] and their flags */
static int run_password(struct vctx *c, const struct vcmd *v,
			const struct vargs *g)
{
	const char *args[12];
	int k = 0;

	if (g->n < 1 || g->n > 2 || (g->hash && g->n == 2))
		vusage(v, g->n < 1 ? "missing argument" : "too many arguments");
	args[k++] = v->cmd;
	args[k++] = g->a[0];
	if (g->n == 2)
		args[k++] = g->a[1];
	if (g->q) { args[k++] = "--quota"; args[k++] = g->q; }
	if (g->name) { args[k++] = "--name"; args[k++] = g->name; }
	if (g->hash) { args[k++] = "--hash"; args[k++] = g->hash; }
	args[k] = NULL;
	return call(c, args);
}

/* vdeldomain, vdeluser, vuserinfo: one operand */
static int run_one(struct vctx *c, const struct vcmd *v,
		   const struct vargs *g)
{
	const char *args[3] = {v->cmd, g->n == 1 ? g->a[0] : NULL, NULL};

	count(v, g, 1);
	return call(c, args);
}

static int run_dominfo(struct vctx *c, const struct vcmd *v,
		       const struct vargs *g)
{
	const char *args[3] = {v->cmd, g->n == 1 ? g->a[0] : NULL, NULL};

	if (g->n > 1)
		vusage(v, "too many arguments");
	return call(c, args);
}

static int run_setquota(struct vctx *c, const struct vcmd *v,
			const struct vargs *g)
{
	const char *args[4] = {v->cmd, NULL, NULL, NULL};

	count(v, g, 2);
	args[1] = g->a[0];
	args[2] = g->a[1];
	return call(c, args);
}

/* valias -i DEST ALIAS, -d ALIAS, or [-s] WHAT to show */
static int run_alias(struct vctx *c, const struct vcmd *v,
		     const struct vargs *g)
{
	if (g->ins) {
		const char *args[5] = {"alias", "add", NULL, g->ins, NULL};

		if (g->n != 1 || g->del)
			vusage(v, "-i takes DEST, then ALIAS@DOMAIN");
		args[2] = g->a[0];
		return call(c, args);
	}
	if (g->del) {
		const char *args[4] = {"alias", "del", g->del, NULL};

		if (g->n != 0)
			vusage(v, "too many arguments");
		return call(c, args);
	}
	/* -s (show) is the default */
	if (g->n != 1)
		vusage(v, "give a DOMAIN or ALIAS@DOMAIN to show");
	vopen(c, 0);
	show_aliases(c, g->a[0]);
	vclose(c);
	return EX_DONE;
}

/* vaddaliasdomain: the domain that exists is the real one */
static int run_aliasdomain(struct vctx *c, const struct vcmd *v,
			   const struct vargs *g)
{
	const char *args[5] = {"aliasdomain", "add", NULL, NULL, NULL};
	struct str d0 = STR_INIT, d1 = STR_INIT;
	int64_t first, second;

	count(v, g, 2);
	m_parse_domain(g->a[0], &d0);
	m_parse_domain(g->a[1], &d1);
	vopen(c, 0);
	first = m_domain_id(c, d0.s, NULL);
	second = m_domain_id(c, d1.s, NULL);
	vclose(c);
	str_free(&d0);
	str_free(&d1);
	args[2] = first && !second ? g->a[1] : g->a[0];
	args[3] = first && !second ? g->a[0] : g->a[1];
	return call(c, args);
}

/* vmoduser: -x first, then each -p -s -b, then -q; stops at a failure */
static int run_moduser(struct vctx *c, const struct vcmd *v,
		       const struct vargs *g)
{
	static const char *const svc[3] = {"pop", "smtp", "delivery"};
	const int on[3] = {g->p, g->s, g->b};
	const char *args[5] = {"moduser", NULL, "--disable", NULL, NULL};
	int r = EX_DONE, i;

	count(v, g, 1);
	if (!g->x && !g->p && !g->s && !g->b && !g->q)
		vusage(v, "nothing to change");
	args[1] = g->a[0];
	if (g->x) {
		const char *e[4] = {"moduser", g->a[0], "--enable", NULL};

		r = call(c, e);
	}
	for (i = 0; i < 3 && r == EX_DONE; i++) {
		if (!on[i])
			continue;
		args[3] = svc[i];
		r = call(c, args);
	}
	if (r == EX_DONE && g->q) {
		const char *sq[4] = {"setquota", g->a[0], g->q, NULL};

		r = call(c, sq);
	}
	return r;
}

static const struct vcmd cmds[] = {
	{"vadddomain", "q:", "usage: vadddomain [-q QUOTA] DOMAIN [PASSWORD]\n",
	 "adddomain", run_password},
	{"vdeldomain", "", "usage: vdeldomain DOMAIN\n", "deldomain", run_one},
	{"vadduser", "q:c:e:", "usage: vadduser [-q QUOTA] [-c NAME] "
	 "[-e HASH] USER@DOMAIN [PASSWORD]\n", "adduser", run_password},
	{"vdeluser", "", "usage: vdeluser USER@DOMAIN\n", "deluser", run_one},
	{"vpasswd", "e:", "usage: vpasswd [-e HASH] USER@DOMAIN [PASSWORD]\n",
	 "passwd", run_password},
	{"vsetuserquota", "", "usage: vsetuserquota USER@DOMAIN QUOTA\n",
	 "setquota", run_setquota},
	{"valias", "i:d:s", "usage: valias -i DEST ALIAS@DOMAIN | "
	 "valias -d ALIAS@DOMAIN | valias [-s] DOMAIN|ALIAS@DOMAIN\n", "alias",
	 run_alias},
	{"vuserinfo", "", "usage: vuserinfo USER@DOMAIN\n", "userinfo",
	 run_one},
	{"vdominfo", "", "usage: vdominfo [DOMAIN]\n", "dominfo", run_dominfo},
	{"vaddaliasdomain", "", "usage: vaddaliasdomain REAL_DOMAIN "
	 "ALIAS_DOMAIN (either order: the existing domain is the real one)\n",
	 "aliasdomain", run_aliasdomain},
	{"vmoduser", "psbxq:", "usage: vmoduser [-p] [-s] [-b] [-x] "
	 "[-q QUOTA] USER@DOMAIN\n"
	 "  -p disable POP3, -s disable SMTP AUTH, -b disable delivery,\n"
	 "  -x enable everything first, -q set the quota\n", "moduser",
	 run_moduser},
};

/* find - the entry of a vpopmail name, or NULL */
static const struct vcmd *find(const char *prog)
{
	size_t i;

	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(prog, cmds[i].name))
			return &cmds[i];
	return NULL;
}

/* vpop_is - whether argv[0] names a vpopmail command */
int vpop_is(const char *prog)
{
	return find(prog) != NULL;
}

/* long_opts - --help prints the usage; any other --word is unknown */
static int long_opts(const struct vcmd *v, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(v->usage, stdout);
			return 1;
		}
		if (!strncmp(argv[i], "--", 2)) {
			char why[80];

			snprintf(why, sizeof why, "unknown option %.60s", argv[i]);
			vusage(v, why);
		}
	}
	return 0;
}

/* short_opts - vpopmail's flags, by getopt */
static void short_opts(const struct vcmd *v, int argc, char **argv,
		       struct vargs *g)
{
	int ch;

	memset(g, 0, sizeof *g);
	opterr = 0;
	while ((ch = getopt(argc, argv, v->opts)) != -1) {
		switch (ch) {
		case 'q': g->q = optarg; break;
		case 'c': g->name = optarg; break;
		case 'e': g->hash = optarg; break;
		case 'i': g->ins = optarg; break;
		case 'd': g->del = optarg; break;
		case 's': g->s = 1; break; /* valias -s: show, the default */
		case 'p': g->p = 1; break;
		case 'b': g->b = 1; break;
		case 'x': g->x = 1; break;
		default: {
			char why[64];

			snprintf(why, sizeof why, "unknown option -%c", optopt);
			vusage(v, why);
		}
		}
	}
	g->a = argv + optind;
	g->n = argc - optind;
}

/* vpop_main - parse vpopmail's arguments and run the matching command */
int vpop_main(struct vctx *c, const char *prog, int argc, char **argv)
{
	const struct vcmd *v = find(prog);
	struct vargs g;

	if (long_opts(v, argc, argv))
		return EX_DONE;
	short_opts(v, argc, argv, &g);
	return v->run(c, v, &g);
}
