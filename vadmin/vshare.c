/*
 * vshare - `vadmin share`: what the hosts of one PostgreSQL account store
 * share besides the accounts (SPEC.md "Several hosts"): POP-before-SMTP
 * grants and failed-login counts (docs/scale-out.md).
 *
 * The servers never reach the database; this bridge, which `facteur run`
 * keeps running beside `vadmin watch` on every such host, carries what
 * they leave in this root to the database and back:
 *
 *  - grants: open-smtp/ is watched with inotify; a grant made or
 *    refreshed here (pop3d, vchkpw) is written to table `grants` if newer
 *    than the row, whose trigger NOTIFYs facteur_grants "IP AT HOST"; a
 *    grant of another host sets this host's open-smtp/IP to AT (made if
 *    absent, never moved back, never through a link: lib/grant). The echo
 *    of a grant applied here is not newer than its row, so it changes no
 *    row and notifies nobody; and the newest time of recent addresses is
 *    remembered, so neither that echo nor a login refreshing a grant
 *    within the same second costs a round trip.
 *  - failed logins: pop3d and mta-smtpd send each failure they count to
 *    db/share.sock (lib/limit); it is added to this host's row of table
 *    `fails` (a count that starts again after lib/limit's window), whose
 *    trigger NOTIFYs facteur_fails "SERVICE HOST KEY"; on a notification
 *    of another host the sum of the other hosts' rows of that key is
 *    written to db/fails.SERVICE, which the servers add to their own
 *    counts.
 *
 * At start it LISTENs, then catches up: the database's fresh grants are
 * applied here, this host's fresh grants published, and the other
 * hosts' counts written. Every PRUNE_MS it deletes rows past their
 * lifetime (popbeforesmtp, the window). When the database goes away it
 * exits 111 and facteur run starts it again; the servers go on alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "grant.h"
#include "limit.h"
#include "num.h"
#include "vadmin.h"

#define PRUNE_MS 60000
#define DGRAM_MAX 1024
#define NSERVICES 2
#define SEEN 1024		/* grants remembered as already in the database */

static const char *const services[NSERVICES] = {"pop3", "smtp"};

struct share {
	struct vctx *c;
	struct str me;		/* this host's name: control/me */
	unsigned long life;	/* popbeforesmtp */
	struct limit_remote *rt[NSERVICES];
	int ino, sock;
	struct str dir;		/* ROOT/open-smtp */
	/* the newest time each recent address is known to have in the
	 * database (by a hash of the address; a collision costs one
	 * needless upsert): a login refreshing a grant within the second,
	 * or the inotify echo of a grant applied here, asks nothing */
	struct {
		uint64_t h;
		int64_t at;
	} seen[SEEN];
};

/* lost - exit 111, the database gone or refusing */
static _Noreturn void lost(struct share *sh)
{
	vfail(EX_TEMP, "share: lost the account database (%s); grants and "
	      "failed logins are this host's alone until it is back",
	      store_errmsg(sh->c->db));
}

/* sql - a statement with text parameters ?1.., run to its first row
 * (STORE_ROW) or its end (STORE_DONE), or exit 111 */
static struct store_stmt *sql(struct share *sh, const char *q, int n,
			      const char *const *v, int *rc)
{
	struct store_stmt *st = m_prep(sh->c, q);
	int i;

	for (i = 0; i < n; i++)
		if (store_bind_text(st, i + 1, v[i]) < 0)
			lost(sh);
	if ((*rc = store_step(st)) < 0) {
		store_finalize(st);
		lost(sh);
	}
	return st;
}

/* sqlv - sql() whose rows are not wanted */
static void sqlv(struct share *sh, const char *q, int n,
		 const char *const *v)
{
	int rc;

	store_finalize(sql(sh, q, n, v, &rc));
}

/* next - the next row of a statement sql() ran */
static int next(struct share *sh, struct store_stmt *st)
{
	int rc = store_step(st);

	if (rc < 0) {
		store_finalize(st);
		lost(sh);
	}
	return rc;
}

/* since - now less s seconds, as text for a parameter */
static void since(char *buf, size_t len, unsigned long s)
{
	(void)snprintf(buf, len, "%" PRId64, (int64_t)time(NULL) - (int64_t)s);
}

