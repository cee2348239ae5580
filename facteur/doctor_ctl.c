/*
 * doctor_ctl - `facteur doctor`'s control check: every control file
 * that has a syntax is read with the very function its program reads it
 * with (lib/ctl's table of numbers and their ranges, listen_parse,
 * rules_check, dns_resolvers_csv, lib/route for smtproutes), so that
 * doctor cannot pass a file a service refuses or reads otherwise, nor
 * the other way round. A file that does not parse is a FAIL naming the
 * file, its line and the reason, e.g.
 * `control/databytes:1: not a number: "10M"` (the services use the
 * default then), and so is a number outside its range.
 *
 * rblservers is parsed inside mta-smtpd only (one zone a line), with
 * nothing in lib/ to call, so it is not checked here rather than by a
 * second parser that could disagree.
 *
 * The srs check is here too (control/srssecret: there, the mail user's
 * alone, read by lib/srs's srs_secrets); --fix makes a missing one as
 * facteur init does, since a new secret replaces nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "dns.h"
#include "fsx.h"
#include "doctor.h"
#include "listen.h"
#include "msg.h"
#include "name.h"
#include "route.h"
#include "rules.h"
#include "srs.h"

const char *const doctor_listen_files[DOCTOR_LISTEN_FILES] = {
	"listen.smtp", "listen.submission", "listen.smtps", "listen.pop3",
	"listen.pop3s",
};

/* line_of - the line number of control/NAME's K-th line (0: ctl_get's) */
static size_t line_of(struct doctor *d, const char *name, size_t k)
{
	size_t line;

	(void)ctl_line_number(d->root, name, k, &line);
	return line;
}

/* unreadable - a control file that exists but cannot be read */
static int unreadable(struct report *p, const char *name, int r)
{
	return say(p, FAIL, "cannot read control/%s: %s; give it to the mail "
		   "user or remove it", name, msg_err(r));
}

/* one_number - a numeric control file as ctl_num() reads it: what it
 * would hold to its range is named with the value the programs use */
static int one_number(struct doctor *d, struct report *p,
		      enum ctl_numid id, struct str *s)
{
	const struct ctl_numdef *n = &ctl_nums[id];
	unsigned long u, used;
	int r = ctl_get(d->root, n->name, "", s);

	/* a missing or empty file means the default */
	if (r < 0)
		return unreadable(p, n->name, r);
	if (s->len == 0)
		return OK;
	if (ctl_parse_ulong(s->s, &u) < 0)
		return say(p, FAIL, "control/%s:%zu: not a number: \"%s\"; "
			   "write digits only, or remove the file for the "
			   "default", n->name, line_of(d, n->name, 0), s->s);
	if (!ctl_num_hold(id, u, &used))
		return OK;
	if (id == CTL_REMOTEPORT)	/* mta-remote takes no port it holds */
		return say(p, FAIL, "control/remoteport:%zu: %lu is outside "
			   "%lu-%lu, so mta-remote defers every message; fix "
			   "it, or remove the file for port %lu",
			   line_of(d, n->name, 0), u, n->min, n->max, n->def);
	return say(p, FAIL, "control/%s:%zu: %lu is outside %lu-%lu (the "
		   "programs use %lu); fix it, or remove the file for the "
		   "default", n->name, line_of(d, n->name, 0), u, n->min,
		   n->max, used);
}

/* check_listen_lines - every line of the listen files by listen_parse */
int check_listen_lines(struct doctor *d, struct report *p)
{
	struct sockaddr_storage ss;
	struct str lines = STR_INIT;
	socklen_t len;
	const char *s, *name;
	size_t i, n, k;
	int v = OK, r;

	for (i = 0; i < DOCTOR_LISTEN_FILES; i++) {
		name = doctor_listen_files[i];
		r = ctl_get_lines(d->root, name, &lines, &n);
		if (r < 0) {
			v = unreadable(p, name, r);
			continue;
		}
		for (k = 0, s = lines.s; k < n; k++, s += strlen(s) + 1)
			if (listen_parse(s, &ss, &len) < 0)
				v = say(p, FAIL, "control/%s:%zu: not ADDR:PORT "
					"or [IPV6]:PORT: \"%s\"; fix it", name,
					line_of(d, name, k + 1), s);
			else if (!listen_port_ok(&ss))
				v = say(p, FAIL, "control/%s:%zu: \"%s\" is a "
					"port below 1024 that no mail service "
					"uses: it is not bound (lib/listen); "
					"use 25, 465, 587, 110, 995 or one "
					"from 1024 up", name,
					line_of(d, name, k + 1), s);
	}
	str_free(&lines);
	return v;
}

