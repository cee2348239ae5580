/*
 * drop - local users' messages, from ROOT/drop/ into the queue.
 *
 * sendmail run by a user who is neither root nor the mail user cannot
 * write queue/ (0700), and nothing is set-uid; so, as with Postfix's
 * maildrop, it leaves the message in ROOT/drop/ (01733: anyone may add a
 * file, only the mail user may list the directory, nobody may remove or
 * replace another user's file) in the queue's own file format, and pokes
 * the FIFO drop/trigger. Here the scheduler takes each finished file
 * (not NAME.tmp), treats it as hostile -- its owner wrote every byte and
 * may still change it -- and copies it into a real queue file:
 *
 *   lstat: a regular file, one link, at most control/databytes + 1 MiB;
 *   open O_NOFOLLOW|O_NONBLOCK, then fstat: the same inode (no swap);
 *   queue_read_env (the fuzzed parser), then only F and R are kept, each
 *   address checked as mta-inject checks it; C, H, A, P and B, which
 *   sendmail never writes, make the file refused; the arrival time is
 *   now and U is the file's owner, whatever the file says;
 *   a Received: line naming that uid, then the message, through
 *   qw_open/qw_body/qw_commit (durable in queue/new/, which wakes the
 *   normal pickup); only then is the drop file unlinked.
 *
 * A refused file is never deleted: it is moved to queue/quarantine/ with
 * a log line naming its uid; if even that fails it stays where it is,
 * logged at each look. A failure of ours (disk full) leaves the file in
 * drop/ for the next look. See docs/queue.md, "Local submission".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "send.h"

#define DROP_MAX 1000		/* files a turn, as for queue/new/ */
#define ENV_SLACK (1024 * 1024)	/* room for the envelope over databytes */
#define CHUNK 65536

/* drop_open - drop/trigger, made if missing, read end and a kept write
 * end as for queue/trigger. Without it mta-send still runs: local users'
 * mail then waits for the next start */
int drop_open(struct send *s)
{
	struct str p = STR_INIT;
	struct stat sb;
	int fd, r = 0;

	s->drop_fd = s->drop_keep = -1;
	s->drop_rescan = 1;
	if (str_catf(&p, "%s/drop/trigger", s->root) < 0)
		return -ENOMEM;
	if (mkfifo(p.s, 0622) < 0 && errno != EEXIST) {
		r = -errno;
		slog("warning: cannot make %s: %s; local users cannot send "
		     "mail until %s/drop exists (mode 1733, owned by the mail "
		     "user: facteur doctor says how)", p.s, strerror(errno),
		     s->root);
		goto out;
	}
	fd = open(p.s, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		slog("warning: cannot open %s: %s", p.s, strerror(errno));
		goto out;
	}
	/* drop/ is writable by all: a FIFO a user made first is not ours */
	if (fstat(fd, &sb) < 0 || !S_ISFIFO(sb.st_mode) ||
	    sb.st_uid != geteuid()) {
		r = -EPERM;
		slog("warning: %s is not a FIFO of the mail user; remove it "
		     "and start mta-send again", p.s);
		close(fd);
		goto out;
	}
	/* writable by all, so that sendmail can poke it; the umask took it */
	if ((sb.st_mode & 07777) != 0622)
		(void)fchmod(fd, 0622);
	s->drop_keep = open(p.s, O_WRONLY | O_NONBLOCK | O_NOFOLLOW |
			    O_CLOEXEC);
	s->drop_fd = fd;
out:
	str_free(&p);
	return r;
}

/* refuse - a drop file we will not queue: aside, with its uid, never
 * deleted (it is a user's message) */
static void refuse(struct send *s, const char *path, uid_t uid,
		   const char *why)
{
	struct str w = STR_INIT;

	if (str_catf(&w, "from uid %lu: %s", (unsigned long)uid, why) < 0)
		(void)quarantine(s->root, path, why);
	else
		(void)quarantine(s->root, path, w.s);
	str_free(&w);
}

/* check_env - only what sendmail writes, within the limits of every entry
 * (lib/queue.h), with addresses mta-inject would let in; NULL if fine */
static const char *check_env(const struct qenv *e)
{
	size_t i;

	if (e->client.len || e->helo.len || e->auth.len || e->proto.len ||
	    e->dbl)
		return "a record sendmail never writes (C, H, A, P or B)";
	if (queue_rcpts_ok(e->nrcpts) < 0)
		return "more recipients than the limit of every entry (1,000)";
	if (e->sender.len &&
	    (queue_addr_plain(e->sender.s, e->sender.len) < 0 ||
	     queue_addr_entry(e->sender.s, e->sender.len) < 0))
		return "an invalid sender address";
	for (i = 0; i < e->rcpts.len; i += strlen(e->rcpts.s + i) + 1)
		if (queue_addr_plain(e->rcpts.s + i,
				     strlen(e->rcpts.s + i)) < 0 ||
		    queue_addr_entry(e->rcpts.s + i, 1) < 0)
			return "an invalid recipient address";
	return NULL;
}

/* copy - the checked envelope and the message into a new queue file;
 * -EILSEQ when the file changed under us (its owner may write it) */
