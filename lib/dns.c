/*
 * dns - DNS lookups over c-ares (see dns.h).
 *
 * c-ares rather than libresolv: it is asynchronous (a DNSBL check asks
 * every zone at once), and ares_set_servers_ports_csv() takes servers with
 * their own ports, IPv6 ones included, which control/resolvers needs and
 * res_state cannot express cleanly.
 */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "clock.h"
#include "ctl.h"
#include "dnscache.h"
#include "name.h"
#include "num.h"

struct dns {
	ares_channel ch;
	size_t pending;		/* queries whose callback has not run */
	int64_t deadline;	/* now_ms() after which queries are cancelled; 0: none */
	int visible;		/* 1: any visible name may be asked (SPF) */
	int cache;		/* 1: answers kept in lib/dnscache (dns_reuse) */
	unsigned asked;		/* queries sent on this channel */
};

/* one query's outcome, filled in by its callback */
struct dq {
	struct dns *d;
	int type;		/* ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt, ns_t_ptr */
	const char *name;	/* dns_batch: what to ask when its turn comes */
	const char *key;	/* the name its answer is kept under, or NULL */
	int r;			/* 0 or a negative errno code (see dns.h) */
	struct dns_answer a;	/* its records */
};

/* status_err - a c-ares status as this module's error codes */
static int status_err(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
		return -ENOENT;
	case ARES_ENODATA:
		return -ENODATA;
	case ARES_ENOMEM:
		return -ENOMEM;
	case ARES_EBADNAME:
		return -EINVAL;
	case ARES_ECANCELLED:
		/* only dns_batch and a dns_deadline cancel, when their
		 * deadline has come */
		return -ETIMEDOUT;
	default:
		/* SERVFAIL, REFUSED, timeouts, unreachable servers, FORMERR of
		 * a server that does not understand us: all worth a retry */
		return -EAGAIN;
	}
}

/* visible_ok - RFC 7208 7.1 lets a domain-spec hold any visible byte
 * (and macros make spaces): labels of 1 to 63 bytes of 0x20-0x7e, at most
 * 253 in all; a backslash would be c-ares' escape, so it is refused */
static int visible_ok(const char *name)
{
	size_t len = strlen(name), i, label = 0;

	if (len && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (c < 0x20 || c > 0x7e || c == '\\' ||
			   ++label > 63) {
			return 0;
		}
	}
	return label > 0;
}

/* askable - a name this resolver may ask */
static int askable(const struct dns *d, const char *name)
{
	return d->visible ? visible_ok(name) : dns_name_ok(name);
}

/* dns_names_visible - on: names of any visible bytes may be asked */
void dns_names_visible(struct dns *d, int on)
{
	d->visible = on;
}

/* dns_name_ok - a name that may be asked: lib/name's host-name rule with
 * '_' and hyphens anywhere, and an optional final dot */
int dns_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len && name[len - 1] == '.')
		len--;
	return !name_ldh(name, len, NAME_LDH_UNDERSCORE | NAME_LDH_ANY_HYPHEN);
}

/* one_resolver - "IP", "IP:port", "[IP6]", "[IP6]:port" or a bare IPv6
 * address, appended to csv as c-ares wants it */
static int one_resolver(const char *s, struct str *csv)
{
	struct in6_addr a6;
	struct in_addr a4;
	struct str host = STR_INIT;
	const char *port = NULL, *colon;
	uint64_t p = 53;
	int v6 = 0, r = -EINVAL;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || str_copyb(&host, s + 1, (size_t)(end - s - 1)))
			goto out;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			goto out;
		v6 = 1;
	} else if ((colon = strchr(s, ':')) && strchr(colon + 1, ':')) {
		if (str_copys(&host, s))	/* bare IPv6, no port */
			goto out;
		v6 = 1;
	} else {
		size_t n = colon ? (size_t)(colon - s) : strlen(s);

		if (str_copyb(&host, s, n))
			goto out;
		if (colon)
			port = colon + 1;
	}
	if (!host.s)
		goto out;
	if (v6 ? inet_pton(AF_INET6, host.s, &a6) != 1 :
		 inet_pton(AF_INET, host.s, &a4) != 1)
		goto out;
	if (port && (num_parse(port, 65535, &p) < 0 || p == 0))
		goto out;
	if (csv->len && str_catc(csv, ',')) {
		r = -ENOMEM;
		goto out;
	}
	r = v6 ? str_catf(csv, "[%s]:%u", host.s, (unsigned)p) :
		 str_catf(csv, "%s:%u", host.s, (unsigned)p);