/* publish - a grant of this host, if newer than the database's */
static void publish(struct share *sh, const char *ip, time_t at)
{
	char t[24];
	const char *v[3] = {ip, t, sh->me.s};

	(void)snprintf(t, sizeof t, "%" PRId64, (int64_t)at);
	sqlv(sh, "INSERT INTO grants(ip, at, host) VALUES (?1, ?2, ?3) "
	     "ON CONFLICT (ip) DO UPDATE SET at = excluded.at, host = "
	     "excluded.host WHERE grants.at < excluded.at", 3, v);
}

/* seen - the slot of an address in sh->seen, and its hash */
static size_t seen(const char *ip, uint64_t *h_r)
{
	uint64_t h = 14695981039346656037ull;

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 1099511628211ull;
	*h_r = h ? h : 1;
	return (size_t)(h % SEEN);
}

/* local_grant - open-smtp/NAME changed here: published when fresh and
 * newer than what the database is known to have */
static void local_grant(struct share *sh, const char *name)
{
	time_t at;
	uint64_t h;
	size_t i;

	if (name[0] == '.' || grant_age(sh->c->root, name, &at) < 0 ||
	    !grant_live(at, sh->life, time(NULL)))
		return;
	i = seen(name, &h);
	if (sh->seen[i].h == h && sh->seen[i].at >= at)
		return;
	publish(sh, name, at);
	sh->seen[i].h = h;
	sh->seen[i].at = at;
}

/* apply_grant - a grant of another host, here too */
static void apply_grant(struct share *sh, const char *ip, int64_t at)
{
	uint64_t h;
	size_t i;
	int r;

	if (!grant_live(at, sh->life, time(NULL)))
		return;
	r = grant_set(sh->c->root, ip, (time_t)at);
	if (r < 0) {
		fprintf(stderr, "vadmin: share: cannot grant %s here: %s\n", ip,
			msg_err(r));
		return;
	}
	i = seen(ip, &h);
	sh->seen[i].h = h;
	sh->seen[i].at = at;
}

/* service_index - 0.. for a service name, -1 for none */
static int service_index(const char *s, size_t len)
{
	int i;

	for (i = 0; i < NSERVICES; i++)
		if (strlen(services[i]) == len && !memcmp(services[i], s, len))
			return i;
	return -1;
}

/* others - the other hosts' count of a key, written for this host's
 * servers */
static void others(struct share *sh, int svc, const char *key)
{
	char t[24];
	const char *v[4] = {services[svc], key, sh->me.s, t};
	struct store_stmt *st;
	int64_t n = 0, at = 0;
	int rc;

	since(t, sizeof t, LIMIT_WINDOW);
	st = sql(sh, "SELECT coalesce(sum(count), 0), coalesce(max(at), 0) "
		 "FROM fails WHERE service = ?1 AND key = ?2 AND host <> ?3 "
		 "AND at > ?4", 4, v, &rc);
	if (rc == STORE_ROW) {
		n = store_column_int(st, 0);
		at = store_column_int(st, 1);
	}
	store_finalize(st);
	limit_remote_set(sh->rt[svc], key, n > UINT32_MAX ? UINT32_MAX :
			 n < 0 ? 0 : (unsigned)n, at);
}

/* failed - "SERVICE KEY" from a server here: one more in this host's row */
static void failed(struct share *sh, const char *m, size_t len)
{
	struct str service = STR_INIT, key = STR_INIT;
	char t[24], old[24];
	const char *v[5] = {sh->me.s, NULL, NULL, t, old};
	int svc;

	if (limit_told(m, len, &service, &key) == 0 &&
	    (svc = service_index(service.s, service.len)) >= 0) {
		since(t, sizeof t, 0);
		since(old, sizeof old, LIMIT_WINDOW);
		v[1] = services[svc];
		v[2] = key.s;
		sqlv(sh, "INSERT INTO fails(host, service, key, count, at) "
		     "VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT (service, key, "
		     "host) DO UPDATE SET count = CASE WHEN fails.at < ?5 THEN "
		     "1 ELSE fails.count + 1 END, at = excluded.at", 5, v);
	}
	str_free(&service);
	str_free(&key);
}

/* notified - a grant or failure of some host: "IP AT HOST" or "SERVICE
 * HOST KEY"; this host's own are already here */
