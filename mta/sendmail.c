/*
 * NAME
 *	sendmail - the sendmail interface, over mta-inject or ROOT/drop
 *
 * SYNOPSIS
 *	sendmail [-t] [-i] [-oi] [-f SENDER] [-F NAME] [--root DIR] [RCPT...]
 *	sendmail -bs
 *
 * DESCRIPTION
 *	For cron, scripts and web applications. Reads a message on standard
 *	input and queues it for the recipients on the command line and, with
 *	-t, those of its To:, Cc: and Bcc: headers (Bcc: lines are removed).
 *	Without -i (or -oi) a line holding only "." ends the message, as in
 *	sendmail. A message without From:, Date: or Message-ID: gets them;
 *	From: names the sender (-f, default: the invoking user at control/me)
 *	and -F's full name. -bs speaks SMTP on standard input and output
 *	through mta-smtpd --inetd. Flags that callers pass out of habit
 *	(-odi, -odb, -oem, -oee, -om, -v, -B TYPE, -bm) are accepted and
 *	ignored.
 *
 *	Run by root or the mail user (anyone who can write queue/tmp), the
 *	message goes through mta-inject, found beside this program (root's
 *	mta-inject becomes the mail user).
 *
 *	Run by any other local user, the message goes into ROOT/drop/
 *	instead (docs/queue.md, "Local submission: ROOT/drop"): the same
 *	headers are added, CR LF becomes LF, and the message is written in
 *	the queue's file format (envelope: the sender, the recipients and
 *	U, the real uid) to drop/NAME.tmp, mode 0644, fsynced, renamed to
 *	drop/NAME and made durable (syncfs, since the user may not read
 *	drop/ to fsync it); then drop/trigger is poked. Exit 0 comes only
 *	after that. mta-send takes the file, checks it as hostile input,
 *	records the file owner's uid (not the one written) and queues it.
 *	Addresses without '@' get control/me; the default sender is the
 *	user's login name at control/me. -f sets any sender, as Postfix's
 *	sendmail lets any local user do: the uid in the queue file, the log
 *	and the Received: line that mta-send adds tell who really sent it.
 *	A message over control/databytes is refused (exit 100), and so,
 *	whichever way it would go, are more than 1,000 recipients, an
 *	address beginning with '-' (docs/queue.md, "Limits at every entry"),
 *	a header with more than 100 Received: lines (a loop, RFC 5321
 *	6.3, lib/hdrscan.h) and a NUL (as SMTP refuses one); a CR not
 *	followed by LF becomes a space, as Postfix does (passed on, a bare
 *	CR can end DATA early at a lax next hop: SMTP smuggling). The options end at the first recipient (or
 *	"--"), and the word after -f, -r, -F or -B is their value whatever
 *	it looks like (lib/args.h): give --root before the recipients. -bs is
 *	refused (exit 111): it runs mta-smtpd, which writes the queue
 *	directly, so it needs root or the mail user.
 *
 * SECURITY
 *	Not set-uid. It runs with the caller's rights and parses the header
 *	block with bounded lines (998 bytes, 1 MiB of headers); mta-inject or
 *	mta-smtpd checks every address again, and mta-send checks a drop
 *	file whole (owner, links, size, every record) before it copies it
 *	into the queue. drop/ is 01733: a user can add files but not list
 *	them, nor remove or replace another user's. Drop files are 0644,
 *	since the mail user must read them; their names hold 64 random bits
 *	and drop/ cannot be listed, so other users cannot find them.
 *
 * BUGS
 *	A local user's message waits in drop/ while mta-send is not
 *	running; -bs is for root and the mail user only. The syncfs() that
 *	makes a drop file durable flushes the whole file system.
 *
 * EXIT STATUS
 *	0 queued (or, for a local user, durably in drop/), 2 usage, 100 the
 *	message or an address is unusable (no recipient, a header block
 *	over 1 MiB, a message over control/databytes, more than 1,000
 *	recipients, an address beginning with '-', more than 100 Received:
 *	lines, a NUL), 111 temporary
 *	failure; with mta-inject, its own exit code.
 *
 * SEE ALSO
 *	mta-inject(8), mta-smtpd(8), docs/queue.md
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addrlist.h"
#include "args.h"
#include "ctl.h"
#include "date.h"
#include "fsx.h"
#include "hdrscan.h"
#include "msg.h"
#include "queue.h"
#include "str.h"

#define HEADER_MAX (1024 * 1024)

static const char usage_text[] =
	"usage: sendmail [-t] [-i] [-oi] [-f SENDER] [-F NAME] [--root DIR] "
	"[RCPT...]\n       sendmail -bs\n";

struct opts {
	int t, dot_ends, bs;
	const char *sender, *fullname;
	char **rcpts;
	int nrcpts;
};

/* parse_args - sendmail's flags, the habitual ones accepted and ignored */
static void parse_args(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof *o);
	o->dot_ends = 1;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-t"))
			o->t = 1;
		else if (!strcmp(a, "-i") || !strcmp(a, "-oi"))
			o->dot_ends = 0;
		else if (!strcmp(a, "-bs"))
			o->bs = 1;
		else if (!strcmp(a, "-bm") || !strcmp(a, "-odi") ||
			 !strcmp(a, "-odb") || !strcmp(a, "-oem") ||
			 !strcmp(a, "-oee") || !strcmp(a, "-om") ||
			 !strcmp(a, "-v"))
			continue;
		else if (!strcmp(a, "-B") && i + 1 < argc)
			i++;
		else if (!strncmp(a, "-B", 2) && a[2])
			continue;
		else if ((!strcmp(a, "-f") || !strcmp(a, "-r")) && i + 1 < argc)
			o->sender = argv[++i];
		else if ((!strncmp(a, "-f", 2) || !strncmp(a, "-r", 2)) && a[2])
			o->sender = a + 2;
		else if (!strcmp(a, "-F") && i + 1 < argc)
			o->fullname = argv[++i];
		else if (!strncmp(a, "-F", 2) && a[2])
			o->fullname = a + 2;
		else
			msg_usage(usage_text, "unknown option %s", a);
	}
	o->rcpts = argv + i;
	o->nrcpts = argc - i;
}

