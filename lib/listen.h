/*
 * listen - the listening sockets of control/listen.KIND, bound here or
 * inherited from `facteur run`.
 *
 * KIND is one of smtp, submission, smtps (mta-smtpd), pop3, pop3s
 * (pop3d). control/listen.KIND holds one ADDR:PORT or [V6ADDR]:PORT a
 * line; an empty file means no socket, a missing one 0.0.0.0 and :: on
 * the standard port (a host without IPv6 is then no error). IPv6 sockets
 * are IPV6_V6ONLY, so [::]:25 beside 0.0.0.0:25 does not claim the IPv4
 * port. Every socket is non-blocking and close-on-exec.
 *
 * `facteur run` binds as root (listen_bind) and passes each service its
 * sockets across execve in the environment variable LISTEN_ENV, written
 * by listen_env():
 *
 *     FACTEUR_LISTEN_FDS=smtp=3,4 submission=5 smtps=
 *
 * space-separated KIND=FD[,FD...] items; a kind named with no descriptor,
 * or not named, has no socket. A service calls listen_get() for each of
 * its kinds: with LISTEN_ENV set it takes the descriptors given there
 * (each must be a listening stream socket) and binds nothing, without it
 * it binds control/listen.KIND itself. It then unsets LISTEN_ENV so that
 * nothing it starts inherits the claim.
 *
 * listen_parse() is the one parser of a listen line (the services, `facteur
 * run` and `facteur doctor` use it). listen_port_ok() is the rule of the
 * ports root may bind for a listen line: a mail port (25, 465, 587, 110,
 * 995) or one from 1024 up. control/ is the mail user's (facteur init
 * gives it the root's content), so without the rule a mail user that
 * wrote listen.smtp could have root bind it any privileged port (22,
 * 443, ...) on a host where that service is down, and receive the
 * socket; listen_bind refuses such a line (-EPERM), doctor names it. Functions return 0 or a negative errno
 * code and, on failure, put a sentence saying what to do in *err.
 */
#ifndef FACTEUR_LISTEN_H
#define FACTEUR_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

#include "str.h"

#define LISTEN_ENV "FACTEUR_LISTEN_FDS"

struct listen_sock {
	int fd;
	const char *kind;	/* as given to listen_bind/listen_get */
	struct str name;	/* the listen line, or the bound address */
};

struct listen_set {
	struct listen_sock *s;
	size_t n;
};

#define LISTEN_SET_INIT {NULL, 0}

int listen_parse(const char *line, struct sockaddr_storage *ss,
		 socklen_t *len_r);
int listen_default_port(const char *kind);
int listen_port_ok(const struct sockaddr_storage *ss);
int listen_bind(struct listen_set *set, const char *root, const char *kind,
		struct str *err);
int listen_take(struct listen_set *set, const char *kind, struct str *err);
int listen_get(struct listen_set *set, const char *root, const char *kind,
	       struct str *err);
int listen_env(const struct listen_set *set, const char *const *kinds,
	       size_t nkinds, struct str *out);
void listen_free(struct listen_set *set);

#endif