static void notified(struct share *sh, const char *chan, char *p)
{
	char *a = strchr(p, ' '), *b = a ? strchr(a + 1, ' ') : NULL;
	uint64_t at;
	int svc;

	if (!b)
		return;
	*a++ = 0;
	*b++ = 0;
	if (!strcmp(chan, "facteur_grants")) {
		if (strcmp(b, sh->me.s) && num_parse(a, INT64_MAX, &at) == 0)
			apply_grant(sh, p, (int64_t)at);
	} else if ((svc = service_index(p, strlen(p))) >= 0 &&
		   strcmp(a, sh->me.s) && limit_key_valid(b, strlen(b))) {
		others(sh, svc, b);
	}
}

/* drain_pg - every notification that came */
static void drain_pg(struct share *sh)
{
	struct str chan = STR_INIT, payload = STR_INIT;
	int r;

	while ((r = store_notified(sh->c->db, &chan, &payload)) == 1)
		notified(sh, chan.s, payload.s);
	if (r < 0)
		lost(sh);
	str_free(&chan);
	str_free(&payload);
}

/* drain_ino - the grants open-smtp/ says changed */
static void drain_ino(struct share *sh)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	size_t i;

	while ((n = read(sh->ino, buf, sizeof buf)) > 0)
		for (i = 0; i + sizeof(struct inotify_event) <= (size_t)n;) {
			const struct inotify_event *e = (const void *)(buf + i);

			if (e->len)
				local_grant(sh, e->name);
			i += sizeof *e + e->len;
		}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		vfail(EX_TEMP, "share: cannot read inotify events: %s",
		      strerror(errno));
}

/* drain_sock - the failures the servers told */
static void drain_sock(struct share *sh)
{
	char m[DGRAM_MAX];
	ssize_t n;

	while ((n = recv(sh->sock, m, sizeof m, MSG_DONTWAIT)) >= 0)
		failed(sh, m, (size_t)n);
}

/* catch_up_grants - the database's fresh grants here, and this host's
 * there: the first may have come while this was not running; the count
 * of the first */
static unsigned catch_up_grants(struct share *sh)
{
	char t[24];
	const char *v[2] = {t, sh->me.s};
	struct store_stmt *st;
	struct dirent *de;
	unsigned n = 0;
	DIR *d;
	int rc;

	since(t, sizeof t, sh->life);
	st = sql(sh, "SELECT ip, at FROM grants WHERE at > ?1 AND host <> ?2",
		 2, v, &rc);
	for (; rc == STORE_ROW; rc = next(sh, st), n++)
		apply_grant(sh, m_col(st, 0), store_column_int(st, 1));
	store_finalize(st);
	if (!(d = opendir(sh->dir.s)))
		vfail(EX_TEMP, "share: cannot read %s: %s", sh->dir.s,
		      strerror(errno));
	while ((de = readdir(d)))
		local_grant(sh, de->d_name);
	closedir(d);
	return n;
}

/* catch_up_fails - the other hosts' counts of the window, for the
 * servers here; the number of keys */
static unsigned catch_up_fails(struct share *sh)
{
	char t[24];
	const char *v[2] = {t, sh->me.s};
	struct store_stmt *st;
	unsigned keys = 0;
	int64_t n;
	int rc, svc;

	since(t, sizeof t, LIMIT_WINDOW);
	st = sql(sh, "SELECT service, key, sum(count), max(at) FROM fails "
		 "WHERE at > ?1 AND host <> ?2 GROUP BY service, key", 2, v,
		 &rc);
	for (; rc == STORE_ROW; rc = next(sh, st)) {
		const char *k = m_col(st, 1);

		svc = service_index(m_col(st, 0), strlen(m_col(st, 0)));
		n = store_column_int(st, 2);
		if (svc < 0 || !limit_key_valid(k, strlen(k)) || n <= 0)
			continue;
		limit_remote_set(sh->rt[svc], k, n > UINT32_MAX ? UINT32_MAX :
				 (unsigned)n, store_column_int(st, 3));
		keys++;
	}
	store_finalize(st);
	return keys;
}

/* prune - rows past their lifetime, whichever host wrote them */
static void prune(struct share *sh)
{
	char t[24];
	const char *v[1] = {t};

	since(t, sizeof t, sh->life);
	sqlv(sh, "DELETE FROM grants WHERE at < ?1", 1, v);
	since(t, sizeof t, LIMIT_WINDOW);
	sqlv(sh, "DELETE FROM fails WHERE at < ?1", 1, v);
}