out:
	str_free(&host);
	return r;
}

/* dns_resolvers_csv - NUL-separated lines of control/resolvers as the
 * comma-separated list of ares_set_servers_ports_csv(); on -EINVAL,
 * *bad_line_r is the 1-based number of the line at fault */
int dns_resolvers_csv(const char *lines, size_t count, struct str *csv,
		      size_t *bad_line_r)
{
	size_t i;
	int r;

	str_trunc(csv, 0);
	if (str_cats(csv, ""))
		return -ENOMEM;
	for (i = 0; i < count; i++) {
		r = one_resolver(lines, csv);
		if (r < 0) {
			if (bad_line_r)
				*bad_line_r = i + 1;
			return r;
		}
		lines += strlen(lines) + 1;
	}
	return 0;
}

/* dns_open - a channel with short tries and the configured servers */
static int open_flags(struct dns **d_r, const char *root, int timeout_ms,
		      int flags);

int dns_open(struct dns **d_r, const char *root, int timeout_ms)
{
	return open_flags(d_r, root, timeout_ms, 0);
}

/* open_flags - dns_open() with more c-ares FLAGS */
static int open_flags(struct dns **d_r, const char *root, int timeout_ms,
		      int flags)
{
	struct ares_options o;
	struct str lines = STR_INIT, csv = STR_INIT;
	struct dns *d;
	size_t n = 0;
	int r;

	*d_r = NULL;
	r = ctl_get_lines(root, "resolvers", &lines, &n);
	if (r == 0 && n)
		r = dns_resolvers_csv(lines.s, n, &csv, NULL);
	if (r < 0)
		goto out;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		r = -ENOMEM;
		goto out;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		ares_library_cleanup();
		r = -ENOMEM;
		goto out;
	}
	memset(&o, 0, sizeof o);
	o.timeout = timeout_ms > 0 ? timeout_ms : 5000;
	o.tries = 2;
	o.flags = ARES_FLAG_NOSEARCH | flags;
	o.lookups = (char *)"b";
	if (ares_init_options(&d->ch, &o, ARES_OPT_TIMEOUTMS |
			      ARES_OPT_TRIES | ARES_OPT_FLAGS |
			      ARES_OPT_LOOKUPS) != ARES_SUCCESS) {
		free(d);
		ares_library_cleanup();
		r = -ENOMEM;
		goto out;
	}
	if (n && ares_set_servers_ports_csv(d->ch, csv.s) != ARES_SUCCESS) {
		dns_close(d);
		r = -EINVAL;
		goto out;
	}
	*d_r = d;
out:
	str_free(&lines);
	str_free(&csv);
	return r;
}

/* dns_close - cancels what is pending, frees everything */
void dns_close(struct dns *d)
{
	if (!d)
		return;
	ares_destroy(d->ch);
	free(d);
	ares_library_cleanup();
}

/* the file dns_open() read the servers from, as seen then: a change of
 * inode, size or time means they may have changed */
struct conf_id {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static void conf_id(const char *path, struct conf_id *id)
{
	struct stat st;