/* read_line - a line of stdin with its LF, or its first max bytes when it
 * is longer (the rest comes with the next calls); 0 at the end */
static ssize_t read_line(struct str *l, size_t max)
{
	int c;

	l->len = 0;
	while (l->len < max && (c = getchar()) != EOF) {
		if (str_catc(l, (char)c))
			return -ENOMEM;
		if (c == '\n')
			break;
	}
	if (ferror(stdin))
		return -EIO;
	if (str_catb(l, "", 0))
		return -ENOMEM;
	return (ssize_t)l->len;
}

/* is_end - "." alone on a line, when that ends the message */
static int is_end(const struct opts *o, const struct str *l)
{
	return o->dot_ends && (str_eqs(l, ".\n") || str_eqs(l, ".\r\n") ||
			       str_eqs(l, "."));
}

/* check_hops - die when the header block shows a mail loop */
static void check_hops(const struct str *hdr)
{
	struct hdrscan h;
	int r, looped;

	hdrscan_init(&h, NULL, 0);
	r = hdrscan_feed(&h, str_cstr(hdr), hdr->len);
	if (r == 0)
		r = hdrscan_end(&h);
	looped = hdrscan_looped(&h, 0);
	hdrscan_free(&h);
	if (r < 0)
		msg_die(111, "out of memory");
	if (looped)
		msg_die(100, "5.4.6 %s; nothing was queued", HDRSCAN_LOOP_TEXT);
}

/* field_is - a header line starting "Name:" (any case) */
static int field_is(const char *h, const char *name)
{
	size_t n = strlen(name);

	return !strncasecmp(h, name, n) && h[n] == ':';
}

/* run_inject - fork mta-inject with its stdin a pipe; returns the write fd */
static int run_inject(const char *root, const char *sender, struct str *rcpts,
		      size_t n, pid_t *pid_r)
{
	struct str prog = STR_INIT, fopt = STR_INIT;
	char **av;
	size_t i, k = 0, pos;
	int p[2], r;

	r = args_sibling(&prog, "mta-inject");
	if (r == 0)
		r = args_sender_opt(&fopt, sender);
	if (r < 0)
		return r;
	av = calloc(n + 7, sizeof *av);
	if (!av || pipe(p) < 0)
		return -errno;
	av[k++] = prog.s;
	av[k++] = (char *)"--root";
	av[k++] = (char *)root;
	av[k++] = fopt.s;	/* one word: never read as an option */
	av[k++] = (char *)"--";
	for (i = 0, pos = 0; i < n; i++, pos += strlen(rcpts->s + pos) + 1)
		av[k++] = rcpts->s + pos;
	*pid_r = fork();
	if (*pid_r < 0)
		return -errno;
	if (*pid_r == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		execv(prog.s, av);
		fprintf(stderr, "sendmail: cannot run %s: %s\n", prog.s,
			strerror(errno));
		_exit(111);
	}
	close(p[0]);
	free(av);
	str_free(&prog);
	str_free(&fopt);
	return p[1];
}