/* listen - both channels, on vadmin's own connection to the store */
static void listen_pg(struct share *sh)
{
	if (store_kind(sh->c->db) != STORE_PG)
		vfail(EX_REFUSED, "nothing to share: this root's accounts are "
		      "in SQLite (control/accountdb)");
	if (store_listen(sh->c->db, "facteur_grants") < 0 ||
	    store_listen(sh->c->db, "facteur_fails") < 0)
		lost(sh);
}

/* bind_sock - db/share.sock, where the servers tell their failures */
static void bind_sock(struct share *sh)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct str p = STR_INIT;

	if (str_catf(&p, "%s/db/share.sock", sh->c->root))
		vfail(EX_TEMP, "out of memory");
	if (p.len >= sizeof a.sun_path)
		vfail(EX_TEMP, "share: %s is too long for a socket's name", p.s);
	memcpy(a.sun_path, p.s, p.len + 1);
	/* a socket left by the last run: nobody else binds this name */
	(void)unlink(p.s);
	sh->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sh->sock < 0 || bind(sh->sock, (struct sockaddr *)&a, sizeof a) < 0
	    || chmod(p.s, 0600) < 0)
		vfail(EX_TEMP, "share: cannot bind %s: %s", p.s, strerror(errno));
	str_free(&p);
}

/* open_local - the failure tables, open-smtp/'s watch and the socket */
static void open_local(struct share *sh)
{
	struct str p = STR_INIT;
	int i, r;

	for (i = 0; i < NSERVICES; i++) {
		p.len = 0;
		if (str_catf(&p, "%s/db/fails.%s", sh->c->root, services[i]))
			vfail(EX_TEMP, "out of memory");
		if ((r = limit_remote_open(p.s, 1, &sh->rt[i])) < 0)
			vfail(EX_TEMP, "share: cannot map %s: %s", p.s,
			      msg_err(r));
	}
	str_free(&p);
	if (str_catf(&sh->dir, "%s/open-smtp", sh->c->root))
		vfail(EX_TEMP, "out of memory");
	sh->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sh->ino < 0 || inotify_add_watch(sh->ino, sh->dir.s, IN_ATTRIB |
			   IN_CREATE | IN_MOVED_TO | IN_ONLYDIR |
			   IN_DONT_FOLLOW) < 0)
		vfail(EX_TEMP, "share: cannot watch %s: %s", sh->dir.s,
		      strerror(errno));
	bind_sock(sh);
}

/* cmd_share - the command: it returns only by failing */
int cmd_share(struct vctx *c)
{
	struct share sh = {.c = c, .me = STR_INIT, .dir = STR_INIT};
	struct pollfd pf[3];
	long long next = 0;
	int r;

	if (ctl_me(c->root, &sh.me) < 0)
		vfail(EX_TEMP, "share: cannot read control/me");
	/* unreadable or no number: the default, said, as in every program */
	sh.life = ctl_num_warn(c->root, CTL_POPBEFORESMTP, msg_warn);
	listen_pg(&sh);
	open_local(&sh);
	/* LISTEN came first: what is committed from now on is notified */
	r = (int)catch_up_grants(&sh);
	fprintf(stderr, "vadmin: share: %d grant%s and %u failure count%s "
		"of other hosts applied; sharing as %s\n", r, r == 1 ? "" :
		"s", catch_up_fails(&sh), "s", sh.me.s);
	pf[0] = (struct pollfd){.fd = store_socket(c->db), .events = POLLIN};
	pf[1] = (struct pollfd){.fd = sh.ino, .events = POLLIN};
	pf[2] = (struct pollfd){.fd = sh.sock, .events = POLLIN};
	for (;;) {
		struct timespec ts;
		long long now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
		if (now >= next) {
			prune(&sh);
			next = now + PRUNE_MS;
		}
		if (poll(pf, 3, (int)(next - now)) < 0 && errno != EINTR)
			vfail(EX_TEMP, "share: poll: %s", strerror(errno));
		if (pf[0].revents)
			drain_pg(&sh);
		if (pf[1].revents)
			drain_ino(&sh);
		if (pf[2].revents)
			drain_sock(&sh);
	}
}