	memset(id, 0, sizeof *id);
	if (stat(path, &st) < 0)
		return;
	id->exists = 1;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
}

static int conf_same(const struct conf_id *a, const struct conf_id *b)
{
	return a->exists == b->exists && a->dev == b->dev &&
	       a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* A kept channel is made again after this many queries: with its sockets
 * kept open, every query of a channel leaves from the same source port,
 * and a port that changes is half of what makes an answer hard to forge
 * from outside (RFC 5452 9.2; c-ares 1.20 added udp_max_queries for
 * this; Debian's 1.18 lacks it) */
#define DNS_REUSE_QUERIES 64

/* the resolver dns_reuse() keeps, and what it was made from */
static struct {
	struct dns *d;
	struct str root;
	int timeout_ms;
	struct conf_id ctl, sys;
	int64_t seen_ms;	/* when the files were last looked at */
} kept;

/* kept_fits - may the kept resolver serve ROOT with TIMEOUT_MS? */
static int kept_fits(const char *root, int timeout_ms)
{
	return kept.d && strcmp(kept.root.s, root) == 0 &&
	       kept.timeout_ms == timeout_ms &&
	       kept.d->asked < DNS_REUSE_QUERIES;
}

/* hand_out - the kept resolver, as dns_open() would make it */
static int hand_out(struct dns **d_r)
{
	kept.d->deadline = 0;
	kept.d->visible = 0;
	*d_r = kept.d;
	return 0;
}

/* dns_reuse - see dns.h */
int dns_reuse(struct dns **d_r, const char *root, int timeout_ms)
{
	struct conf_id ctl, sys;
	struct str path = STR_INIT;
	int r;

	/* the files looked at once a second at most, not at every message */
	if (kept_fits(root, timeout_ms) && now_ms() - kept.seen_ms < 1000)
		return hand_out(d_r);
	r = ctl_path(&path, root, "resolvers");
	if (r < 0)
		return r;
	conf_id(path.s, &ctl);
	str_free(&path);
	/* dns_open() falls back on it when control/resolvers is empty */
	conf_id("/etc/resolv.conf", &sys);
	kept.seen_ms = now_ms();
	if (kept.d && conf_same(&kept.ctl, &ctl) &&
	    conf_same(&kept.sys, &sys)) {
		if (kept_fits(root, timeout_ms))
			return hand_out(d_r);
	} else {
		dnscache_clear();	/* other servers may answer otherwise */
	}
	dns_close(kept.d);
	kept.d = NULL;
	str_trunc(&kept.root, 0);
	r = str_cats(&kept.root, root);
	/* its UDP sockets stay open between queries (no socket, connect,
	 * fcntl and close for each), DNS_REUSE_QUERIES queries each */
	if (r == 0)
		r = open_flags(&kept.d, root, timeout_ms, ARES_FLAG_STAYOPEN);
	if (r < 0)
		return r;
	kept.d->cache = 1;
	kept.timeout_ms = timeout_ms;
	kept.ctl = ctl;
	kept.sys = sys;
	return hand_out(d_r);
}

/* pump - one wait for c-ares' sockets, at most until deadline (-1:
 * c-ares' own timeouts alone), and what arrived processed; -errno when
 * poll fails */
static int pump(struct dns *d, int64_t deadline)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	struct timeval tv, *tvp;
	unsigned bits;
	int i, n = 0, ms, pr;

	/* the bits by hand: ARES_GETSOCK_WRITABLE shifts a signed 1 into
	 * the sign bit for the 16th socket */
	bits = (unsigned)ares_getsock(d->ch, socks, ARES_GETSOCK_MAXNUM);
	for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short ev = 0;

		if (bits & (1u << i))
			ev |= POLLIN;
		if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
			ev |= POLLOUT;
		if (!ev)
			continue;
		pfd[n].fd = socks[i];
		pfd[n].events = ev;
		pfd[n].revents = 0;
		n++;
	}
	tvp = ares_timeout(d->ch, NULL, &tv);
	ms = tvp ? (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000) + 1 : 1000;
	if (deadline >= 0) {
		int64_t left = deadline - now_ms();

		ms = left < 0 ? 0 : left < ms ? (int)left : ms;
	}
	pr = poll(pfd, (nfds_t)n, ms);
	if (pr < 0)
		return errno == EINTR ? 0 : -errno;
	if (pr == 0) {
		ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
		return 0;
	}
	for (i = 0; i < n; i++) {
		short re = pfd[i].revents;

		ares_process_fd(d->ch, re & (POLLIN | POLLERR | POLLHUP) ?
				pfd[i].fd : ARES_SOCKET_BAD,
				re & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
	}
	return 0;
}

/* dns_deadline - cancel every query still waiting at now_ms() == ms
 * (0: no deadline), so that a caller's total time is bounded, not only
 * each query's */
void dns_deadline(struct dns *d, int64_t ms)
{
	d->deadline = ms;
}

/* wait_all - drive c-ares until every query sent has had its callback */
static int wait_all(struct dns *d)
{
	int r;

	while (d->pending) {
		if (d->deadline && now_ms() >= d->deadline) {
			ares_cancel(d->ch);	/* each query fails with -ETIMEDOUT */
			continue;
		}
		r = pump(d, d->deadline ? d->deadline : -1);
		if (r < 0) {
			ares_cancel(d->ch);	/* runs the callbacks */
			return r;
		}
	}
	return 0;
}

/* parse_addrs - the A or AAAA records of an answer into q->a.addrs */
static void parse_addrs(struct dq *q, const unsigned char *abuf, int alen)
{
	struct hostent *h = NULL;
	size_t n = 0, i;
	int st;

	st = q->type == ns_t_a ? ares_parse_a_reply(abuf, alen, &h, NULL, NULL)
			       : ares_parse_aaaa_reply(abuf, alen, &h, NULL,
						       NULL);
	if (st != ARES_SUCCESS) {
		q->r = status_err(st);
		return;
	}
	while (h->h_addr_list[n])
		n++;
	if (n == 0) {
		q->r = -ENODATA;
		goto out;
	}
	q->a.addrs = calloc(n, sizeof *q->a.addrs);
	if (!q->a.addrs) {
		q->r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct dns_addr *a = &q->a.addrs[q->a.naddrs];

		if (q->type == ns_t_a && h->h_length == 4) {
			a->family = AF_INET;
			memcpy(&a->a.v4, h->h_addr_list[i], 4);
		} else if (q->type == ns_t_aaaa && h->h_length == 16) {
			a->family = AF_INET6;
			memcpy(&a->a.v6, h->h_addr_list[i], 16);
		} else {
			continue;
		}
		q->a.naddrs++;
	}
	q->r = q->a.naddrs ? 0 : -ENODATA;
out:
	ares_free_hostent(h);
}

/* mx_cmp - by preference (shuffle_equal orders the ties) */
static int mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return x->pref != y->pref ? (x->pref < y->pref ? -1 : 1) : 0;
}

/* shuffle_equal - random order among records of the same preference */
static void shuffle_equal(struct dns_mx *mx, size_t n)
{
	size_t a = 0, b, i;

	while (a < n) {
		for (b = a + 1; b < n && mx[b].pref == mx[a].pref; b++)
			;
		for (i = b - 1; i > a; i--) {
			uint32_t span = (uint32_t)(i - a) + 1;
			size_t j = a + arc4random_uniform(span);
			struct dns_mx t = mx[i];

			mx[i] = mx[j];
			mx[j] = t;
		}
		a = b;
	}
}

/* parse_mx - the MX records of an answer, sorted, into q->a.mx */
static void parse_mx(struct dq *q, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *head = NULL, *m;
	size_t n = 0, i = 0;
	int st = ares_parse_mx_reply(abuf, alen, &head);

	if (st != ARES_SUCCESS) {
		q->r = status_err(st);
		return;
	}
	for (m = head; m; m = m->next)
		n++;
	if (n == 0) {
		q->r = -ENODATA;
		goto out;
	}
	q->a.mx = calloc(n, sizeof *q->a.mx);
	if (!q->a.mx) {
		q->r = -ENOMEM;
		goto out;
	}
	for (m = head; m; m = m->next, i++) {
		const char *h = m->host ? m->host : "";

		/* c-ares spells the root "" (some versions "."): a null MX */
		if (strcmp(h, ".") == 0)
			h = "";
		q->a.mx[i].pref = m->priority;
		q->a.mx[i].host = strdup(h);
		if (!q->a.mx[i].host) {
			dns_mx_free(q->a.mx, i);
			q->a.mx = NULL;
			q->r = -ENOMEM;
			goto out;
		}
	}
	q->a.nmx = n;
	qsort(q->a.mx, n, sizeof *q->a.mx, mx_cmp);
	shuffle_equal(q->a.mx, n);
	q->r = 0;
out:
	ares_free_data(head);
}

/* parse_txt - the TXT records of an answer, the strings of each record
 * joined without separator (RFC 7208 3.3), into q->a.txt. The answer is one
 * DNS message (at most 64 KiB), which bounds the records and their size. */
static void parse_txt(struct dq *q, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *head = NULL, *t;
	size_t n = 0, i = 0;
	int st = ares_parse_txt_reply_ext(abuf, alen, &head);

	if (st != ARES_SUCCESS) {
		q->r = status_err(st);
		return;
	}
	for (t = head; t; t = t->next)
		if (t->record_start || t == head)
			n++;
	if (n == 0) {
		q->r = -ENODATA;
		goto out;
	}
	q->a.txt = calloc(n, sizeof *q->a.txt);
	if (!q->a.txt) {
		q->r = -ENOMEM;
		goto out;
	}
	q->a.ntxt = n;
	for (t = head; t; t = t->next) {
		if (t != head && t->record_start)
			i++;
		if (str_catb(&q->a.txt[i], t->txt, t->length) < 0) {
			q->r = -ENOMEM;
			goto out;
		}
	}
	q->r = 0;
out:
	ares_free_data(head);
}

/* parse_ptr - the PTR names of an answer into q->a.names; c-ares gives
 * every PTR record as an alias (the last one also as h_name) */
static void parse_ptr(struct dq *q, const unsigned char *abuf, int alen)
{
	struct hostent *h = NULL;
	unsigned char dummy[4] = {0};
	char *one[2] = {NULL, NULL}, **list = one;
	size_t n = 0, i;
	int st = ares_parse_ptr_reply(abuf, alen, dummy, 4, AF_INET, &h);

	if (st != ARES_SUCCESS) {
		q->r = status_err(st);
		return;
	}
	one[0] = h->h_name;
	if (h->h_aliases && h->h_aliases[0])
		list = h->h_aliases;
	while (list[n])
		n++;
	if (n == 0) {
		q->r = -ENODATA;
		goto out;
	}
	q->a.names = calloc(n, sizeof *q->a.names);
	if (!q->a.names) {
		q->r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		q->a.names[i] = strdup(list[i]);
		if (!q->a.names[i]) {
			q->r = -ENOMEM;
			goto out;
		}
		q->a.nnames++;
	}
	q->r = 0;
out:
	ares_free_hostent(h);
}

/* parse_answer - a successful answer into q, by the question's type */
static void parse_answer(struct dq *q, const unsigned char *abuf, int alen)
{
	if (q->type == ns_t_mx)
		parse_mx(q, abuf, alen);
	else if (q->type == ns_t_txt)
		parse_txt(q, abuf, alen);
	else if (q->type == ns_t_ptr)
		parse_ptr(q, abuf, alen);
	else
		parse_addrs(q, abuf, alen);
}

/* dns_parse - parse_answer without a query (dns.h) */
int dns_parse(int type, const unsigned char *abuf, size_t alen,
	      struct dns_answer *a)
{
	struct dq q;

