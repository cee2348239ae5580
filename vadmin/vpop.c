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

struct vcmd {
	const char *name;
	const char *opts;  /* getopt string */
	const char *usage;
};

static const struct vcmd cmds[] = {
	{"vadddomain", "q:", "usage: vadddomain [-q QUOTA] DOMAIN [PASSWORD]\n"},
	{"vdeldomain", "", "usage: vdeldomain DOMAIN\n"},
	{"vadduser", "q:c:e:", "usage: vadduser [-q QUOTA] [-c NAME] "
	 "[-e HASH] USER@DOMAIN [PASSWORD]\n"},
	{"vdeluser", "", "usage: vdeluser USER@DOMAIN\n"},
	{"vpasswd", "e:", "usage: vpasswd [-e HASH] USER@DOMAIN [PASSWORD]\n"},
	{"vsetuserquota", "", "usage: vsetuserquota USER@DOMAIN QUOTA\n"},
	{"valias", "i:d:s", "usage: valias -i DEST ALIAS@DOMAIN | "
	 "valias -d ALIAS@DOMAIN | valias [-s] DOMAIN|ALIAS@DOMAIN\n"},
	{"vuserinfo", "", "usage: vuserinfo USER@DOMAIN\n"},
	{"vdominfo", "", "usage: vdominfo [DOMAIN]\n"},
	{"vaddaliasdomain", "", "usage: vaddaliasdomain REAL_DOMAIN "
	 "ALIAS_DOMAIN (either order: the existing domain is the real one)\n"},
	{"vmoduser", "psbxq:", "usage: vmoduser [-p] [-s] [-b] [-x] "
	 "[-q QUOTA] USER@DOMAIN\n"
	 "  -p disable POP3, -s disable SMTP AUTH, -b disable delivery,\n"
	 "  -x enable everything first, -q set the quota\n"},
};

/* vpop_is - whether argv[0] names a vpopmail command */
int vpop_is(const char *prog)
{
	size_t i;

	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(prog, cmds[i].name))
			return 1;
	return 0;
}

