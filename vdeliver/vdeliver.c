/*
 * NAME
 *	vdeliver - the Facteur local delivery agent
 *
 * SYNOPSIS
 *	vdeliver [--root DIR] [--sysexits] [-f SENDER] [--] RECIPIENT < message
 *	vdeliver [--root DIR]           (from a .qmail file: SENDER, EXT and
 *					 HOST, or RECIPIENT, in the environment)
 *	vdeliver [--root DIR] --server  (internal: mta-send's fork server)
 *
 * DESCRIPTION
 *	Delivers one message, read on standard input, to one address of a
 *	hosted domain. The address is resolved through the generated tables
 *	only (control/assign.cdb, then the domain's delivery table; never the
 *	database): mailbox, alias, forward, then the domain's catch-all, with
 *	the extensions user-ext and user+ext falling back to user (lib/rcpt.h).
 *	Local destinations of aliases and forwards are followed in this
 *	process (at most 10 in a row); remote ones are handed to the queue
 *	through mta-inject, found beside this program, with an SRS0
 *	envelope sender of control/me (lib/srs.h; the original one without
 *	control/srssecret). The message is read once, whatever the number of
 *	destinations, and never held in memory. Each mailbox gets it the
 *	Maildir way (tmp/, fsync, link into new/, fsync new/) with
 *	Return-Path: and Delivered-To: lines added in front; Maildir++
 *	quotas are checked and kept (maildirsize), and a warning is
 *	delivered once when a mailbox passes control/quotawarn percent.
 *	docs/vdeliver.md is the user's manual (lookup order, quotas, loops,
 *	Postfix and qmail set-ups). The options end at RECIPIENT (or "--"),
 *	and the word after -f is the sender whatever it looks like, so that
 *	no envelope value is ever read as --root or --help (lib/args.h).
 *
 *	--server is internal, for mta-send, which starts one such process
 *	and keeps it: standard input is then an AF_UNIX SOCK_SEQPACKET
 *	socket on which mta-send asks for one delivery at a time (sender,
 *	recipient, and the message and output descriptors passed with
 *	SCM_RIGHTS). Start-up (signals, the mail user, the log, the root,
 *	the host name) is done once; each delivery is made by a worker, a
 *	forked child that runs exactly what a command-line run does after
 *	its start-up, with the same checks, exit codes and stderr line, and
 *	no exec, then takes the next (up to 1000; a failed delivery ends its
 *	worker as it ends a run). The server answers each request with a
 *	wait status and exits 0 at end of file on the socket, once its
 *	children have ended. server.c has the protocol.
 *
 * SECURITY
 *	Runs as the mail user: started as root it becomes the user named in
 *	control/mailuser before it opens anything under the root, and it
 *	never delivers as uid 0. It is not set-uid and talks to no network.
 *	Input is the message (any bytes, copied as they are and never parsed
 *	beyond the header's Delivered-To: lines, with bounded lines), the
 *	recipient and the sender (checked: no '/', '..' or control bytes in
 *	the recipient, no control bytes in the sender, so neither can reach a
 *	path or break a header line). Maildir paths come from the tables and
 *	are opened one component at a time without following symbolic links;
 *	files are created O_EXCL|O_NOFOLLOW, mode 0600. mta-inject is run by
 *	execve with an argument vector and a fixed environment, never a shell.
 *	The --server socket is a socketpair made by mta-send (nothing to
 *	connect to); its requests are parsed with bounds (8 KiB, exactly two
 *	descriptors, three NUL-ended fields) and their sender and recipient
 *	checked in the child as the command line's are.
 *
 * EXIT STATUS
 *	qmail's contract (qmail-command(8)): 0 delivered (or discarded by a
 *	catch-all set to delete), 100 permanent failure (the sender gets a
 *	bounce), 111 temporary failure (the message stays queued and is tried
 *	again), 2 usage. With --sysexits, sendmail's codes for callers that
 *	know only those (Postfix's pipe(8)): 75 temporary, 67 unknown user,
 *	68 unknown domain, 65 bad message, 73 mailbox problem, 69 other
 *	permanent failures. --server exits 0 at the end of its socket, 2
 *	when standard input is not such a socket, 111 when it cannot start.
 *
 * DIAGNOSTICS
 *	On failure, one line on stderr: "vdeliver: " and an RFC 3463 status
 *	code, then what happened and what to do, e.g. "vdeliver: 5.1.1
 *	bob@example.test does not exist". Each delivery or failure is also
 *	logged to ROOT/log/current when it can be written (best effort).
 *	--server writes its own events (a bad request, a failed fork,
 *	SIGTERM) as log lines on its standard error, which is mta-send's.
 *
 * BUGS
 *	When a message goes to several destinations and one of them fails
 *	temporarily after others got it, the retry delivers those again.
 *	Quotas are checked for every mailbox before any is written, so the
 *	usual cause (a full mailbox) does not lead there.
 *
 * SEE ALSO
 *	docs/vdeliver.md, docs/architecture.md, vadmin(8), mta-inject(8),
 *	qmail-command(8), maildir(5)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cdbx.h"
#include "ctl.h"
#include "log.h"
#include "msg.h"
#include "name.h"
#include "priv.h"
#include "queue.h"
#include "vdeliver.h"

static const char usage_text[] =
"usage: vdeliver [--root DIR] [--sysexits] [-f SENDER] [--] RECIPIENT < message\n"
"       vdeliver [--root DIR] < message    (from a .qmail file: SENDER,\n"
"                                          EXT and HOST or RECIPIENT)\n"
"       vdeliver [--root DIR] --server     (mta-send's fork server: stdin\n"
"                                          is its socket; internal)\n"
"Exit: 0 delivered, 100 permanent failure, 111 temporary failure, 2 usage\n"
"(--sysexits: 75 temporary, 67/68/65/73/69 permanent, as sendmail).\n";

/* vd_classify - the one place that decides whether an errno is worth a
 * retry: everything is, unless retrying cannot help (a message larger
 * than the file system allows). Out of memory, I/O errors, a full disk or
 * a broken Maildir are temporary: an admin can fix them and nothing is
 * lost meanwhile. */