	memset(a, 0, sizeof *a);
	if (alen > 65535)
		return -EINVAL;	/* no DNS message is longer */
	memset(&q, 0, sizeof q);
	q.type = type;
	parse_answer(&q, abuf, (int)alen);
	if (q.r < 0)
		dns_answer_free(&q.a);
	else
		*a = q.a;
	return q.r;
}

/* dns_answer_free - what dns_parse filled in */
void dns_answer_free(struct dns_answer *a)
{
	free(a->addrs);
	dns_mx_free(a->mx, a->nmx);
	dns_txt_free(a->txt, a->ntxt);
	dns_names_free(a->names, a->nnames);
	memset(a, 0, sizeof *a);
}

/* answered - the callback of every query */
static void answered(void *arg, int status, int timeouts,
		     unsigned char *abuf, int alen)
{
	struct dq *q = arg;

	(void)timeouts;
	q->d->pending--;
	q->r = status_err(status);
	/* a batch's caller tells silence (give up, say unchecked) from an
	 * answer that says "failed" (SERVFAIL, REFUSED, no route) */
	if (q->name && status == ARES_ETIMEOUT)
		q->r = -ETIMEDOUT;
	if (status != ARES_SUCCESS || !abuf || alen < 0)
		return;
	parse_answer(q, abuf, alen);
	if (q->key && q->r == 0)
		dnscache_put(q->key, q->type, now_ms(), abuf, (size_t)alen);
}

/* cached - answer q from lib/dnscache when D keeps answers and NAME's
 * is there: 1, else 0 (and q->key set for its answer to be kept) */
static int cached(struct dns *d, struct dq *q, const char *name)
{
	const unsigned char *m;
	size_t n;

	if (!d->cache)
		return 0;
	if (dnscache_get(name, q->type, now_ms(), &m, &n)) {
		q->r = 0;
		parse_answer(q, m, (int)n);
		return 1;
	}
	q->key = name;
	return 0;
}

/* ask - send one query; its result arrives in q at wait_all() */
static void ask(struct dns *d, struct dq *q, const char *name, int type)
{
	memset(q, 0, sizeof *q);
	q->d = d;
	q->type = type;
	q->r = -EAGAIN;
	if (cached(d, q, name))
		return;
	d->pending++;
	d->asked++;
	ares_query(d->ch, name, ns_c_in, type, answered, q);
}

/* dq_free - every result a query holds (after a failure) */
static void dq_free(struct dq *q)
{
	dns_answer_free(&q->a);
	memset(q, 0, sizeof *q);
}

/* ask_one - one question, answered: 0 with the result in q, or the
 * query's error (q then holds no result) */
static int ask_one(struct dns *d, struct dq *q, const char *name, int type)
{
	int r;

	memset(q, 0, sizeof *q);
	if (!askable(d, name))
		return -EINVAL;
	ask(d, q, name, type);
	r = wait_all(d);
	if (r == 0)
		r = q->r;
	if (r < 0)
		dq_free(q);
	return r;
}

/* dns_mx_free - what dns_mx returned */
void dns_mx_free(struct dns_mx *mx, size_t n)
{
	size_t i;

	if (!mx)
		return;
	for (i = 0; i < n; i++)
		free(mx[i].host);
	free(mx);
}

/* dns_mx - the MX records of domain, best first (see dns.h) */
int dns_mx(struct dns *d, const char *domain, struct dns_mx **mx_r,
	   size_t *n_r)
{
	struct dq q;
	int r = ask_one(d, &q, domain, ns_t_mx);

	*mx_r = q.a.mx;
	*n_r = q.a.nmx;
	return r;
}

/* merge_addrs - the AAAA (q6) and A (q4) answers of one name as one
 * list, IPv6 first: addresses of one kind are enough even if the other
 * kind failed; else the worse of the two failures */
static int merge_addrs(const struct dq *q6, const struct dq *q4,
		       struct dns_addr **a_r, size_t *n_r)
{
	struct dns_addr *all;
	size_t n = q6->a.naddrs + q4->a.naddrs;