/* put_phrase - FULLNAME as an RFC 5322 quoted string: '"' and '\'
 * escaped, and no control byte (a CR or LF from a web form's -F would
 * start a header of the caller's choosing); those are left out */
static void put_phrase(FILE *out, const char *fullname)
{
	const unsigned char *p;

	putc('"', out);
	for (p = (const unsigned char *)fullname; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			continue;
		if (*p == '"' || *p == '\\')
			putc('\\', out);
		putc(*p, out);
	}
	putc('"', out);
}

/* write_headers - the header block, Bcc: dropped, missing fields added */
static int write_headers(FILE *out, const struct str *hdr, const char *sender,
			 const char *fullname, const char *me)
{
	int has_from = 0, has_date = 0, has_id = 0, skip = 0;
	size_t i = 0;

	while (i < hdr->len) {
		const char *line = hdr->s + i;
		size_t n = strcspn(line, "\n");

		if (n < hdr->len - i)
			n++;
		if (line[0] != ' ' && line[0] != '\t') {
			skip = field_is(line, "Bcc");
			has_from |= field_is(line, "From");
			has_date |= field_is(line, "Date");
			has_id |= field_is(line, "Message-ID");
		}
		if (!skip && fwrite(line, 1, n, out) != n)
			return -EIO;
		i += n;
	}
	if (!has_from) {
		if (fullname && *fullname) {
			fputs("From: ", out);
			put_phrase(out, fullname);
			fprintf(out, " <%s>\n", sender);
		} else
			fprintf(out, "From: %s\n", sender);
	}
	if (!has_date) {
		struct str d = STR_INIT;
		int r = date_cat(&d, time(NULL));

		if (r == 0)
			fprintf(out, "Date: %s\n", d.s);
		str_free(&d);
		if (r < 0)
			return r;
	}
	if (!has_id) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(out, "Message-ID: <%lld.%ld.%ld@%s>\n",
			(long long)ts.tv_sec, ts.tv_nsec, (long)getpid(), me);
	}
	return ferror(out) ? -EIO : 0;
}

/* the drop file behind a FILE, so that write_headers and the body loop
 * serve both paths; CR LF becomes LF on the way, as in mta-inject */
struct drop {
	struct qwriter w;
	struct str path;	/* drop/NAME, the name it gets when done */
	unsigned long max;	/* control/databytes, cut by qw_body */
	int st;			/* queue_lf's: a CR that ended the previous
				 * write, a NUL or bare CR seen */
	int err;		/* the first error, a negative errno */
};

/* drop_put - a converted chunk into the file; the first error sticks
 * (-EFBIG past databytes: qw_limit) */
static int drop_put(struct drop *d, const char *b, size_t n)
{
	if (d->err == 0)
		d->err = qw_body(&d->w, b, n);
	return d->err;
}

/* drop_write - fopencookie's write: 0 on error, as it wants */
static ssize_t drop_write(void *c, const char *buf, size_t n)
{
	struct drop *d = c;
	char out[8192 + 1];
	size_t i, k;

	for (i = 0; i < n && d->err == 0; i += k) {
		k = n - i < sizeof out - 1 ? n - i : sizeof out - 1;
		(void)drop_put(d, out, queue_lf(out, buf + i, k, &d->st));
	}
	return d->err ? 0 : (ssize_t)n;
}

/* qualify - an address as the queue keeps it: <> taken off, @me added to
 * a bare name; what mta-inject would refuse is refused here (exit 100) */
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

/* check_envelope - what any entry refuses, refused before anything is
 * written or started, whichever way the message goes: more recipients
 * than QUEUE_RCPTS_MAX, an address qualify() would not let through */