int vd_classify(int err, const char **dsn_r)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case EFBIG:
		*dsn_r = "5.3.4";	/* message too big for system */
		return EX_PERM;
	case ENOSPC:
	case EDQUOT:
		*dsn_r = "4.3.1";	/* mail system full */
		return EX_TEMP;
	case EACCES:
	case EPERM:
	case ELOOP:
	case ENOTDIR:
	case ENOENT:
	case EROFS:
		*dsn_r = "4.2.0";	/* the mailbox: an admin must look */
		return EX_TEMP;
	default:			/* ENOMEM, EIO, EAGAIN, EINTR, ... */
		*dsn_r = "4.3.0";
		return EX_TEMP;
	}
}

/* sysexit - the sendmail exit code that says what a DSN code says */
static int sysexit(int code, const char *dsn)
{
	if (code == EX_DELIVERED)
		return 0;
	if (code != EX_PERM)
		return SX_TEMPFAIL;
	if (!strncmp(dsn, "5.1.1", 5))
		return SX_NOUSER;
	if (!strncmp(dsn, "5.1.2", 5))
		return SX_NOHOST;
	if (!strncmp(dsn, "5.2.", 4))
		return SX_CANTCREAT;
	if (!strncmp(dsn, "5.6.", 4))
		return SX_DATAERR;
	return SX_UNAVAILABLE;
}

/* vd_cleanup - remove whatever this run left half-done in tmp/ */
void vd_cleanup(struct vd *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (v->t[i].f.fd >= 0 || v->t[i].f.tmpname.len)
			maildir_abort(&v->t[i].md, &v->t[i].f);
	if (v->spoolfd >= 0)
		close(v->spoolfd);
	v->spoolfd = -1;
}

/* vd_reset - give back all one delivery took (its targets, their Maildir
 * descriptors, the addresses seen), keeping the root, the log and the
 * host name, so that a fork server's worker can make the next one */
void vd_reset(struct vd *v)
{
	size_t i;

	vd_cleanup(v);
	for (i = 0; i < v->n; i++) {
		struct target *t = &v->t[i];

		maildir_close(&t->md);
		str_free(&t->addr);
		str_free(&t->chain);
		str_free(&t->maildir);
		str_free(&t->f.tmpname);
	}
	free(v->t);
	v->t = NULL;
	v->n = v->cap = 0;
	str_free(&v->sender_buf);
	str_free(&v->env_rcpt);
	str_free(&v->rcpt);
	str_free(&v->local);
	str_free(&v->domain);
	str_free(&v->seen);
	str_free(&v->spool_name);
	v->sender = NULL;
	v->lookups = 0;
	v->discard = 0;
}