	*a_r = NULL;
	*n_r = 0;
	if (n == 0) {
		if (q6->r == -ENOMEM || q4->r == -ENOMEM)
			return -ENOMEM;
		if (q6->r == -ETIMEDOUT || q4->r == -ETIMEDOUT)
			return -ETIMEDOUT;
		if (q6->r == -EAGAIN || q4->r == -EAGAIN)
			return -EAGAIN;
		if (q6->r == -ENOENT && q4->r == -ENOENT)
			return -ENOENT;
		if (q6->r == -EINVAL && q4->r == -EINVAL)
			return -EINVAL;
		return -ENODATA;
	}
	all = calloc(n, sizeof *all);
	if (!all)
		return -ENOMEM;
	if (q6->a.naddrs)
		memcpy(all, q6->a.addrs, q6->a.naddrs * sizeof *all);
	if (q4->a.naddrs)
		memcpy(all + q6->a.naddrs, q4->a.addrs, q4->a.naddrs * sizeof *all);
	*a_r = all;
	*n_r = n;
	return 0;
}

/* dns_addrs - AAAA and A records of name, asked together; IPv6 first */
int dns_addrs(struct dns *d, const char *name, struct dns_addr **a_r,
	      size_t *n_r)
{
	struct dq q6, q4;
	int r;

	*a_r = NULL;
	*n_r = 0;
	if (!askable(d, name))
		return -EINVAL;
	ask(d, &q6, name, ns_t_aaaa);
	ask(d, &q4, name, ns_t_a);
	r = wait_all(d);
	if (r == 0)
		r = merge_addrs(&q6, &q4, a_r, n_r);
	free(q6.a.addrs);
	free(q4.a.addrs);
	return r;
}

/* batch_subs - the queries of a batch, unsent: one for an MX or TXT
 * question, AAAA then A for an address question; NULL without memory */
static struct dq *batch_subs(struct dns *d, struct dns_q *q, size_t n,
			     size_t *nsub_r)
{
	struct dq *sub;
	size_t i, k = 0;

	if (n > SIZE_MAX / 2 / sizeof *sub)
		return NULL;
	sub = calloc(2 * n, sizeof *sub);
	if (!sub)
		return NULL;
	for (i = 0; i < n; i++) {
		int kinds = q[i].type == DNS_Q_ADDRS ? 2 : 1, j;

		for (j = 0; j < kinds; j++, k++) {
			sub[k].d = d;
			sub[k].name = q[i].name;
			sub[k].type = q[i].type == DNS_Q_MX ? ns_t_mx :
				q[i].type == DNS_Q_TXT ? ns_t_txt :
				j == 0 ? ns_t_aaaa : ns_t_a;
			/* what stays if the deadline comes first */
			sub[k].r = dns_name_ok(q[i].name) ? -ETIMEDOUT :
				-EINVAL;
		}
	}
	*nsub_r = k;
	return sub;
}

/* send_sub - ask one query of a batch (a bad name is answered already) */
static void send_sub(struct dns *d, struct dq *q)
{
	if (q->r == -EINVAL || cached(d, q, q->name))
		return;
	d->pending++;
	d->asked++;
	ares_query(d->ch, q->name, ns_c_in, q->type, answered, q);
}

/* run_batch - keep DNS_BATCH_WINDOW queries in flight until all are
 * answered or the deadline; what is still out then is cancelled, and
 * its callback gives it -ETIMEDOUT */
static int run_batch(struct dns *d, struct dq *sub, size_t nsub,
		     int64_t deadline)
{
	size_t sent = 0;
	int r = 0;

	while (r == 0 && (sent < nsub || d->pending)) {
		while (sent < nsub && d->pending < DNS_BATCH_WINDOW)
			send_sub(d, &sub[sent++]);
		if (now_ms() >= deadline)
			break;
		if (d->pending)
			r = pump(d, deadline);
	}
	if (d->pending)
		ares_cancel(d->ch);
	return r;
}

/* dns_batch - many questions under one deadline (see dns.h) */
int dns_batch(struct dns *d, struct dns_q *q, size_t n, int64_t deadline_ms)
{
	struct dq *sub;
	size_t nsub = 0, i, k = 0;
	int r;

	for (i = 0; i < n; i++) {
		q[i].r = -ETIMEDOUT;
		q[i].mx = NULL;
		q[i].addrs = NULL;
		q[i].nmx = q[i].naddrs = 0;
		str_trunc(&q[i].txt, 0);
	}
	if (n == 0)
		return 0;
	sub = batch_subs(d, q, n, &nsub);
	if (!sub)
		return -ENOMEM;
	r = run_batch(d, sub, nsub, deadline_ms);
	for (i = 0; i < n; i++) {
		if (q[i].type != DNS_Q_ADDRS) {
			q[i].r = sub[k].r;
			q[i].mx = sub[k].a.mx;
			q[i].nmx = sub[k].a.nmx;
			/* a DKIM key: the first record (RFC 6376 3.6.2.2
			 * leaves several undefined) */
			if (sub[k].a.ntxt && sub[k].a.txt[0].len &&
			    str_catb(&q[i].txt, sub[k].a.txt[0].s,
				     sub[k].a.txt[0].len) < 0)
				q[i].r = -ENOMEM;
			dns_txt_free(sub[k].a.txt, sub[k].a.ntxt);
			k++;
			continue;
		}
		q[i].r = merge_addrs(&sub[k], &sub[k + 1], &q[i].addrs,
				     &q[i].naddrs);
		free(sub[k].a.addrs);
		free(sub[k + 1].a.addrs);
		k += 2;
	}
	free(sub);
	return r;
}

/* dns_batch_free - what dns_batch left in q */
void dns_batch_free(struct dns_q *q, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		dns_mx_free(q[i].mx, q[i].nmx);
		free(q[i].addrs);
		q[i].mx = NULL;
		q[i].addrs = NULL;
		q[i].nmx = q[i].naddrs = 0;
		str_free(&q[i].txt);
	}
}

