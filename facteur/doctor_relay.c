/*
 * doctor_relay - the `relay` check: relay rules that make the host an
 * open relay (a FAIL), and stale POP-before-SMTP grants in open-smtp/ (a
 * warn; --fix removes them, as `facteur run` would at its next sweep).
 *
 * The rules are looked at twice: the text of control/relayrules, for a
 * rule that gives RELAYCLIENT to every address of a family (the empty
 * address, or a /0 prefix: IPv4 has no /BITS in lib/rules.c, so
 * "0.0.0.0/0" does not even compile, yet says what its writer meant), and
 * relayrules.cdb, what mta-smtpd really reads, asked for two documentation
 * addresses (RFC 5737, RFC 3849) that no real client has: a rule that
 * lets them relay lets anyone. Whether the CDB is older than the text is
 * cdb-age's business.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "doctor.h"
#include "grant.h"
#include "msg.h"
#include "rules.h"

static const char *const probes[] = {"203.0.113.7", "2001:db8::7"};

/* worse - keep the worst verdict seen */
static void worse(int *v, int level)
{
	if (level > *v)
		*v = level;
}

/* rule_action - where ":allow" or ":deny" begins in LINE (as lib/rules.c
 * finds it: the first such colon), or NULL */
static const char *rule_action(const char *line)
{
	const char *p;

	for (p = strchr(line, ':'); p; p = strchr(p + 1, ':'))
		if ((!strncmp(p + 1, "allow", 5) &&
		     (p[6] == 0 || p[6] == ',')) ||
		    (!strncmp(p + 1, "deny", 4) && (p[5] == 0 || p[5] == ',')))
			return p;
	return NULL;
}

/* rule_open - 1 when LINE gives RELAYCLIENT to every address of a family */
static int rule_open(const char *line)
{
	const char *act = rule_action(line);
	size_t alen;

	if (!act || strncmp(act + 1, "allow", 5))
		return 0;
	alen = (size_t)(act - line);
	if (alen != 0 && !(alen > 2 && !strncmp(act - 2, "/0", 2)))
		return 0;
	return strstr(act, ",RELAYCLIENT=") != NULL;
}

/* rules_text - the open rules of control/relayrules; their count */
static int rules_text(struct doctor *d, struct report *p, int *v)
{
	struct str lines = STR_INIT;
	size_t n = 0, i, off = 0;
	int r, hits = 0;

	r = ctl_get_lines(d->root, "relayrules", &lines, &n);
	if (r < 0) {
		worse(v, say(p, FAIL, "cannot read control/relayrules: %s; "
			 "make it readable by the mail user", msg_err(r)));
		return 0;
	}
	for (i = 0; i < n; i++, off += strlen(lines.s + off) + 1) {
		if (!rule_open(lines.s + off))
			continue;
		hits++;
		worse(v, say(p, FAIL, "control/relayrules rule \"%s\" lets every "
			 "client relay (an open relay); remove its RELAYCLIENT "
			 "or narrow its address, then run mta-rules",
			 lines.s + off));
	}
	str_free(&lines);
	return hits;
}

/* rules_cdb - relayrules.cdb asked for addresses no client has */
static void rules_cdb(struct doctor *d, struct report *p, int *v)
{
	struct rule ru = {0, 0, STR_INIT};
	size_t i;
	int r;

	for (i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		r = rules_lookup(d->root, probes[i], &ru);
		if (r < 0) {
			worse(v, say(p, FAIL, "cannot read control/relayrules.cdb: "
				 "%s; run mta-rules", msg_err(r)));
			break;
		}
		if (ru.allow && rules_env(&ru, "RELAYCLIENT")) {
			worse(v, say(p, FAIL, "control/relayrules.cdb lets any "
				 "client relay (%s may); fix control/relayrules"
				 " and run mta-rules", probes[i]));
			break;
		}
	}
	rules_free(&ru);
}

/* grant_life - control/popbeforesmtp, as `facteur run` reads it */
static unsigned long grant_life(struct doctor *d, struct report *p, int *v)
{
	unsigned long life;
	int r = ctl_num(d->root, CTL_POPBEFORESMTP, &life);

	if (r < 0)
		worse(v, say(p, WARN, "control/popbeforesmtp: %s; write a number "
			 "of seconds in it", msg_err(r)));
	return life;
}

/* stale_grants - count (and with --fix remove) the regular files of
 * open-smtp/ older than the grant lifetime; nothing is followed, and dot
 * files (pop3d's temporaries) are left, as `facteur run` leaves them */
static int stale_grants(struct doctor *d, int dfd, unsigned long life,
			unsigned *stale, unsigned *gone)
{
	time_t now = time(NULL);
	struct dirent *de;
	struct stat st;
	DIR *dir = fdopendir(dfd);
	int r;

	if (!dir) {
		r = -errno;
		(void)close(dfd);
		return r;
	}
	/* errno is cleared before each readdir(): NULL is the end or an
	 * error, and only errno tells */
	while ((errno = 0, de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || grant_live(st.st_mtime, life, now))
			continue;
		(*stale)++;
		if (d->fix && unlinkat(dfd, de->d_name, 0) == 0)
			(*gone)++;
	}
	r = errno ? -errno : 0;
	(void)closedir(dir);
	return r;
}

/* check_grants - the stale grants of open-smtp/ */
static void check_grants(struct doctor *d, struct report *p, int *v)
{
	unsigned long life = grant_life(d, p, v);
	unsigned stale = 0, gone = 0;
	int fd, r;

	d->path.len = 0;
	r = str_catf(&d->path, "%s/open-smtp", d->root);
	if (r < 0)
		return;
	fd = open(d->path.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			worse(v, say(p, WARN, "cannot read %s: %s; make it a "
				 "directory of the mail user", d->path.s,
				 strerror(errno)));
		return;
	}
	r = stale_grants(d, fd, life, &stale, &gone);
	if (r < 0) {
		worse(v, say(p, WARN, "cannot read %s: %s; make it a directory of "
			 "the mail user", d->path.s, msg_err(r)));
		return;
	}
	if (gone)
		did(p, "removed %u stale POP-before-SMTP grant%s from "
		    "open-smtp/", gone, gone == 1 ? "" : "s");
	if (stale > gone)
		worse(v, say(p, WARN, "%u stale POP-before-SMTP grant%s in "
			  "open-smtp/ (older than %lu s); run facteur doctor "
			  "--fix or remove them", stale - gone,
			  stale - gone == 1 ? "" : "s", life));
}

int check_relay(struct doctor *d, struct report *p)
{
	int v = OK;

	if (rules_text(d, p, &v) == 0)
		rules_cdb(d, p, &v);
	check_grants(d, p, &v);
	return v;
}
