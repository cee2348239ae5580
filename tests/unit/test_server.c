/*
 * test_server - lib/server.h: the listening parent and its session
 * processes, run for real on a loopback socket in a child: listeners
 * taken from FACTEUR_LISTEN_FDS, sessions served, maxperip refused by a
 * session process, maxsessions by the parent, a process killed in a
 * session logged and replaced, and the stop on SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server.h"
#include "str.h"
#include "tinytest.h"

static char logpath[] = "/tmp/test_server.XXXXXX";

/* serve - say who we are, then hold the session until the client closes */
static void serve(void *arg, const struct server_client *c)
{
	char line[128], junk[64];
	int n = snprintf(line, sizeof line, "hi %s %s %ld\n", c->kind, c->ip,
			 (long)getpid());

	(void)arg;
	if (n > 0 && write(c->fd, line, (size_t)n) == n)
		while (read(c->fd, junk, sizeof junk) > 0)
			;
}

/* refuse - say why */
static void refuse(void *arg, int fd, const char *kind, const char *ip,
		   enum server_why why)
{
	char line[64];
	int n = snprintf(line, sizeof line, "no %d %s\n", (int)why, ip);

	(void)arg;
	(void)kind;
	if (n > 0)
		(void)!write(fd, line, (size_t)n);
}

/* run_server - the child: its listener from the environment, as under
 * facteur run; exits 0 after a stop */
static _Noreturn void run_server(int lfd)
{
	static const char *const kinds[] = {"pop3", NULL};
	struct server srv = {.root = "/nonexistent", .prog = "tsrv",
			     .ls = LISTEN_SET_INIT, .maxsessions = 2,
			     .maxperip = 1, .serve = serve, .refuse = refuse,
			     .stop = 1};
	struct str env = STR_INIT, err = STR_INIT;
	const char *what;
	int fd = open(logpath, O_WRONLY | O_APPEND);

	if (fd < 0 || dup2(fd, 2) < 0 ||
	    str_catf(&env, "pop3=%d", lfd) < 0 ||
	    setenv("FACTEUR_LISTEN_FDS", env.s, 1) < 0)
		_exit(3);
	if (server_listen(&srv, kinds, &err) < 0 || srv.ls.n != 1)
		_exit(4);
	if (server_run(&srv, &what) < 0)
		_exit(5);
	listen_free(&srv.ls);
	str_free(&env);
	str_free(&err);
	exit(0);
}

/* client - a connection from address FROM; its first line in LINE */
static int client(const char *from, int port, char *line, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {10, 0};
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	line[0] = 0;
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	inet_pton(AF_INET, from, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		goto fail;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	sa.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		goto fail;
	while (n + 1 < len && read(fd, line + n, 1) == 1 && line[n] != '\n')
		n++;
	line[n] = 0;
	return fd;
fail:
	close(fd);
	return -1;
}

/* log_has - the child's log holds TEXT */
static int log_has(const char *text)
{
	char buf[4096];
	FILE *f = fopen(logpath, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	return strstr(buf, text) != NULL;
}

/* test_sessions - served, refused by maxperip and maxsessions, a killed
 * process replaced, the stop */
static void test_sessions(int lfd, int port, pid_t pid)
{
	char line[128], want[128];
	long spid = 0;
	int a, b, c, d, st;

	a = client("127.0.0.1", port, line, sizeof line);
	CHECK("served", a >= 0 && !strncmp(line, "hi pop3 127.0.0.1 ", 18));
	b = client("127.0.0.1", port, line, sizeof line);
	CHECK_STR("maxperip", line, "no 1 127.0.0.1");
	close(b);
	c = client("127.0.0.2", port, line, sizeof line);
	CHECK("other address served", c >= 0 &&
	      sscanf(line, "hi pop3 127.0.0.2 %ld", &spid) == 1);
	/* both processes busy: the parent answers */
	d = client("127.0.0.3", port, line, sizeof line);
	CHECK_STR("maxsessions", line, "no 0 127.0.0.3");
	close(d);
	/* a process killed in its session: logged, its place comes free */
	if (spid > 0)
		kill((pid_t)spid, SIGKILL);
	close(c);
	snprintf(want, sizeof want, "session %ld for 127.0.0.2 ended on "
		 "signal 9", spid);
	for (st = 0; st < 100 && !log_has(want); st++)
		usleep(50000);
	CHECK("killed logged", log_has(want));
	for (st = 0, line[0] = 0; st < 100 && strncmp(line, "hi ", 3); st++) {
		usleep(50000);
		d = client("127.0.0.4", port, line, sizeof line);
		close(d);
	}
	CHECK("place freed", !strncmp(line, "hi pop3 127.0.0.4 ", 18));
	close(a);
	close(lfd);
	kill(pid, SIGTERM);
	CHECK("stopped", waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	CHECK("stop logged", log_has("tsrv[") &&
	      log_has("]: stopping on signal 15, "));
}

int main(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int lfd = socket(AF_INET, SOCK_STREAM, 0), tmp = mkstemp(logpath);
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (!tt_check(lfd >= 0 && tmp >= 0 &&
		      bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		      listen(lfd, 16) == 0 &&
		      getsockname(lfd, (struct sockaddr *)&sa, &len) == 0,
		      "listener", "%s", strerror(errno)))
		return tt_exit();
	close(tmp);
	pid = fork();
	if (pid == 0)
		run_server(lfd);
	if (tt_check(pid > 0, "fork", "%s", strerror(errno)))
		test_sessions(lfd, ntohs(sa.sin_port), pid);
	unlink(logpath);
	return tt_exit();
}