/* dns_dnsbl - n A questions at once (see dns.h) */
int dns_dnsbl(struct dns *d, const char *const *names, size_t n, int *listed)
{
	struct dq *q;
	size_t i;
	int r;

	if (n == 0)
		return 0;
	if (n > SIZE_MAX / sizeof *q)
		return -ENOMEM;
	q = calloc(n, sizeof *q);
	if (!q)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (dns_name_ok(names[i]))
			ask(d, &q[i], names[i], ns_t_a);
		else
			q[i].r = -EINVAL;
	}
	r = wait_all(d);
	for (i = 0; i < n; i++) {
		if (r < 0 || q[i].r == -EAGAIN || q[i].r == -ENOMEM)
			listed[i] = -1;
		else if (q[i].r == 0)
			listed[i] = 1;
		else
			listed[i] = 0;	/* NXDOMAIN, NODATA, not a name */
		free(q[i].a.addrs);
	}
	free(q);
	return r;
}

/* dns_txt_free - what dns_txt returned */
void dns_txt_free(struct str *txt, size_t n)
{
	size_t i;

	if (!txt)
		return;
	for (i = 0; i < n; i++)
		str_free(&txt[i]);
	free(txt);
}

/* dns_txt - the TXT records of name, each one's strings joined */
int dns_txt(struct dns *d, const char *name, struct str **txt_r,
	    size_t *n_r)
{
	struct dq q;
	int r = ask_one(d, &q, name, ns_t_txt);

	*txt_r = q.a.txt;
	*n_r = q.a.ntxt;
	return r;
}