static _Noreturn void vusage(const struct vcmd *v, const char *why)
{
	fprintf(stderr, "%s: %s\n%s", v->name, why, v->usage);
	exit(EX_USAGE);
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

/* vpop_main - parse vpopmail's arguments and run the matching command */
int vpop_main(struct vctx *c, const char *prog, int argc, char **argv)
{
	const struct vcmd *v = NULL;
	const char *q = NULL, *name = NULL, *hash = NULL, *ins = NULL;
	const char *del = NULL;
	int flags_p = 0, flags_s = 0, flags_b = 0, flags_x = 0, ch;
	size_t i;
	char **a;
	int n;

	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(prog, cmds[i].name))
			v = &cmds[i];
	for (i = 1; i < (size_t)argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(v->usage, stdout);
			return EX_DONE;
		}
		if (!strncmp(argv[i], "--", 2)) {
			char why[80];

			snprintf(why, sizeof why, "unknown option %.60s", argv[i]);
			vusage(v, why);
		}
	}
	opterr = 0;
	while ((ch = getopt(argc, argv, v->opts)) != -1) {
		switch (ch) {
		case 'q': q = optarg; break;
		case 'c': name = optarg; break;
		case 'e': hash = optarg; break;
		case 'i': ins = optarg; break;
		case 'd': del = optarg; break;
		case 's': flags_s = 1; break; /* valias -s: show, the default */
		case 'p': flags_p = 1; break;
		case 'b': flags_b = 1; break;
		case 'x': flags_x = 1; break;
		default: {
			char why[64];

			snprintf(why, sizeof why, "unknown option -%c", optopt);
			vusage(v, why);
		}
		}
	}
	a = argv + optind;
	n = argc - optind;

	if (!strcmp(prog, "vadddomain") || !strcmp(prog, "vadduser") ||
	    !strcmp(prog, "vpasswd")) {
		const char *args[12];
		int k = 0;

		if (n < 1 || n > 2 || (hash && n == 2))
			vusage(v, n < 1 ? "missing argument" : "too many arguments");
		args[k++] = !strcmp(prog, "vadddomain") ? "adddomain" :
			    !strcmp(prog, "vadduser") ? "adduser" : "passwd";
		args[k++] = a[0];
		if (n == 2)
			args[k++] = a[1];
		if (q) { args[k++] = "--quota"; args[k++] = q; }
		if (name) { args[k++] = "--name"; args[k++] = name; }
		if (hash) { args[k++] = "--hash"; args[k++] = hash; }
		args[k] = NULL;
		return call(c, args);
	}
	if (!strcmp(prog, "vdeldomain") || !strcmp(prog, "vdeluser") ||
	    !strcmp(prog, "vuserinfo")) {
		const char *args[3] = {!strcmp(prog, "vdeldomain") ? "deldomain" :
				       !strcmp(prog, "vdeluser") ? "deluser" :
				       "userinfo", n == 1 ? a[0] : NULL, NULL};

		if (n != 1)
			vusage(v, n < 1 ? "missing argument" : "too many arguments");
		return call(c, args);
	}
	if (!strcmp(prog, "vdominfo")) {
		const char *args[3] = {"dominfo", n == 1 ? a[0] : NULL, NULL};

		if (n > 1)
			vusage(v, "too many arguments");
		return call(c, args);
	}
	if (!strcmp(prog, "vsetuserquota")) {
		const char *args[4] = {"setquota", NULL, NULL, NULL};

		if (n != 2)
			vusage(v, n < 2 ? "missing argument" : "too many arguments");
		args[1] = a[0];
		args[2] = a[1];
		return call(c, args);
	}
	if (!strcmp(prog, "valias")) {
		if (ins) {
			const char *args[5] = {"alias", "add", NULL, ins, NULL};

			if (n != 1 || del)
				vusage(v, "-i takes DEST, then ALIAS@DOMAIN");
			args[2] = a[0];
			return call(c, args);
		}
		if (del) {
			const char *args[4] = {"alias", "del", del, NULL};

			if (n != 0)
				vusage(v, "too many arguments");
			return call(c, args);
		}
		if (n != 1)
			vusage(v, "give a DOMAIN or ALIAS@DOMAIN to show");
		(void)flags_s;
		vopen(c, 0);
		show_aliases(c, a[0]);
		vclose(c);
		return EX_DONE;
	}
	if (!strcmp(prog, "vaddaliasdomain")) {
		const char *args[5] = {"aliasdomain", "add", NULL, NULL, NULL};
		struct str d0 = STR_INIT, d1 = STR_INIT;
		int64_t first, second;

		if (n != 2)
			vusage(v, n < 2 ? "missing argument" : "too many arguments");
		m_parse_domain(a[0], &d0);
		m_parse_domain(a[1], &d1);
		vopen(c, 0);
		first = m_domain_id(c, d0.s, NULL);
		second = m_domain_id(c, d1.s, NULL);
		vclose(c);
		str_free(&d0);
		str_free(&d1);
		/* the domain that exists is the real one */
		args[2] = first && !second ? a[1] : a[0];
		args[3] = first && !second ? a[0] : a[1];
		return call(c, args);
	}
	/* vmoduser */
	{
		const char *args[6];
		int r = EX_DONE;

		if (n != 1)
			vusage(v, n < 1 ? "missing argument" : "too many arguments");
		if (!flags_x && !flags_p && !flags_s && !flags_b && !q)
			vusage(v, "nothing to change");
		if (flags_x) {
			const char *e[5] = {"moduser", a[0], "--enable", NULL};
			r = call(c, e);
		}
		args[0] = "moduser";
		args[1] = a[0];
		args[2] = "--disable";
		args[4] = NULL;
		if (r == EX_DONE && flags_p) {
			args[3] = "pop";
			r = call(c, args);
		}
		if (r == EX_DONE && flags_s) {
			args[3] = "smtp";
			r = call(c, args);
		}
		if (r == EX_DONE && flags_b) {
			args[3] = "delivery";
			r = call(c, args);
		}
		if (r == EX_DONE && q) {
			const char *sq[4] = {"setquota", a[0], q, NULL};
			r = call(c, sq);
		}
		return r;
	}
}