/* vvfail - the failure line on stderr and in the log, then exit */
static _Noreturn void vvfail(struct vd *v, int code, const char *dsn,
			     const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static _Noreturn void vvfail(struct vd *v, int code, const char *dsn,
			     const char *fmt, va_list ap)
{
	struct str text = STR_INIT;
	size_t i;

	vd_cleanup(v);
	if (str_vcatf(&text, fmt, ap) < 0)
		text.len = 0;
	/* one line, whatever an address or a helper's output held */
	for (i = 0; i < text.len; i++)
		if ((unsigned char)text.s[i] < 0x20 || text.s[i] == 0x7f)
			text.s[i] = '?';
	fprintf(stderr, "%s: %s %s\n", msg_prog(), dsn, str_cstr(&text));
	vd_log(v, "failed msg to %s: %s %s",
	       v->rcpt.len ? v->rcpt.s : "(none)", dsn, str_cstr(&text));
	str_free(&text);
	exit(v->sysexits ? sysexit(code, dsn) : code);
}

/* vd_fail - fail with an exit code and an RFC 3463 code */
void vd_fail(struct vd *v, int code, const char *dsn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vvfail(v, code, dsn, fmt, ap);
}

/* vd_fail_errno - fail as vd_classify() says, the errno text appended */
void vd_fail_errno(struct vd *v, int err, const char *fmt, ...)
{
	struct str text = STR_INIT;
	const char *dsn;
	int code = vd_classify(err, &dsn);
	va_list ap;

	va_start(ap, fmt);
	if (str_vcatf(&text, fmt, ap) < 0)
		text.len = 0;
	va_end(ap);
	vd_fail(v, code, dsn, "%s: %s%s", str_cstr(&text), msg_err(err),
		code == EX_TEMP ? " (the message will be retried)" : "");
}

/* vd_log - one line in ROOT/log/current; the log is not worth failing for */
void vd_log(struct vd *v, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	if (v->logfd < 0)
		return;
	va_start(ap, fmt);
	if (log_format(&line, "vdeliver", getpid(), fmt, ap) == 0)
		(void)!write(v->logfd, line.s, line.len);
	va_end(ap);
	str_free(&line);
}

/* show - a caller's string made printable for a message */
static const char *show(struct str *buf, const char *s)
{
	buf->len = 0;
	for (; *s && buf->len < 300; s++)
		if (str_catc(buf, (unsigned char)*s < 0x20 || *s == 0x7f ?
			     '?' : *s) < 0)
			break;
	return str_cstr(buf);
}

/* check_sender - the envelope sender, without one pair of <>; it goes into
 * a header line and mta-inject's arguments, so no control byte */
static void check_sender(struct vd *v, const char *in, struct str *out)
{
	struct str s = STR_INIT;
	size_t n = strlen(in), i;

	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (n > QUEUE_ADDR_MAX)		/* the queue's entries take no more */
		vd_fail(v, EX_PERM, "5.1.7", "bad sender address: longer than "
			"%d bytes", QUEUE_ADDR_MAX);
	for (i = 0; i < n; i++)
		if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f ||
		    in[i] == '<' || in[i] == '>')
			vd_fail(v, EX_PERM, "5.1.7", "bad sender address '%s': "
				"it holds a control byte or an angle bracket",
				show(&s, in));
	if (str_copyb(out, in, n) < 0)
		vd_fail_errno(v, -ENOMEM, "cannot start");
	str_free(&s);
}

/* check_rcpt - the recipient, split and folded; a name that could not be
 * a mailbox ('/', '..', control bytes, ...) is refused for good */
static void check_rcpt(struct vd *v, const char *in)
{
	struct str s = STR_INIT;
	const char *at = strrchr(in, '@'), *why = NULL, *part = "local part";
	int r;

	if (!at)
		vd_fail(v, EX_PERM, "5.1.3", "bad recipient address '%s': it is "
			"not of the form user@domain", show(&s, in));
	r = name_local(in, (size_t)(at - in), &v->local, &why);
	if (r == 0) {
		part = "domain";
		r = name_domain(at + 1, strlen(at + 1), &v->domain, &why);
	}
	if (r == -EINVAL)
		vd_fail(v, EX_PERM, "5.1.3", "bad recipient address '%s': the "
			"%s %s", show(&s, in), part, why);
	if (r < 0 || str_catf(&v->rcpt, "%s@%s", v->local.s, v->domain.s) < 0)
		vd_fail_errno(v, -ENOMEM, "cannot read the recipient");
	str_free(&s);
}

/* become_mailuser - root never delivers: drop to control/mailuser */
static void become_mailuser(struct vd *v)
{
	int r = 0;

	if (geteuid() == 0 || getuid() == 0)
		r = priv_become_mailuser(v->root);
	if (r == -ENOENT || r == -EPERM)
		vd_fail(v, EX_TEMP, "4.3.0", "%s: %s", v->root, priv_error(r));
	if (r < 0)
		vd_fail_errno(v, r, "cannot become the mail user of %s",
			      v->root);
	if (geteuid() == 0 || getuid() == 0)
		vd_fail(v, EX_TEMP, "4.3.0", "refusing to deliver as root");
}

