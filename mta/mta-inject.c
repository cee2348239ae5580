/*
 * NAME
 *	mta-inject - put one message into the queue
 *
 * SYNOPSIS
 *	mta-inject [--root DIR] [--no-dkim] [--size N] -f SENDER [--] RCPT...
 *	    < message
 *
 * DESCRIPTION
 *	Reads a message on standard input, prepends a Received: line naming
 *	the invoking uid, and writes it with its envelope into the queue as
 *	one file (lib/queue.h, docs/queue.md): queue/tmp/, fsync, rename into
 *	queue/new/, fsync the directory; then it pokes queue/trigger so that
 *	mta-send picks it up at once. CR LF line ends are stored as LF and a
 *	CR not followed by LF as a space, as Postfix does (a bare CR passed
 *	on can end DATA early at a lax next hop: SMTP smuggling); a NUL
 *	refuses the message, as SMTP does. An
 *	address without '@' is completed with control/me. -f '' (or -f '<>')
 *	gives the null sender of bounces. vdeliver uses it to send a message
 *	on to a remote destination of an alias or forward. The options end
 *	at the first recipient (or "--"), and the word after -f is the
 *	sender whatever it looks like (lib/args.h): give --root first. A
 *	message whose header already has more than 100 Received: lines has
 *	looped (RFC 5321 6.3, lib/hdrscan.h) and is refused. A message
 *	whose From: is a hosted domain with DKIM keys is signed as it is
 *	queued (lib/qsign.h, docs/authentication.md), unless --no-dkim is
 *	given: vdeliver gives it for forwards, which carry mail that came
 *	from elsewhere and must not leave signed as ours. --size N says
 *	how many bytes the message has: with it, a message that ends
 *	sooner (or goes on) is not queued (exit 111). End of input alone
 *	cannot tell a writer that finished from one that was killed half-way
 *	(vdeliver stopped by mta-send, or by the OOM killer, while it hands a
 *	forward on), and the half would be queued; vdeliver gives it.
 *
 * SECURITY
 *	Started as root it becomes the mail user before it opens anything.
 *	Otherwise it needs write access to queue/tmp and queue/new: it is for
 *	root and the mail user only. Other local users run sendmail, which
 *	leaves their message in ROOT/drop/ for mta-send (docs/queue.md,
 *	"Local submission: ROOT/drop"). It reads only control/me and
 *	writes only into the queue and the log. Addresses with CR, LF or NUL
 *	are refused before they reach a file; so are more than 1,000
 *	recipients and an address that begins with '-', which a program it
 *	is later passed to could take for an option (docs/queue.md, "Limits
 *	at every entry").
 *
 * EXIT STATUS
 *	0 queued (the message is on disk, synced), 2 usage, 100 an address is
 *	invalid, there are more than 1,000 recipients, the message is larger
 *	than control/databytes, is a loop or holds a NUL (nothing queued),
 *	111 temporary
 *	failure, or not the bytes --size gave (nothing queued).
 *
 * DIAGNOSTICS
 *	One line on stderr starting with "mta-inject: ". A queued message is
 *	logged as "mta-inject[PID]: new msg ID from <SENDER> rcpts N bytes B
 *	uid U" in ROOT/log/current (best effort).
 *
 * SEE ALSO
 *	docs/queue.md, sendmail(1), mta-qstat(8)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "date.h"
#include "fsx.h"
#include "hdrscan.h"
#include "qsign.h"
#include "log.h"
#include "msg.h"
#include "num.h"
#include "priv.h"
#include "queue.h"

static const char usage_text[] =
	"usage: mta-inject [--root DIR] [--no-dkim] [--size N] -f SENDER "
	"RCPT... < message\n";

/* qualify - ADDR, or ADDR@ME when it has no domain; refuse broken ones */
static void qualify(const char *in, const char *me, struct str *out,
		    int is_sender)
{
	const char *why = NULL;
	int r = queue_qualify(in, me, is_sender, out, &why);

	if (r == -ENOMEM)
		msg_die(111, "out of memory");
	if (r < 0)
		msg_die(100, "5.1.3 invalid address '%s': %s", in, why);
}

/* received - the line that says where a local message came from */
static int received(struct str *b, uid_t invoker)
{
	int r = str_catf(b, "Received: (facteur mta-inject %ld invoked by uid "
			 "%ld);\n\t", (long)getpid(), (long)invoker);

	if (r == 0)
		r = date_cat(b, time(NULL));
	return r ? r : str_catc(b, '\n');
}

/* put - n more bytes of the message, through the signer; qw_body()
 * refuses them with -EFBIG past control/databytes (qw_limit, as at every
 * other entry) */
static int put(struct qsign *w, struct hdrscan *h, const char *b, size_t n)
{
	int r = hdrscan_feed(h, b, n);

	return r < 0 ? r : qsign_put(w, b, n);
}

/* copy_body - stdin into the queue file, CR LF turned into LF and a stray
 * CR into a space; -EILSEQ for a NUL (queue_lf) once it has all been
 * read; *READ the bytes read */
static int copy_body(struct qsign *w, struct hdrscan *h, uint64_t *read_r)
{
	char in[65536], out[sizeof in + 1];
	int st = 0; /* queue_lf's: a CR that ended the previous read */
	ssize_t n;
	size_t o;
	int r;

	for (;;) {
		n = read(0, in, sizeof in);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*read_r += (uint64_t)n;
		o = queue_lf(out, in, (size_t)n, &st);
		if (o && (r = put(w, h, out, o)) < 0)
			return r;
	}
	if (queue_lf_flush(out, &st) && (r = put(w, h, out, 1)) < 0)
		return r;
	r = queue_lf_end(st);
	return r < 0 ? r : hdrscan_end(h);
}