static void check_envelope(const char *me, const char *sender,
			   const struct str *rcpts, size_t nr)
{
	struct str a = STR_INIT;
	size_t i, pos;

	if (queue_rcpts_ok(nr) < 0)
		msg_die(100, "5.5.3 too many recipients (%zu): at most %d a "
			"message; send it in parts; nothing was sent", nr,
			QUEUE_RCPTS_MAX);
	/* the double bounce's mark passes between Facteur's own programs
	 * only (lib/queue.h): no caller's message may wear it */
	if (!strcmp(sender, QUEUE_DBL_SENDER))
		msg_die(100, "5.1.7 invalid sender address '%s': it is kept "
			"for double bounces; nothing was sent", sender);
	qualify(sender, me, &a, 1);
	for (i = 0, pos = 0; i < nr; i++, pos += strlen(rcpts->s + pos) + 1)
		qualify(rcpts->s + pos, me, &a, 0);
	str_free(&a);
}

/* drop_open - a new drop/NAME.tmp holding the envelope. NAME is the uid,
 * the time, the pid and 64 random bits: unique, and not to be guessed by
 * another user (drop/ cannot be listed) */
static FILE *drop_open(struct drop *d, const char *root, const char *me,
		       const char *sender, const struct str *rcpts, size_t nr)
{
	static const cookie_io_functions_t io = {NULL, drop_write, NULL,
						 NULL};
	struct qenv e;
	struct str a = STR_INIT, tmp = STR_INIT;
	struct timeval tv;
	unsigned long long rnd = 0;
	size_t i, pos;
	FILE *f;
	int r;

	memset(d, 0, sizeof *d);
	/* unreadable or no number: the default, as at every entry */
	d->max = ctl_num_warn(root, CTL_DATABYTES, msg_warn);
	qenv_init(&e);
	qualify(sender, me, &e.sender, 1);
	for (i = 0, pos = 0; i < nr; i++, pos += strlen(rcpts->s + pos) + 1) {
		qualify(rcpts->s + pos, me, &a, 0);
		if (qenv_add_rcpt(&e, a.s) < 0)
			msg_die(111, "out of memory");
	}
	gettimeofday(&tv, NULL);
	if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
		msg_die(111, "cannot get random bytes: %s", strerror(errno));
	if (str_catf(&e.uid, "%ld", (long)getuid()) ||
	    str_catf(&d->path, "%s/drop/%ld.%ld.%06ld.%ld.%016llx", root,
		     (long)getuid(), (long)tv.tv_sec, (long)tv.tv_usec,
		     (long)getpid(), rnd) ||
	    str_catf(&tmp, "%s.tmp", d->path.s))
		msg_die(111, "out of memory");
	r = qw_open_path(&d->w, tmp.s, 0644, &e);
	if (r < 0)
		msg_die(111, "cannot create %s: %s; is %s/drop there (mode "
			"1733, made by facteur init)?", tmp.s, msg_err(r),
			root);
	qw_limit(&d->w, d->max);
	f = fopencookie(d, "w", io);
	if (!f)
		msg_die(111, "out of memory");
	qenv_free(&e);
	str_free(&a);
	str_free(&tmp);
	return f;
}

/* drop_close - the file made durable under its final name, mta-send
 * poked; returns the exit status */
static int drop_close(struct drop *d, FILE *f, const char *root)
{
	struct str p = STR_INIT;
	char sp[1];
	int fd, r;

	if (fclose(f) != 0 && d->err == 0)
		d->err = -EIO;
	if (d->err == 0 && queue_lf_flush(sp, &d->st))
		(void)drop_put(d, sp, 1);
	if (d->err == 0)
		d->err = queue_lf_end(d->st);
	r = d->err;
	if (r == 0)
		r = qw_commit_path(&d->w, d->path.s);
	else
		qw_abort(&d->w);
	if (r == -EFBIG)
		msg_die(100, "5.3.4 the message is larger than "
			"control/databytes (%lu bytes); nothing was sent",
			d->max);
	if (r == -EILSEQ)
		msg_die(100, "5.6.0 the message holds " QLF_BAD_TEXT
			" (SMTP refuses one too); nothing was sent");
	if (r < 0)
		msg_die(111, "cannot write %s: %s; nothing was sent",
			d->path.s, msg_err(r));
	/* a scheduler that is not running costs nothing: it looks at
	 * drop/ when it starts */
	if (str_catf(&p, "%s/drop/trigger", root) == 0) {
		fd = open(p.s, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "", 1);
			close(fd);
		}
	}
	str_free(&p);
	str_free(&d->path);
	return 0;
}

