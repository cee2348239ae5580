/*
 * listen - listening sockets, bound or inherited (see listen.h).
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "msg.h"
#include "num.h"
#include "peer.h"

static const struct {
	const char *kind;
	int port;
} ports[] = {
	{"smtp", 25}, {"submission", 587}, {"smtps", 465}, {"pop3", 110},
	{"pop3s", 995},
};

/* listen_default_port - the standard port of KIND, -ENOENT if unknown */
int listen_default_port(const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof ports / sizeof ports[0]; i++)
		if (!strcmp(ports[i].kind, kind))
			return ports[i].port;
	return -ENOENT;
}

/* port_num - 1 to 65535, decimal digits only */
static int port_num(const char *s, unsigned *port_r)
{
	uint64_t v;

	if (num_parse(s, 65535, &v) || v == 0)
		return -EINVAL;
	*port_r = (unsigned)v;
	return 0;
}

/* listen_parse - "ADDR:PORT" (IPv4) or "[V6]:PORT", literal addresses */
int listen_parse(const char *line, struct sockaddr_storage *ss,
		 socklen_t *len_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = line;
	unsigned port;
	size_t hl;
	int v6 = 0;

	if (*line == '[') {
		const char *rb = strchr(line, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = line + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
		v6 = 1;
	} else {
		colon = strrchr(line, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - line);
	}
	if (hl == 0 || hl >= sizeof host || port_num(colon + 1, &port) < 0)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EINVAL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len_r = sizeof *s4;
	}
	return 0;
}

/* listen_port_ok - 1 for a port root may bind for a listen line (above) */
int listen_port_ok(const struct sockaddr_storage *ss)
{
	static const unsigned mail[] = {25, 465, 587, 110, 995};
	unsigned port = ss->ss_family == AF_INET6 ?
		ntohs(((const struct sockaddr_in6 *)ss)->sin6_port) :
		ntohs(((const struct sockaddr_in *)ss)->sin_port);
	size_t i;

	for (i = 0; i < sizeof mail / sizeof *mail; i++)
		if (port == mail[i])
			return 1;
	return port >= 1024;
}

/* add - one more socket in the set; the descriptor is the set's even on
 * failure (closed then) */
static int add(struct listen_set *set, int fd, const char *kind,
	       const char *name)
{
	struct listen_sock *s = reallocarray(set->s, set->n + 1, sizeof *s);

	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	set->s = s;
	s[set->n].fd = fd;
	s[set->n].kind = kind;
	s[set->n].name = (struct str)STR_INIT;
	if (str_copys(&s[set->n].name, name) < 0) {
		close(fd);
		return -ENOMEM;
	}
	set->n++;
	return 0;
}

/* bind_one - a listening socket for one listen line, parsed into SS */
static int bind_one(struct listen_set *set, const char *line,
		    const struct sockaddr_storage *ss, socklen_t len,
		    const char *kind)
{
	int fd, one = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (ss->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return add(set, fd, kind, line);
}

/* listen_bind - bind every line of control/listen.KIND, or the defaults */
int listen_bind(struct listen_set *set, const char *root, const char *kind,
		struct str *err)
{
	struct str name = STR_INIT, path = STR_INIT, lines = STR_INIT;
	struct stat st;
	size_t n, i;
	int r, deflt = 0, port = listen_default_port(kind);

	str_trunc(err, 0);
	r = port < 0 ? port : str_catf(&name, "listen.%s", kind);
	if (r == 0)
		r = ctl_path(&path, root, name.s);
	if (r == 0) {
		deflt = stat(path.s, &st) < 0 && errno == ENOENT;
		if (deflt)
			r = str_catf(&lines, "0.0.0.0:%d%c[::]:%d%c", port, 0,
				     port, 0);
		else
			r = ctl_get_lines(root, name.s, &lines, &n);
		if (r < 0)
			(void)str_catf(err, "cannot read %s: %s", path.s,
				       msg_err(r));
	}
	for (i = 0; r == 0 && i < lines.len; i += strlen(lines.s + i) + 1) {
		const char *line = lines.s + i;
		struct sockaddr_storage ss;
		socklen_t len;
		int bad = listen_parse(line, &ss, &len) < 0;
		int low = !bad && !listen_port_ok(&ss);

		r = bad ? -EINVAL : low ? -EPERM :
		    bind_one(set, line, &ss, len, kind);
		if (r == -EAFNOSUPPORT && deflt)
			r = 0;
		else if (bad)
			(void)str_catf(err, "%s: bad listen address '%s'; write "
				       "ADDR:PORT or [IPV6]:PORT", path.s, line);
		else if (low)
			(void)str_catf(err, "%s: '%s' is a port below 1024 that "
				       "no mail service uses (25, 465, 587, "
				       "110, 995): control/ is the mail "
				       "user's, so no other privileged port "
				       "is bound; use one from 1024 up",
				       path.s, line);
		else if (r < 0)
			(void)str_catf(err, "cannot listen on %s (%s): %s; stop "
				       "what holds the port or change %s", line,
				       name.s, msg_err(r), path.s);
	}
	if (r < 0 && err->len == 0)
		(void)str_catf(err, "listen.%s: %s", kind, msg_err(r));
	str_free(&name);
	str_free(&path);
	str_free(&lines);
	return r;
}

/* sock_name - the local address of a socket, as a listen line */
static int sock_name(int fd, struct str *out)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in6 *s6 = (const void *)&ss;
	const struct sockaddr_in *s4 = (const void *)&ss;
	socklen_t len = sizeof ss;
	char host[PEER_TEXT_MAX];
	int r;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if ((r = peer_text((struct sockaddr *)&ss, len, host, sizeof host)))
		return r;
	/* the port sits at the same offset in both, but say which */
	return str_catf(out, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
			ntohs(ss.ss_family == AF_INET ? s4->sin_port :
			      s6->sin6_port));
}