/* relayrules - by the parser of mta-rules, without compiling */
static int relayrules(struct doctor *d, struct report *p)
{
	struct str why = STR_INIT;
	size_t k;
	int v = OK, r = rules_check(d->root, &why, &k);

	if (r == -EINVAL)
		v = say(p, FAIL, "control/relayrules:%zu: %s; fix it and run "
			"mta-rules", line_of(d, "relayrules", k),
			why.len ? why.s : "bad rule");
	else if (r < 0)
		v = unreadable(p, "relayrules", r);
	str_free(&why);
	return v;
}

/* resolvers - by the parser of lib/dns */
static int resolvers(struct doctor *d, struct report *p)
{
	struct str lines = STR_INIT, csv = STR_INIT;
	size_t n, k = 0, bad = 0;
	const char *s;
	int v = OK, r = ctl_get_lines(d->root, "resolvers", &lines, &n);

	if (r < 0)
		v = unreadable(p, "resolvers", r);
	else if (n && dns_resolvers_csv(lines.s, n, &csv, &bad) == -EINVAL) {
		for (s = lines.s, k = 1; k < bad; k++)
			s += strlen(s) + 1;
		v = say(p, FAIL, "control/resolvers:%zu: not IP[:PORT] or "
			"[IPV6]:PORT: \"%s\"; fix it", line_of(d, "resolvers",
			bad), s);
	}
	str_free(&lines);
	str_free(&csv);
	return v;
}

/* smtproutes - by mta-remote's own parser (lib/route): a domain that no
 * line names still makes every line be read, so a bad line shows */
static int smtproutes(struct doctor *d, struct report *p)
{
	struct str lines = STR_INIT;
	struct route rt = {0, 0, {STR_INIT, 0, 0}, 0};
	size_t n, k = 0, bad = 0;
	const char *s;
	int v = OK, r = ctl_get_lines(d->root, "smtproutes", &lines, &n);

	if (r < 0)
		v = unreadable(p, "smtproutes", r);
	else if (n && (r = route_lookup(lines.s, n, "invalid", &rt, &bad)) < 0) {
		for (s = lines.s, k = 1; k < bad; k++)
			s += strlen(s) + 1;
		v = r == -EINVAL ?
		    say(p, FAIL, "control/smtproutes:%zu: not DOMAIN:HOST[:PORT]: "
			"\"%s\"; fix it (mta-remote defers all mail until then)",
			line_of(d, "smtproutes", bad), s) :
		    unreadable(p, "smtproutes", r);
	}
	route_free(&rt);
	str_free(&lines);
	return v;
}

static int worse(int a, int b)
{
	return a > b ? a : b;
}

/* words - passwordscheme and me */
static int words(struct doctor *d, struct report *p, struct str *s)
{
	const char *why = NULL;
	struct str tmp = STR_INIT;
	int v = OK, r = ctl_get(d->root, "passwordscheme", "yescrypt", s);

	if (r < 0)
		v = unreadable(p, "passwordscheme", r);
	else if (!str_eqs(s, "yescrypt") && !str_eqs(s, "sha512crypt"))
		v = say(p, FAIL, "control/passwordscheme:%zu: not yescrypt or "
			"sha512crypt: \"%s\"; fix it",
			line_of(d, "passwordscheme", 0), s->s);
	r = ctl_get(d->root, "me", "", s);
	if (r < 0)
		v = unreadable(p, "me", r);
	else if (s->len && name_domain(s->s, s->len, &tmp, &why) < 0)
		v = worse(v, say(p, WARN, "control/me is not a host name (%s); write "
			"this host's name in it", why ? why : "bad syntax"));
	str_free(&tmp);
	return v;
}