/* the message on its way: what main() gathers step by step */
struct sub {
	struct opts o;
	const char *root;
	struct str me, sender;
	struct str hdr;		/* the header block, whole */
	struct str line;
	struct str rcpts;	/* NUL-terminated addresses */
	size_t nr;
	int ended;		/* the message ended within the header */
	int use_drop;		/* through drop/, not mta-inject */
	struct drop d;
	pid_t pid;		/* mta-inject */
	FILE *out;
};

/* may_queue - root or the mail user: whoever may write queue/tmp */
static int may_queue(const char *root)
{
	struct str qtmp = STR_INIT;
	int ok;

	if (str_catf(&qtmp, "%s/queue/tmp", root))
		msg_die(111, "out of memory");
	ok = geteuid() == 0 || access(qtmp.s, W_OK) == 0;
	str_free(&qtmp);
	return ok;
}

/* run_smtp - -bs: mta-smtpd --inetd beside us, for root and the mail user */
static _Noreturn void run_smtp(const char *root)
{
	struct str prog = STR_INIT;
	int r;

	if (!may_queue(root))
		msg_die(111, "-bs needs to write the queue, which only "
			"root and the mail user may do; run sendmail "
			"without -bs, or submit through SMTP on "
			"loopback");
	r = args_sibling(&prog, "mta-smtpd");
	if (r < 0)
		msg_die(111, "cannot find mta-smtpd: %s", msg_err(r));
	execl(prog.s, prog.s, "--inetd", "--root", root, (char *)NULL);
	msg_die(111, "cannot run %s --inetd: %s", prog.s, strerror(errno));
}

/* envelope_start - control/me, the sender (-f, or the caller at me) and
 * the recipients named on the command line */
static void envelope_start(struct sub *m)
{
	struct passwd *pw;
	size_t i;
	int r;

	if ((r = ctl_me(m->root, &m->me)) < 0)
		msg_die(111, "cannot read %s/control/me: %s", m->root,
			msg_err(r));
	if (m->o.sender) {
		if (str_copys(&m->sender, m->o.sender))
			msg_die(111, "out of memory");
	} else {
		pw = getpwuid(getuid());
		if (!pw || str_catf(&m->sender, "%s@%s", pw->pw_name, m->me.s))
			msg_die(111, "cannot tell who is sending (uid %ld)",
				(long)getuid());
	}
	for (i = 0; i < (size_t)m->o.nrcpts; i++, m->nr++)
		if (str_cats(&m->rcpts, m->o.rcpts[i]) ||
		    str_catc(&m->rcpts, 0))
			msg_die(111, "out of memory");
}

/* read_header - the header block, whole: -t needs it before the
 * recipients are known; bounded lines, bounded block */
static void read_header(struct sub *m)
{
	ssize_t n;

	for (;;) {
		n = read_line(&m->line, 998 + 2);
		if (n < 0)
			msg_die(111, "cannot read the message: %s",
				msg_err((int)n));
		if (n == 0 || is_end(&m->o, &m->line)) {
			m->ended = 1;
			break;
		}
		if (str_eqs(&m->line, "\n") || str_eqs(&m->line, "\r\n"))
			break;
		if (m->line.s[m->line.len - 1] != '\n' &&
		    m->line.len == 998 + 2)
			msg_die(100, "a header line is longer than 998 bytes");
		if (m->hdr.len + m->line.len > HEADER_MAX)
			msg_die(100, "the header block is larger than 1 MiB");
		if (str_catb(&m->hdr, m->line.s, m->line.len))
			msg_die(111, "out of memory");
	}
	check_hops(&m->hdr);
}

/* header_rcpts - -t: the addresses of To:, Cc: and Bcc:, the header
 * unfolded first */
