/*
 * server - the listening parent of mta-smtpd and pop3d, and the session
 * processes it keeps ready (Postfix's single_server: the programs supply
 * only what a session is).
 *
 * A connection used to cost a fork, the new process's page faults and its
 * exit, all between the client's connect and the greeting. Instead a
 * small parent keeps processes ready: each waits on the listening sockets
 * itself (EPOLLEXCLUSIVE, so one wakes per connection), accepts, serves
 * the session and waits again, up to SERVER_USES sessions one after the
 * other (Postfix's max_use). One process serves one session at a time, so
 * a session can crash, hang or be killed without touching another, and
 * maxsessions is the number of processes.
 *
 * The parent forks a process whenever fewer than SERVER_SPARE wait, up to
 * maxsessions; a process told that it made the idle count fall writes a
 * byte to the parent's wake-up pipe, so the fork happens beside the
 * session, not in its way. The processes, and the client each serves, are
 * lib/limit's session table (shared by all, made before the first fork;
 * an IPv6 client counts by its /64): a process publishes its client, then
 * counts it against maxperip. Two clients of one address that arrive
 * together both count each other, so the limit errs toward refusing, never
 * toward letting more in. With every process busy, the parent accepts and
 * refuses the client itself. A process waiting with nothing to do for
 * SERVER_IDLE seconds leaves when more than SERVER_SPARE wait; every
 * process leaves when the parent is gone (the read end of a pipe only the
 * parent can write hangs up).
 *
 * The program fills struct server, calls server_listen() with its kinds
 * of listeners (listen_get() for each: inherited from facteur run or
 * bound; 0 or the first error, with its sentence in *err), and then
 * server_run():
 *
 *   prog      the service name of the log lines (lib/log.h)
 *   ls        its listeners, filled by server_listen()
 *   maxsessions, maxperip   fixed limits, or 0: control/maxsessions
 *             (1000) and control/maxperip (20), read at each connection
 *   serve     one session: client->fd is closed by the server afterwards;
 *             the session may leave its slot (limit_sess_leave) before
 *             its last reply, so that a client that reconnects at once is
 *             not counted twice (the server leaves it anyway)
 *   refuse    a client over a limit (why: SERVER_BUSY, SERVER_PERIP): the
 *             program answers if it can without waiting, and logs; the
 *             server closes the descriptor
 *   done      what a session process frees before it exits (may be NULL)
 *   stop      0: signals keep their default (SIGTERM kills the parent; the
 *             processes finish their session and leave); 1: SIGTERM,
 *             SIGINT and SIGHUP end every session process (SIGTERM, then
 *             SIGKILL after SERVER_STOP_MS) and server_run() returns 0
 *
 * server_run() returns only after a stop, or with a negative errno code
 * and in *what the step that failed, when it cannot start or its poll
 * fails. It writes its own few log lines on stderr: a session process that
 * ended on a signal other than SIGTERM, one that cannot wait for
 * connections, and the stop.
 */
#ifndef FACTEUR_SERVER_H
#define FACTEUR_SERVER_H

#include <stddef.h>

#include "limit.h"
#include "listen.h"

#define SERVER_SLOTS 16384	/* processes at most, whatever maxsessions */
#define SERVER_SPARE 4		/* processes kept waiting */
#define SERVER_USES 100		/* sessions a process serves, then leaves */
#define SERVER_IDLE 60		/* seconds an extra waiting process stays */
#define SERVER_STOP_MS 5000	/* sessions' time to end before SIGKILL */

enum server_why { SERVER_BUSY, SERVER_PERIP };

struct server_client {
	int fd;
	const char *kind;	/* the listener's: "smtp", "pop3s", ... */
	const char *ip;		/* peer_text(), "" if none */
	struct limit_sess *sess;	/* the session table and ... */
	size_t slot;		/* ... this process's slot in it */
};

struct server {
	const char *root;
	const char *prog;
	struct listen_set ls;
	unsigned long maxsessions, maxperip;
	void (*serve)(void *arg, const struct server_client *c);
	void (*refuse)(void *arg, int fd, const char *kind, const char *ip,
		       enum server_why why);
	void (*done)(void *arg);
	void *arg;
	int stop;
};

int server_listen(struct server *srv, const char *const *kinds,
		  struct str *err);
int server_run(struct server *srv, const char **what);

#endif