/* dns_addrs_af - the A (AF_INET) or AAAA (AF_INET6) records of name */
int dns_addrs_af(struct dns *d, const char *name, int family,
		 struct dns_addr **a_r, size_t *n_r)
{
	struct dq q;
	int r = ask_one(d, &q, name,
			family == AF_INET6 ? ns_t_aaaa : ns_t_a);

	*a_r = q.a.addrs;
	*n_r = q.a.naddrs;
	return r;
}

/* dns_names_free - what dns_ptr returned */
void dns_names_free(char **names, size_t n)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* dns_ptr_name - the in-addr.arpa or ip6.arpa name of an address */
int dns_ptr_name(const struct dns_addr *a, struct str *out)
{
	static const char hex[] = "0123456789abcdef";
	int i, r = 0;

	str_trunc(out, 0);
	if (a->family == AF_INET) {
		const unsigned char *b = (const unsigned char *)&a->a.v4;

		return str_catf(out, "%u.%u.%u.%u.in-addr.arpa",
				b[3], b[2], b[1], b[0]);
	}
	for (i = 15; i >= 0 && r == 0; i--) {
		unsigned char b = a->a.v6.s6_addr[i];

		r = str_catf(out, "%c.%c.", hex[b & 15], hex[b >> 4]);
	}
	return r ? r : str_cats(out, "ip6.arpa");
}

/* dns_ptr - the PTR names of an address */
int dns_ptr(struct dns *d, const struct dns_addr *a, char ***names_r,
	    size_t *n_r)
{
	struct str name = STR_INIT;
	struct dq q;
	int r;

	*names_r = NULL;
	*n_r = 0;
	r = dns_ptr_name(a, &name);
	if (r < 0)
		return r;
	r = ask_one(d, &q, name.s, ns_t_ptr);
	str_free(&name);
	if (r < 0)
		return r;
	*names_r = q.a.names;
	*n_r = q.a.nnames;
	return 0;
}