int main(int argc, char **argv)
{
	struct qenv e;
	struct qwriter w;
	struct hdrscan h;
	struct str me = STR_INIT, a = STR_INIT, id = STR_INIT, hdr = STR_INIT;
	const char *root, *sender = NULL;
	uid_t invoker = getuid(); /* before becoming the mail user */
	struct qsign qs;
	unsigned long databytes;
	uint64_t size = 0, got = 0;
	int i, r, logfd, sign = 1, sized = 0;

	msg_init(argv[0]);
	umask(077);
	root = args_start_env(&argc, argv, usage_text, "f");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!strcmp(argv[i], "--no-dkim")) {
			sign = 0;
		} else if (!strcmp(argv[i], "--size")) {
			if (++i == argc || num_parse(argv[i], UINT64_MAX, &size))
				msg_usage(usage_text, "--size needs a number "
					  "of bytes");
			sized = 1;
		} else if (!strcmp(argv[i], "-f")) {
			if (++i == argc)
				msg_usage(usage_text, "-f needs a sender");
			sender = argv[i];
		} else if (!strncmp(argv[i], "-f", 2)) {
			sender = argv[i] + 2;
		} else if (argv[i][0] == '-') {
			msg_usage(usage_text, "unknown option %s", argv[i]);
		} else {
			break;
		}
	}
	if (!sender)
		msg_usage(usage_text, "no sender: give -f SENDER (-f '' for <>)");
	if (i >= argc)
		msg_usage(usage_text, "no recipient given");
	if (queue_rcpts_ok((size_t)(argc - i)) < 0)
		msg_die(100, "5.5.3 too many recipients (%d): at most %d a "
			"message; send it in parts; nothing was queued",
			argc - i, QUEUE_RCPTS_MAX);
	r = priv_become_mailuser(root);
	if (r < 0)
		msg_die(111, "4.3.0 cannot become the mail user of "
			"%s/control/mailuser: %s", root, priv_error(r));
	if ((r = ctl_me(root, &me)) < 0)
		msg_die(111, "4.3.0 cannot read control/me: %s", msg_err(r));
	/* unreadable or no number: the default, as at every entry */
	databytes = ctl_num_warn(root, CTL_DATABYTES, msg_warn);
	qenv_init(&e);
	/* vdeliver forwarding a double bounce (lib/queue.h); only root and
	 * the mail user can run mta-inject, so nobody else can mark one */
	if (!strcmp(sender, QUEUE_DBL_SENDER))
		e.dbl = 1;
	qualify(e.dbl ? "" : sender, me.s, &e.sender, 1);
	for (; i < argc; i++) {
		qualify(argv[i], me.s, &a, 0);
		if (qenv_add_rcpt(&e, a.s) < 0)
			msg_die(100, "5.1.3 invalid address '%s'", argv[i]);
	}
	if (str_catf(&e.uid, "%ld", (long)invoker) || received(&hdr, invoker))
		msg_die(111, "out of memory");
	memset(&qs, 0, sizeof qs);
	r = qw_open(&w, root, &e);
	if (r == -EACCES || r == -EPERM)
		msg_die(111, "4.3.0 cannot write %s/queue/tmp (%s): run as root "
			"or as the mail user", root, msg_err(r));
	if (r < 0)
		msg_die(111, "4.3.0 cannot create a file in %s/queue/tmp: %s",
			root, msg_err(r));
	/* our own Received line is not fed to h: only the message's count */
	hdrscan_init(&h, NULL, 0);
	r = qw_body(&w, hdr.s, hdr.len);
	qw_limit(&w, databytes); /* the message's bytes, not our line's */
	if (r == 0)
		r = qsign_start(&qs, &w, root, sign);
	if (r == 0)
		r = copy_body(&qs, &h, &got);
	if (r == 0 && sized && got != size)
		r = -EMSGSIZE;	/* not what the writer said: not queued */
	if (r == 0)
		r = qsign_end(&qs);
	qsign_free(&qs);
	if (r == 0 && hdrscan_looped(&h, 0)) {
		qw_abort(&w);
		hdrscan_free(&h);
		msg_die(100, "5.4.6 %s; nothing was queued", HDRSCAN_LOOP_TEXT);
	}
	hdrscan_free(&h);
	if (r == 0)
		r = qw_commit(&w, &id);
	else
		qw_abort(&w);
	if (r == -EFBIG)
		msg_die(100, "5.3.4 the message is larger than "
			"control/databytes (%lu bytes); nothing was queued",
			databytes);
	if (r == -EMSGSIZE)
		msg_die(111, "4.3.0 the message has %llu bytes, not the %llu "
			"--size gave (its writer stopped?); nothing was queued",
			(unsigned long long)got, (unsigned long long)size);
	if (r == -EILSEQ)
		msg_die(100, "5.6.0 the message holds " QLF_BAD_TEXT
			" (SMTP refuses one too); nothing was queued");
	if (r < 0)
		msg_die(111, "4.3.0 cannot queue the message: %s; nothing was "
			"queued", msg_err(r));
	logfd = log_open(root);
	if (logfd >= 0) {
		(void)log_write(logfd, "mta-inject", "new msg %s from <%s> rcpts "
				"%zu bytes %llu uid %ld", id.s, e.sender.s,
				e.nrcpts, (unsigned long long)w.body_len,
				(long)invoker);
		close(logfd);
	}
	qenv_free(&e);
	str_free(&me);
	str_free(&a);
	str_free(&id);
	str_free(&hdr);
	return 0;
}