static int copy(struct send *s, int fd, const struct qenv *in, off_t off,
		uint64_t len, uid_t uid, char *buf, struct str *id)
{
	struct qenv e;
	struct qwriter w;
	struct str rcv = STR_INIT;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	ssize_t got;
	int r;

	qenv_init(&e);
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	r = str_copyb(&e.sender, in->sender.s ? in->sender.s : "",
		      in->sender.len) ||
	    str_copyb(&e.rcpts, in->rcpts.s, in->rcpts.len) ||
	    str_catf(&e.uid, "%lu", (unsigned long)uid) ||
	    str_catf(&rcv, "Received: (facteur drop from uid %lu);\n\t%s\n",
		     (unsigned long)uid, date) ? -ENOMEM : 0;
	e.nrcpts = in->nrcpts;
	if (r == 0)
		r = qw_open(&w, s->root, &e);
	if (r == 0) {
		r = qw_body(&w, rcv.s, rcv.len);
		while (r == 0 && len) {
			got = pread(fd, buf, len < CHUNK ? (size_t)len : CHUNK,
				    off);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				r = got < 0 ? -errno : -EILSEQ;
				break;
			}
			r = qw_body(&w, buf, (size_t)got);
			off += got;
			len -= (uint64_t)got;
		}
		if (r == 0)
			r = qw_commit(&w, id);
		else
			qw_abort(&w);
	}
	qenv_free(&e);
	str_free(&rcv);
	return r;
}

/* take - one drop file, checked, copied into the queue and removed */
static void take(struct send *s, const char *path, const char *name,
		 unsigned long max, char *buf)
{
	struct stat sb, fb;
	struct qenv e;
	struct str id = STR_INIT;
	const char *why = NULL;
	off_t off = 0;
	uint64_t len = 0;
	int fd, r;

	if (lstat(path, &sb) < 0) {
		if (errno != ENOENT) /* gone: its owner took it back */
			slog("warning: cannot look at %s: %s", path,
			     strerror(errno));
		return;
	}
	if (S_ISLNK(sb.st_mode))
		why = "a symbolic link, not a message file";
	else if (!S_ISREG(sb.st_mode))
		why = "not a regular file";
	else if (sb.st_nlink != 1)
		why = "a file with more than one link";
	else if ((uint64_t)sb.st_size > (uint64_t)max + ENV_SLACK)
		why = "larger than control/databytes plus 1 MiB";
	if (why) {
		refuse(s, path, sb.st_uid, why);
		return;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		/* the file's fault, or ours (out of descriptors): only the
		 * first is a reason to set a user's message aside */
		if (errno == EACCES || errno == ELOOP)
			refuse(s, path, sb.st_uid, errno == EACCES ?
			       "not readable by the mail user" :
			       "changed into a symbolic link");
		else if (errno != ENOENT)
			slog("warning: cannot open %s: %s; it is tried again "
			     "later", path, strerror(errno));
		return;
	}
	qenv_init(&e);
	if (fstat(fd, &fb) < 0 || fb.st_dev != sb.st_dev ||
	    fb.st_ino != sb.st_ino || !S_ISREG(fb.st_mode) ||
	    fb.st_nlink != 1 ||
	    (uint64_t)fb.st_size > (uint64_t)max + ENV_SLACK) {
		why = "changed while it was looked at";
		goto out;
	}
	r = queue_read_env(fd, &e, &off, &len);
	if (r == -ENOMEM) {
		slog("warning: out of memory reading %s; it is tried again "
		     "later", path);
		goto out;
	}
	if (r < 0) {
		why = "damaged (not a whole queue file, or an unknown record)";
		goto out;
	}
	if ((why = check_env(&e)) != NULL)
		goto out;
	r = copy(s, fd, &e, off, len, fb.st_uid, buf, &id);
	if (r == -EILSEQ) {
		why = "cut short while it was read";
		goto out;
	}
	if (r < 0) {
		slog("warning: cannot queue %s: %s; it is tried again later",
		     path, strerror(-r));
		goto out;
	}
	/* queued and durable: only now may the user's copy go. Should the
	 * unlink fail, the message would be queued again at the next look:
	 * at most twice, never lost */
	if (unlink(path) < 0)
		slog("warning: cannot remove %s after queueing it as msg %s: "
		     "%s", path, id.s, strerror(errno));
	slog("drop %s from uid %lu: queued as msg %s", name,
	     (unsigned long)fb.st_uid, id.s);
out:
	close(fd);
	if (why)
		refuse(s, path, sb.st_uid, why);
	qenv_free(&e);
	str_free(&id);
}

/* drop_pickup - every finished file in drop/, at most DROP_MAX a turn */
int drop_pickup(struct send *s)
{
	struct str dir = STR_INIT, p = STR_INIT;
	struct dirent *de;
	unsigned long max = 0;
	char *buf = NULL;
	size_t n = 0;
	DIR *d;
	int r = 0;

	s->drop_rescan = 0;
	if (str_catf(&dir, "%s/drop", s->root) < 0)
		return -ENOMEM;
	d = opendir(dir.s);
	if (!d) {
		r = -errno;
		if (errno != ENOENT)
			slog("warning: cannot read %s: %s", dir.s,
			     strerror(errno));
		str_free(&dir);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);

		if (!strcmp(name, ".") || !strcmp(name, "..") ||
		    !strcmp(name, "trigger") ||
		    (len > 4 && !strcmp(name + len - 4, ".tmp")))
			continue;
		if (n >= DROP_MAX) {
			/* the rest next turn; rescan keeps the loop awake */
			s->drop_rescan = 1;
			s->rescan = 1;
			break;
		}
		n++;
		if (!buf) {
			if (ctl_get_ulong(s->root, "databytes", 10485760,
					  &max) < 0)
				max = 10485760;
			buf = malloc(CHUNK);
			if (!buf) {
				slog("warning: out of memory for %s/drop",
				     s->root);
				s->drop_rescan = 1;
				break;
			}
		}
		p.len = 0;
		if (str_catf(&p, "%s/%s", dir.s, name) < 0)
			break;
		take(s, p.s, name, max, buf);
	}
	closedir(d);
	free(buf);
	str_free(&dir);
	str_free(&p);
	return r;
}