/* host_name - the host part of Maildir file names: the root's control/me
 * (lib/ctl's ctl_me: the system host name when it is not set), not
 * gethostname(). Hosts that share one Maildir tree have distinct `me`
 * (SPEC.md, "Several hosts"), while several roots on one machine share
 * the system name: their deliveries must not make the same name */
static void host_name(struct vd *v)
{
	struct str me = STR_INIT;
	int r = ctl_me(v->root, &me);

	if (r < 0)
		vd_fail_errno(v, r, "cannot read control/me");
	if (maildir_host(&v->host, me.s) < 0)
		vd_fail_errno(v, -ENOMEM, "cannot start");
	str_free(&me);
}

/* vd_open_root - what every delivery needs of the root and the host, done
 * once: per run here, or once for all deliveries of the fork server */
void vd_open_root(struct vd *v)
{
	if (v->rootfd < 0) {
		v->rootfd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (v->rootfd < 0)
			vd_fail_errno(v, -errno, "cannot open the root %s",
				      v->root);
	}
	if (!v->host.len)
		host_name(v);
}

/* vd_run - one delivery, from the checks of the recipient and sender to
 * the exit code: the whole of a run, and one delivery of a fork server's
 * worker (vd_fail() exits from anywhere with 100 or 111) */
int vd_run(struct vd *v, const char *rcpt, const char *from)
{
	check_rcpt(v, rcpt);
	check_sender(v, from ? from : "", &v->sender_buf);
	v->sender = v->sender_buf.s;
	vd_open_root(v);
	/* the tables stay open from one delivery to the next (a worker's);
	 * each delivery stats them once to notice a regenerated one */
	cdbx_batch_begin();
	resolve(v);
	cdbx_batch_end();
	deliver(v);
	vd_cleanup(v);
	return EX_DELIVERED;
}

static struct vd vd;	/* one run; static so the leak checker sees it */

/* main - options, the recipient, privileges; then resolve and deliver */
int main(int argc, char **argv)
{
	struct vd *v = &vd;
	const char *rcpt = NULL, *from = NULL, *ext, *host;
	int i, server = 0;

	msg_init(argv[0]);
	umask(077);
	/* a writer that went away (mta-inject) is an error code, not death;
	 * a file size limit is EFBIG, not death */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR ||
	    signal(SIGXFSZ, SIG_IGN) == SIG_ERR)
		msg_die(EX_TEMP, "4.3.0 cannot set up signals");
	v->logfd = v->rootfd = v->spoolfd = -1;
	v->root = args_start_env(&argc, argv, usage_text, "f");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!strcmp(argv[i], "-f")) {
			if (++i == argc)
				msg_usage(usage_text, "-f needs a sender "
					  "(-f '' for <>)");
			from = argv[i];
		} else if (!strncmp(argv[i], "-f", 2)) {
			from = argv[i] + 2;
		} else if (!strcmp(argv[i], "--sysexits")) {
			v->sysexits = 1;
		} else if (!strcmp(argv[i], "--server")) {
			server = 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			msg_usage(usage_text, "unknown option %s", argv[i]);
		} else {
			break;
		}
	}
	if (server) {
		if (i < argc || from || v->sysexits)
			msg_usage(usage_text, "--server takes no recipient, "
				  "-f or --sysexits (mta-send starts it)");
		become_mailuser(v);
		v->logfd = log_open(v->root);
		return vd_serve(v);
	}
	if (i < argc)
		rcpt = argv[i++];
	if (i < argc)
		msg_usage(usage_text, "one recipient at a time (Postfix: set "
			  "TRANSPORT_destination_recipient_limit = 1)");
	if (!rcpt) {
		/* qmail-local: EXT@HOST is the address inside a virtual
		 * domain; RECIPIENT carries qmail's prefix for it */
		ext = getenv("EXT");
		host = getenv("HOST");
		if (ext && *ext && host && *host) {
			if (str_catf(&v->env_rcpt, "%s@%s", ext, host) < 0)
				msg_die(EX_TEMP, "4.3.0 out of memory");
			rcpt = v->env_rcpt.s;
		} else {
			rcpt = getenv("RECIPIENT");
		}
		if (rcpt && !*rcpt)
			rcpt = NULL;
	}
	if (!rcpt)
		msg_usage(usage_text, "no recipient: give RECIPIENT, or run "
			  "from a .qmail file (EXT and HOST, or RECIPIENT)");
	if (!from)
		from = getenv("SENDER");
	become_mailuser(v);
	v->logfd = log_open(v->root);
	return vd_run(v, rcpt, from);
}