/* srs_make - --fix: a new control/srssecret, 0600, this process's
 * (the mail user's): making one destroys nothing, there was none;
 * 1 without --fix */
static int srs_make(struct doctor *d, struct report *p, const char *path)
{
	struct str v = STR_INIT;
	int r = d->fix ? srs_secret_new(&v) : 1;

	if (r == 0)
		r = fsx_write_atomic(path, v.s, v.len, 0600);
	str_wipe(&v);
	if (r == 0)
		did(p, "made %s (mode 0600)", path);
	return r;
}

/* srs_file - the secret's owner and mode: the mail user's alone */
static int srs_file(struct doctor *d, struct report *p, const char *path,
		    const struct stat *st)
{
	const char *user = str_cstr(&d->user);
	int dfd, r = -EPERM;

	if (st->st_uid != geteuid())
		return say(p, FAIL, "%s belongs to uid %lu, not %s; run chown "
			   "%s %s", path, (unsigned long)st->st_uid, user, user,
			   path);
	if ((st->st_mode & 077) == 0)
		return OK;
	dfd = d->fix ? open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd >= 0) {
		r = fix_mode(d, p, dfd, "control/srssecret", "control/srssecret",
			     st, 0600);
		(void)close(dfd);
	}
	return r == 0 ? OK : say(p, FAIL, "%s is mode %04o: others can read "
				 "the key and forge SRS bounces; run chmod 600 "
				 "%s", path, (unsigned)(st->st_mode & 07777),
				 path);
}

/* srs_missing - no control/srssecret: made by --fix, else the way to */
static int srs_missing(struct doctor *d, struct report *p, const char *path)
{
	int r = srs_make(d, p, path);
	const char *why = r < 0 ? msg_err(r) : NULL;

	if (r == 0)
		return OK;
	return say(p, WARN, "%s is missing%s%s%s: forwards keep their sender "
		   "(no SRS) and SRS bounces are refused; run facteur doctor "
		   "--fix, or as the mail user: umask 077; head -c 32 "
		   "/dev/urandom | base64 > %s", path, why ? " (--fix: " : "",
		   why ? why : "", why ? ")" : "", path);
}

/* check_srs - control/srssecret: there (forwards keep their sender
 * without it), the mail user's alone, holding a line lib/srs takes */
int check_srs(struct doctor *d, struct report *p)
{
	struct str k = STR_INIT, path = STR_INIT;
	struct stat st;
	size_t n;
	int v, r = ctl_path(&path, d->root, "srssecret");

	if (r == 0 && lstat(path.s, &st) < 0)
		r = -errno;
	if (r == -ENOENT)
		v = srs_missing(d, p, path.s);
	else if (r < 0)
		v = unreadable(p, "srssecret", r);
	else if (!S_ISREG(st.st_mode))
		v = say(p, FAIL, "%s is not a regular file; move it away and "
			"run facteur doctor --fix", path.s);
	else
		v = srs_file(d, p, path.s, &st);
	r = v == OK ? srs_secrets(d->root, &k, &n) : 0;
	str_wipe(&k);
	str_free(&path);
	if (r == -ENOENT)
		return say(p, WARN, "control/srssecret holds no line, so "
			   "forwards keep their sender; remove it and run "
			   "facteur doctor --fix");
	return r < 0 ? unreadable(p, "srssecret", r) : v;
}

/* check_control_files - every control file with a syntax */
int check_control_files(struct doctor *d, struct report *p)
{
	struct str s = STR_INIT;
	size_t i;
	int v = OK;

	for (i = 0; i < CTL_NUMS; i++)
		v = worse(v, one_number(d, p, (enum ctl_numid)i, &s));
	v = worse(v, words(d, p, &s));
	v = worse(v, relayrules(d, p));
	v = worse(v, resolvers(d, p));
	v = worse(v, smtproutes(d, p));
	str_free(&s);
	return worse(v, check_listen_lines(d, p));
}
