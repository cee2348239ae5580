/*
 * NAME
 *	test_conn - unit tests of lib/conn (connections) and lib/clock
 *
 * SYNOPSIS
 *	test_conn
 *
 * DESCRIPTION
 *	Drives struct conn over socketpairs: lines (CR LF, bare LF, the
 *	length limit counted on the bytes received, over-long lines read to
 *	their end and nothing of them taken as a line), a partial line kept
 *	across a timeout, the timeout itself, end of input, byte reads,
 *	replies held until a read must wait (PIPELINING), a megabyte sent
 *	through a small socket buffer in partial writes, a flush that times
 *	out against a peer that reads nothing, and TLS both ways with a
 *	throwaway self-signed certificate made by openssl(1), including the
 *	STARTTLS rule that plaintext sent after the command is dropped.
 *	Prints one line per check, "ok NAME" or "FAIL NAME: why"
 *	(tests/run.py), and exits 1 if any failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "fsx.h"
#include "tinytest.h"

#define MAX 255			/* POP3's command line limit */

/* pair - a connected socketpair; 0 or -1 */
static int pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}

/* test_lines - the line reader and its limit */
static void test_lines(void)
{
	struct conn c;
	struct str line = STR_INIT, in = STR_INIT;
	int sv[2];
	size_t i;

	if (pair(sv) < 0)
		return;
	(void)str_cats(&in, "STAT\r\nLIST 1\nNOOP \r\na\rb\r\r\n");
	for (i = 0; i < 300; i++)
		(void)str_catc(&in, 'x');
	(void)str_cats(&in, "\r\n");
	for (i = 0; i < 253; i++)		/* 255 with CR LF: fits */
		(void)str_catc(&in, 'y');
	(void)str_cats(&in, "\r\n");
	for (i = 0; i < 254; i++)		/* 255 with a bare LF: fits */
		(void)str_catc(&in, 'v');
	(void)str_cats(&in, "\n");
	for (i = 0; i < 254; i++)		/* 256: too long */
		(void)str_catc(&in, 'z');
	(void)str_cats(&in, "\r\n");
	for (i = 0; i < 10000; i++)
		(void)str_catc(&in, 'w');
	(void)str_cats(&in, "\nQUIT\r\nTAIL");
	if (fsx_write_all(sv[1], in.s, in.len) < 0)
		return;
	shutdown(sv[1], SHUT_WR);
	conn_init(&c, sv[0], sv[0], 5);
	CHECK_INT("line_crlf", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("line_crlf_v", line.s, "STAT");
	CHECK_INT("line_bare_lf", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("line_bare_lf_v", line.s, "LIST 1");
	CHECK_INT("line_space", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("line_space_v", line.s, "NOOP ");
	CHECK_INT("line_inner_cr", conn_getline(&c, &line, MAX), 0);
	CHECK_MEM("line_inner_cr_v", line.s, line.len, "a\rb\r", 4);
	CHECK_INT("line_300", conn_getline(&c, &line, MAX), -EMSGSIZE);
	CHECK_INT("line_255", conn_getline(&c, &line, MAX), 0);
	CHECK_INT("line_255_len", line.len, 253);
	CHECK_INT("line_255_lf", conn_getline(&c, &line, MAX), 0);
	CHECK_INT("line_255_lf_len", line.len, 254);
	CHECK_INT("line_256", conn_getline(&c, &line, MAX), -EMSGSIZE);
	CHECK_INT("line_10000", conn_getline(&c, &line, MAX), -EMSGSIZE);
	CHECK("line_bounded", c.in.cap <= 2 * (MAX + 16384 + 1));
	CHECK_INT("line_after_long", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("line_after_long_v", line.s, "QUIT");
	/* a last line without LF is no line */
	CHECK_INT("line_eof", conn_getline(&c, &line, MAX), -EPIPE);
	CHECK_INT("line_eof_not_dead", c.dead, 0);
	CHECK_INT("line_eof_again", conn_getline(&c, &line, MAX), -EPIPE);
	/* the peer may still read after its end of input */
	CHECK_INT("line_eof_reply", conn_reply(&c, "+OK %s", "bye"), 0);
	CHECK_INT("line_eof_flush", conn_flush(&c), 0);
	{
		char buf[16] = "";

		CHECK_INT("line_eof_read", read(sv[1], buf, sizeof buf), 9);
		CHECK_MEM("line_eof_read_v", buf, 9, "+OK bye\r\n", 9);
	}
	conn_free(&c);
	close(sv[0]);
	close(sv[1]);

	/* a client gives up on an over-long line without waiting for more */
	if (pair(sv) < 0)
		return;
	conn_init(&c, sv[0], sv[0], 5);
	c.long_ends = 1;
	str_trunc(&in, 0);
	for (i = 0; i < 300; i++)
		(void)str_catc(&in, 'x');
	if (fsx_write_all(sv[1], in.s, in.len) < 0)
		return;
	CHECK_INT("line_long_ends", conn_getline(&c, &line, MAX), -EMSGSIZE);
	conn_free(&c);
	close(sv[0]);
	close(sv[1]);
	str_free(&line);
	str_free(&in);
}

/* test_timeout - a silent peer costs the timeout and no byte is lost */
static void test_timeout(void)
{
	struct conn c;
	struct str line = STR_INIT;
	int64_t t0, ms;
	int sv[2], b = 0;

	if (pair(sv) < 0)
		return;
	conn_init(&c, sv[0], sv[0], 1);
	if (write(sv[1], "HAL", 3) != 3)
		return;
	t0 = now_ms();
	CHECK_INT("timeout", conn_getline(&c, &line, MAX), -ETIMEDOUT);
	ms = now_ms() - t0;
	tt_check(ms >= 990 && ms < 3000, "timeout_1s", "waited %lld ms",
		 (long long)ms);
	CHECK_INT("timeout_not_dead", c.dead, 0);
	/* the start of the line is kept for the next call */
	if (write(sv[1], "F\r\nxy", 5) != 5)
		return;
	CHECK_INT("timeout_resume", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("timeout_resume_v", line.s, "HALF");
	CHECK_INT("byte_x", conn_getbyte(&c, &b), 0);
	CHECK_INT("byte_x_v", b, 'x');
	CHECK_INT("byte_y", conn_getbyte(&c, &b), 0);
	CHECK_INT("byte_y_v", b, 'y');
	if (write(sv[1], "\xff", 1) != 1)
		return;
	CHECK_INT("byte_ff", conn_getbyte(&c, &b), 0);
	CHECK_INT("byte_ff_v", b, 0xff);
	CHECK_INT("byte_timeout", conn_getbyte(&c, &b), -ETIMEDOUT);
	close(sv[1]);
	CHECK_INT("byte_eof", conn_getbyte(&c, &b), -EPIPE);
	conn_free(&c);
	close(sv[0]);
	str_free(&line);
}

/* dribble - in a child: the NCHUNKS sizes in SIZES written to FD, each
 * after GAP_MS, then the socket closed */
static pid_t dribble(int fd, const size_t *sizes, size_t nchunks, int gap_ms)
{
	static char buf[40960];
	pid_t pid = fork();
	size_t i;

	if (pid != 0)
		return pid;
	memset(buf, 'a', sizeof buf);
	for (i = 0; i < nchunks; i++) {
		usleep((useconds_t)gap_ms * 1000);
		if (write(fd, buf, sizes[i]) != (ssize_t)sizes[i])
			_exit(1);
	}
	_exit(0);
}

/* drain - conn_getbyte until it fails: that error, *n the bytes got */
static int drain(struct conn *c, size_t *n)
{
	int b, r;

	*n = 0;
	while ((r = conn_getbyte(c, &b)) == 0)
		(*n)++;
	return r;
}

/* test_window - conn_getbyte: each 64 KiB within the timeout, however
 * the bytes are spread; a fair pace past several windows is never cut */
static void test_window(void)
{
	static const size_t slow[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	static const size_t fair[] = {40960, 40960, 40960, 40960, 40960};
	struct conn c;
	int64_t t0, ms;
	size_t n;
	pid_t pid;
	int sv[2];

	if (pair(sv) < 0)
		return;
	conn_init(&c, sv[0], sv[0], 1);
	/* a byte each 300 ms: every read is quick, the window is not */
	pid = dribble(sv[1], slow, 10, 300);
	close(sv[1]);
	t0 = now_ms();
	conn_window(&c);
	CHECK_INT("window_slow", drain(&c, &n), -ETIMEDOUT);
	ms = now_ms() - t0;
	tt_check(ms >= 990 && ms < 2000 && n >= 2 && n <= 4, "window_slow_1s",
		 "%zu bytes in %lld ms", n, (long long)ms);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	conn_free(&c);
	close(sv[0]);

	if (pair(sv) < 0)
		return;
	conn_init(&c, sv[0], sv[0], 2);
	/* 40 KiB each 700 ms, 2 s a window, 3.5 s in all (one deadline for
	 * the whole body would cut it): each window is full 1.4 s after it
	 * starts, the last ends with the input */
	pid = dribble(sv[1], fair, 5, 700);
	close(sv[1]);
	conn_window(&c);
	t0 = now_ms();
	CHECK_INT("window_fair", drain(&c, &n), -EPIPE);
	CHECK_INT("window_fair_bytes", n, 5 * 40960);
	ms = now_ms() - t0;
	tt_check(ms > 2000, "window_fair_past_one_timeout", "%lld ms",
		 (long long)ms);
	waitpid(pid, NULL, 0);
	conn_free(&c);
	close(sv[0]);
}

/* test_pipelining - replies wait until a read must wait */
static void test_pipelining(void)
{
	struct conn c;
	struct str line = STR_INIT;
	char buf[64];
	int sv[2];

	if (pair(sv) < 0)
		return;
	conn_init(&c, sv[0], sv[0], 1);
	if (write(sv[1], "A\r\nB\r\n", 6) != 6)
		return;
	CHECK_INT("pipe_a", conn_getline(&c, &line, MAX), 0);
	(void)conn_reply(&c, "250 %s", line.s);
	CHECK_INT("pipe_b", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("pipe_b_v", line.s, "B");
	CHECK_INT("pipe_held", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1);
	(void)conn_reply(&c, "250 %s", line.s);
	CHECK_INT("pipe_wait", conn_getline(&c, &line, MAX), -ETIMEDOUT);
	CHECK_INT("pipe_sent", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), 14);
	CHECK_MEM("pipe_sent_v", buf, 14, "250 A\r\n250 B\r\n", 14);
	CHECK("pipe_nonblock", fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	conn_free(&c);
	CHECK("pipe_blocking_again", !(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
	close(sv[0]);
	close(sv[1]);
	str_free(&line);
}

/* pattern - the byte at offset i of the big write */
static char pattern(size_t i)
{
	return (char)('a' + (i * 7 + i / 4096) % 26);
}

/* test_big_write - a megabyte through a small buffer, in partial writes,
 * and a flush that times out against a peer that reads nothing */
static void test_big_write(void)
{
	enum { BIG = 1 << 20 };
	struct conn c;
	char *buf = malloc(BIG);
	int sv[2], small = 4096, status = 0, bad = 0;
	size_t got = 0, i;
	pid_t pid;

	if (!buf || pair(sv) < 0)
		return;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	pid = fork();
	if (pid == 0) {
		int r = 0;

		close(sv[1]);
		conn_init(&c, sv[0], sv[0], 5);
		for (i = 0; i < BIG && r == 0; i += 1000) {
			size_t n = BIG - i < 1000 ? BIG - i : 1000, k;

			for (k = 0; k < n; k++)
				buf[k] = pattern(i + k);
			r = conn_put(&c, buf, n);
		}
		if (r == 0)
			r = conn_flush(&c);
		_exit(r == 0 ? 0 : 1);
	}
	close(sv[0]);
	for (;;) {
		ssize_t n = read(sv[1], buf, 3000);

		if (n <= 0)
			break;
		for (i = 0; i < (size_t)n; i++)
			bad += buf[i] != pattern(got + i);
		got += (size_t)n;
	}
	(void)waitpid(pid, &status, 0);
	CHECK_INT("big_write_len", got, BIG);
	CHECK_INT("big_write_bytes", bad, 0);
	CHECK("big_write_child", WIFEXITED(status) && !WEXITSTATUS(status));
	close(sv[1]);

	/* nobody reads: the flush gives up after the timeout */
	if (pair(sv) < 0)
		return;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	conn_init(&c, sv[0], sv[0], 1);
	memset(buf, 'q', BIG);
	CHECK_INT("stuck_put", conn_put(&c, buf, 1000), 0);
	CHECK_INT("stuck_flush_ok", conn_flush(&c), 0);
	(void)str_catb(&c.out, buf, BIG);
	CHECK_INT("stuck_flush", conn_flush(&c), -ETIMEDOUT);
	CHECK_INT("stuck_dead", c.dead, 1);
	CHECK_INT("stuck_put_dead", conn_puts(&c, "x"), -EPIPE);
	CHECK_INT("stuck_reply_dead", conn_reply(&c, "x"), -EPIPE);
	conn_free(&c);
	close(sv[0]);
	close(sv[1]);
	free(buf);
}

/* make_cert - a throwaway self-signed certificate under
 * root/control/tls; 0 or -1 when openssl(1) cannot make one */
static int make_cert(const char *root)
{
	struct str cmd = STR_INIT;
	int r;

	if (str_catf(&cmd, "mkdir -p %s/control/tls && openssl req -x509 "
		     "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		     "-subj /CN=test.invalid -days 2 -keyout "
		     "%s/control/tls/key.pem -out %s/control/tls/cert.pem "
		     ">/dev/null 2>&1", root, root, root))
		return -1;
	r = system(cmd.s);
	str_free(&cmd);
	return r == 0 ? 0 : -1;
}

/* tls_client - the child of test_tls: plaintext injection after
 * STARTTLS, a handshake, a line, the reply; exits 0 when all went right */
static void tls_client(int fd)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct str line = STR_INIT;
	struct conn c;
	int r;

	if (!ctx)
		_exit(2);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	conn_init(&c, fd, fd, 30);
	/* as a real client: the handshake after the server's 220, not
	 * before; else the server's first read could take the ClientHello
	 * with the plaintext it drops (a 30 s hang once, under load) */
	r = conn_getline(&c, &line, MAX);
	if (r == 0 && strncmp(line.s, "220 ", 4))
		r = -EPROTO;
	if (r == 0)
		r = conn_tls_connect(&c, ctx, "test.invalid");
	if (r == 0)
		r = conn_puts(&c, "HELLO\r\n");
	if (r == 0)
		r = conn_getline(&c, &line, MAX);
	if (r == 0 && strcmp(line.s, "250 hi"))
		r = -EPROTO;
	conn_free(&c);
	SSL_CTX_free(ctx);
	str_free(&line);
	_exit(r == 0 ? 0 : 3);
}

/* test_tls - both sides of TLS, the certificate loader and the STARTTLS
 * injection rule */
static void test_tls(void)
{
	char root[] = "/tmp/facteur-conn-XXXXXX";
	struct str why = STR_INIT, line = STR_INIT;
	SSL_CTX *ctx = NULL;
	struct conn c;
	int sv[2], status = 0;
	pid_t pid;

	if (!mkdtemp(root))
		return;
	CHECK_INT("tls_ctx_missing", conn_tls_server_ctx(root, &ctx, &why),
		  -ENOENT);
	CHECK(tt_name("tls_ctx_missing_why"), strstr(str_cstr(&why),
						     "cannot load") != NULL);
	if (make_cert(root) < 0) {
		tt_check(1, "tls_skipped_no_openssl_cli", "%s", "");
		goto out;
	}
	CHECK_INT("tls_ctx", conn_tls_server_ctx(root, &ctx, &why), 0);
	if (!ctx || pair(sv) < 0)
		goto out;
	/* the client's STARTTLS and a command it pipelined in plaintext */
	if (fsx_write_all(sv[1], "STARTTLS\r\nRCPT TO:<evil>\r\n", 26) < 0)
		goto out;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		tls_client(sv[1]);
	}
	close(sv[1]);
	/* 30 s: the forked client's handshake under ASan on a loaded
	 * machine took over 5 s once; the bound only stops a hang */
	conn_init(&c, sv[0], sv[0], 30);
	CHECK_INT("tls_starttls", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("tls_starttls_v", line.s, "STARTTLS");
	CHECK_INT("tls_ready", conn_reply(&c, "220 ready"), 0);
	CHECK_INT("tls_accept", conn_tls_accept(&c, ctx), 0);
	CHECK_INT("tls_line", conn_getline(&c, &line, MAX), 0);
	CHECK_STR("tls_line_not_injected", line.s, "HELLO");
	CHECK_INT("tls_reply", conn_reply(&c, "250 hi"), 0);
	CHECK_INT("tls_flush", conn_flush(&c), 0);
	CHECK_INT("tls_eof", conn_getline(&c, &line, MAX), -EPIPE);
	(void)waitpid(pid, &status, 0);
	CHECK("tls_client", WIFEXITED(status) && WEXITSTATUS(status) == 0);
	conn_free(&c);
	close(sv[0]);

	/* a peer that speaks no TLS: the handshake fails, the conn is dead */
	if (pair(sv) < 0)
		goto out;
	if (fsx_write_all(sv[1], "EHLO x\r\n", 8) < 0)
		goto out;
	close(sv[1]);
	conn_init(&c, sv[0], sv[0], 2);
	CHECK("tls_garbage", conn_tls_accept(&c, ctx) < 0);
	CHECK_INT("tls_garbage_dead", c.dead, 1);
	CHECK("tls_garbage_no_ssl", c.ssl == NULL);
	conn_free(&c);
	close(sv[0]);
out:
	SSL_CTX_free(ctx);
	(void)fsx_rmtree(root);
	str_free(&why);
	str_free(&line);
}

/* test_clock - monotonic milliseconds */
static void test_clock(void)
{
	int64_t a = now_ms(), b;

	usleep(50000);
	b = now_ms();
	tt_check(b - a >= 49 && b - a < 2000, "clock_50ms", "%lld ms",
		 (long long)(b - a));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_clock();
	test_lines();
	test_timeout();
	test_window();
	test_pipelining();
	test_big_write();
	test_tls();
	return tt_exit();
}