/* take_fd - adopt one inherited descriptor: it must be a listening TCP
 * socket, and becomes non-blocking and close-on-exec here */
static int take_fd(struct listen_set *set, int fd, const char *kind)
{
	struct str name = STR_INIT;
	int type = 0, acc = 0, fl, r;
	socklen_t len = sizeof type, alen = sizeof acc;
	size_t i;

	for (i = 0; i < set->n; i++)
		if (set->s[i].fd == fd)
			return -EEXIST;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) < 0)
		return errno == EBADF ? -EBADF : -ENOTSOCK;
	if (type != SOCK_STREAM || !acc)
		return -ENOTSOCK;
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	r = sock_name(fd, &name);
	if (r == 0)
		r = add(set, fd, kind, name.s);
	else
		close(fd);
	str_free(&name);
	return r;
}

/* listen_take - the sockets of KIND named in LISTEN_ENV: 1 when the
 * variable is set (even if it names none for KIND), 0 when it is not */
int listen_take(struct listen_set *set, const char *kind, struct str *err)
{
	const char *env = getenv(LISTEN_ENV), *p;
	size_t kl = strlen(kind);

	str_trunc(err, 0);
	if (!env)
		return 0;
	for (p = env; *p; ) {
		const char *end = strchr(p, ' ');
		const char *q;

		if (!end)
			end = p + strlen(p);
		if ((size_t)(end - p) > kl && !strncmp(p, kind, kl) &&
		    p[kl] == '=') {
			for (q = p + kl + 1; q < end; ) {
				uint64_t fd;
				size_t used;
				int r;

				if (num_scan(q, (size_t)(end - q), 65535, &fd,
					     &used) || fd < 3)
					goto bad;
				q += used;
				if (q < end && *q != ',')
					goto bad;
				r = take_fd(set, (int)fd, kind);
				if (r < 0) {
					(void)str_catf(err, "%s: descriptor %d "
						       "for %s: %s", LISTEN_ENV,
						       (int)fd, kind, msg_err(r));
					return r;
				}
				if (q < end)
					q++;
			}
			return 1;
		}
		p = *end ? end + 1 : end;
	}
	return 1;
bad:
	(void)str_catf(err, "%s: cannot parse '%s'; facteur run writes "
		       "KIND=FD,FD... items", LISTEN_ENV, env);
	return -EINVAL;
}

/* listen_get - inherited sockets if there are any, else bind */
int listen_get(struct listen_set *set, const char *root, const char *kind,
	       struct str *err)
{
	int r = listen_take(set, kind, err);

	if (r != 0)
		return r < 0 ? r : 0;
	return listen_bind(set, root, kind, err);
}

/* listen_env - "LISTEN_ENV=KIND=FD,... ..." for the sockets of KINDS */
int listen_env(const struct listen_set *set, const char *const *kinds,
	       size_t nkinds, struct str *out)
{
	size_t i, k;
	int r;

	str_trunc(out, 0);
	r = str_cats(out, LISTEN_ENV "=");
	for (k = 0; r == 0 && k < nkinds; k++) {
		const char *sep = "=";

		r = str_catf(out, "%s%s", k ? " " : "", kinds[k]);
		for (i = 0; r == 0 && i < set->n; i++)
			if (!strcmp(set->s[i].kind, kinds[k])) {
				r = str_catf(out, "%s%d", sep, set->s[i].fd);
				sep = ",";
			}
		if (r == 0 && *sep == '=')
			r = str_catc(out, '=');
	}
	return r;
}

/* listen_free - close every socket of the set and forget them */
void listen_free(struct listen_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (set->s[i].fd >= 0)
			close(set->s[i].fd);
		str_free(&set->s[i].name);
	}
	free(set->s);
	set->s = NULL;
	set->n = 0;
}