static void header_rcpts(struct sub *m)
{
	const struct str *hdr = &m->hdr;
	struct str field = STR_INIT;
	size_t i;

	for (i = 0; i <= hdr->len; i++) {
		char ch = i < hdr->len ? hdr->s[i] : '\n';
		int cont = i + 1 < hdr->len && ch == '\n' &&
			   (hdr->s[i + 1] == ' ' || hdr->s[i + 1] == '\t');

		if (ch == '\r' || cont)
			continue;
		if (ch != '\n') {
			if (str_catc(&field, ch))
				msg_die(111, "out of memory");
			continue;
		}
		if (field.len && (field_is(field.s, "To") ||
				  field_is(field.s, "Cc") ||
				  field_is(field.s, "Bcc")) &&
		    addrlist_parse(strchr(field.s, ':') + 1, &m->rcpts,
				  &m->nr) < 0)
			msg_die(111, "out of memory");
		field.len = 0;
		if (str_catb(&field, "", 0))
			msg_die(111, "out of memory");
	}
	str_free(&field);
}

/* open_output - drop/ for an ordinary user, else a pipe to mta-inject */
static void open_output(struct sub *m)
{
	int fd;

	signal(SIGPIPE, SIG_IGN);
	if (!may_queue(m->root)) {
		/* neither root nor the mail user: through drop/ */
		m->out = drop_open(&m->d, m->root, m->me.s, m->sender.s,
				   &m->rcpts, m->nr);
		m->use_drop = 1;
	} else {
		fd = run_inject(m->root, m->sender.s, &m->rcpts, m->nr,
				&m->pid);
		if (fd < 0)
			msg_die(111, "cannot start mta-inject: %s",
				msg_err(fd));
		m->out = fdopen(fd, "w");
		if (!m->out)
			msg_die(111, "cannot write to mta-inject: %s",
				strerror(errno));
	}
}

/* read_failed - input that broke off: mta-inject, if it runs, is killed
 * first, since the end of its input would look like the message's end
 * and it would queue the half that came (exit() closes the pipe) */
static void read_failed(struct sub *m, ssize_t n)
{
	if (!m->use_drop && m->pid > 0)
		(void)kill(m->pid, SIGKILL);
	msg_die(111, "cannot read the message: %s; nothing was sent",
		msg_err((int)n));
}

/* write_message - the header block, completed, then the body; "." ends
 * the message only as a whole line of its own */
static void write_message(struct sub *m)
{
	int r, at_start = 1;
	ssize_t n;

	r = write_headers(m->out, &m->hdr, m->sender.s, m->o.fullname,
			  m->me.s);
	fputc('\n', m->out);
	while (r == 0 && !m->ended) {
		n = read_line(&m->line, 65536);
		if (n < 0)
			read_failed(m, n);
		if (n == 0 || (at_start && is_end(&m->o, &m->line)))
			break;
		at_start = m->line.s[m->line.len - 1] == '\n';
		if (fwrite(m->line.s, 1, m->line.len, m->out) != m->line.len)
			r = -EIO;
	}
}

/* finish - the drop file committed, or mta-inject's verdict; the exit
 * status */
static int finish(struct sub *m)
{
	int status;

	if (m->use_drop)
		return drop_close(&m->d, m->out, m->root);
	/* a failed write shows in mta-inject's exit status below */
	fclose(m->out);
	if (waitpid(m->pid, &status, 0) < 0)
		msg_die(111, "cannot wait for mta-inject: %s",
			strerror(errno));
	if (!WIFEXITED(status))
		msg_die(111, "mta-inject was killed by signal %d",
			WTERMSIG(status));
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	struct sub m;
	int status;

	msg_init(argv[0]);
	memset(&m, 0, sizeof m);
	m.pid = -1;
	m.root = args_start_env(&argc, argv, usage_text, "fFrB");
	parse_args(argc, argv, &m.o);
	if (m.o.bs)
		run_smtp(m.root);
	envelope_start(&m);
	read_header(&m);
	if (m.o.t)
		header_rcpts(&m);
	if (m.nr == 0)
		msg_die(100, "no recipients: name them on the command line or "
			"use -t with To:, Cc: or Bcc: headers");
	check_envelope(m.me.s, m.sender.s, &m.rcpts, m.nr);
	open_output(&m);
	write_message(&m);
	status = finish(&m);
	str_free(&m.me);
	str_free(&m.sender);
	str_free(&m.hdr);
	str_free(&m.line);
	str_free(&m.rcpts);
	return status;
}
