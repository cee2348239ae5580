/*
 * test_listen - lib/listen.h: the FACTEUR_LISTEN_FDS hand-over between
 * `facteur run` and the services (listen_env, listen_take), on real
 * sockets. listen_parse() has its case table in test_pop3d.c. The ports
 * root may bind (listen_port_ok), and listen_bind refusing the others.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"

#include "listen.h"
#include "tinytest.h"

/* listener - a listening socket on 127.0.0.1, any port; *port_r set */
static int listener(unsigned *port_r)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port_r = ntohs(a.sin_port);
	return fd;
}

/* test_roundtrip - what listen_env writes, listen_take reads back */
static void test_roundtrip(void)
{
	static const char *const kinds[] = {"smtp", "submission", "smtps"};
	struct listen_set out = LISTEN_SET_INIT, got = LISTEN_SET_INIT;
	struct str env = STR_INIT, err = STR_INIT, want = STR_INIT;
	unsigned p1 = 0, p2 = 0;
	int a = listener(&p1), b = listener(&p2);
	char *eq;

	CHECK("listeners", a >= 3 && b >= 3);
	out.s = calloc(2, sizeof *out.s);
	CHECK("alloc", out.s != NULL);
	if (!out.s)
		return;
	out.s[0] = (struct listen_sock){a, "smtp", STR_INIT};
	out.s[1] = (struct listen_sock){b, "smtps", STR_INIT};
	out.n = 2;
	CHECK_INT("env_r", listen_env(&out, kinds, 3, &env), 0);
	(void)str_catf(&want, "FACTEUR_LISTEN_FDS=smtp=%d submission= "
		       "smtps=%d", a, b);
	CHECK_STR("env", env.s, want.s);
	eq = strchr(env.s, '=');
	setenv(LISTEN_ENV, eq + 1, 1);
	CHECK_INT("take_smtp", listen_take(&got, "smtp", &err), 1);
	CHECK_INT("take_submission", listen_take(&got, "submission", &err),
		  1);
	CHECK_INT("take_smtps", listen_take(&got, "smtps", &err), 1);
	CHECK("took_two", got.n == 2 && got.s[0].fd == a && got.s[1].fd == b);
	str_trunc(&want, 0);
	(void)str_catf(&want, "127.0.0.1:%u", p1);
	CHECK_STR("name", got.n ? got.s[0].name.s : "", want.s);
	/* the same descriptor twice is refused, not adopted twice */
	CHECK_INT("twice", listen_take(&got, "smtp", &err), -EEXIST);
	unsetenv(LISTEN_ENV);
	CHECK_INT("no_env", listen_take(&got, "smtp", &err), 0);
	listen_free(&got);
	free(out.s);
	str_free(&env);
	str_free(&err);
	str_free(&want);
}

/* test_refused - what a service must not take from the variable */
static void test_refused(void)
{
	static const struct {
		const char *env;
		int want;
	} cases[] = {
		{"smtp=x", -EINVAL}, {"smtp=1", -EINVAL}, {"smtp=,", -EINVAL},
		{"smtp=99999999", -EINVAL}, {"smtp=900", -EBADF},
		{"smtp=3;4", -EINVAL},
	};
	struct listen_set got = LISTEN_SET_INIT;
	struct str err = STR_INIT, env = STR_INIT;
	int fd = socket(AF_INET, SOCK_STREAM, 0), pfd[2], r;
	unsigned port;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		setenv(LISTEN_ENV, cases[i].env, 1);
		r = listen_take(&got, "smtp", &err);
		CHECK_INT(tt_name("refused_%zu", i), r, cases[i].want);
		CHECK(tt_name("refused_%zu_says", i), err.len > 0);
	}
	listen_free(&got);
	/* a socket that is not listening, and a pipe */
	CHECK("pipe", fd >= 0 && pipe(pfd) == 0);
	(void)str_catf(&env, "smtp=%d", fd);
	setenv(LISTEN_ENV, env.s, 1);
	CHECK_INT("not_listening", listen_take(&got, "smtp", &err), -ENOTSOCK);
	str_trunc(&env, 0);
	(void)str_catf(&env, "pop3=%d", pfd[0]);
	setenv(LISTEN_ENV, env.s, 1);
	CHECK_INT("pipe_r", listen_take(&got, "pop3", &err), -ENOTSOCK);
	/* another kind's descriptor is not taken */
	close(fd);
	fd = listener(&port);
	str_trunc(&env, 0);
	(void)str_catf(&env, "pop3= pop3s=%d", fd);
	setenv(LISTEN_ENV, env.s, 1);
	CHECK_INT("other_kind", listen_take(&got, "pop3", &err), 1);
	CHECK("other_kind_none", got.n == 0);
	CHECK_INT("own_kind", listen_take(&got, "pop3s", &err), 1);
	CHECK("own_kind_one", got.n == 1);
	unsetenv(LISTEN_ENV);
	listen_free(&got);
	close(pfd[0]);
	close(pfd[1]);
	str_free(&err);
	str_free(&env);
}

/* test_ports - the mail ports and 1024 up, never another privileged
 * port, and listen_bind binds nothing of a file that names one */
static void test_ports(void)
{
	static const struct {
		const char *line;
		int ok;
	} cases[] = {
		{"0.0.0.0:25", 1}, {"[::]:465", 1}, {"127.0.0.1:587", 1},
		{"127.0.0.1:110", 1}, {"[::1]:995", 1}, {"127.0.0.1:1024", 1},
		{"127.0.0.1:2525", 1}, {"127.0.0.1:65535", 1},
		{"127.0.0.1:22", 0}, {"[::]:443", 0}, {"127.0.0.1:1023", 0},
		{"127.0.0.1:1", 0}, {"127.0.0.1:143", 0}, {"[::1]:26", 0},
	};
	struct listen_set set = LISTEN_SET_INIT;
	struct str err = STR_INIT;
	struct sockaddr_storage ss;
	socklen_t len;
	char root[] = "/tmp/test_listen.XXXXXX", path[64];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CHECK_INT(tt_name("port_ok[%s]", cases[i].line),
			  listen_parse(cases[i].line, &ss, &len) == 0 &&
			  listen_port_ok(&ss), cases[i].ok);
	CHECK("root", mkdtemp(root) != NULL);
	snprintf(path, sizeof path, "%s/control", root);
	CHECK("control", mkdir(path, 0700) == 0);
	snprintf(path, sizeof path, "%s/control/listen.smtp", root);
	CHECK("listen_file", fsx_write_atomic(path, "127.0.0.1:22\n", 13,
					      0644) == 0);
	CHECK_INT("bind_22", listen_bind(&set, root, "smtp", &err), -EPERM);
	CHECK("bind_22_says", strstr(str_cstr(&err), "'127.0.0.1:22' is a "
				     "port below 1024") != NULL);
	CHECK("bind_22_none", set.n == 0);
	listen_free(&set);
	fsx_rmtree(root);
	str_free(&err);
}

int main(void)
{
	test_roundtrip();
	test_refused();
	test_ports();
	return tt_failed ? 1 : 0;
}
