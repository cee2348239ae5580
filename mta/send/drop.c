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
 *   lstat: a regular file, one link;
 *   open O_NOFOLLOW|O_NONBLOCK, then one fstat: the same inode (no swap),
 *   its size the only one trusted: at most control/databytes + 1 MiB;
 *   queue_read_env (the fuzzed parser): the message (M) at most
 *   control/databytes, exactly, and ending at that size; only F and R are kept, each
 *   address checked as mta-inject checks it; C, H, A, P and B, which
 *   sendmail never writes, make the file refused; the arrival time is
 *   now and U is the file's owner, whatever the file says;
 *   a Received: line naming that uid, then the message, through
 *   qw_open/qw_body/qw_commit (durable in queue/new/, which wakes the
 *   normal pickup); only then is the drop file unlinked.
 *
 * A refused file is never deleted: it is moved to queue/quarantine/ with
 * a log line naming its uid; if even that fails it stays where it is,
 * logged once (dropseen.c). A failure of ours (disk full) leaves the file
 * in drop/ for the next look.
 *
 * drop/ is every user's: one may fill it with directories, FIFOs or junk.
 * So it is read a slice a turn, from where the last turn stopped (the DIR
 * stays open between turns); only regular files count toward the files
 * taken a turn; a uid has at most DROP_UID_MAX files taken and
 * DROP_UID_LOG entries logged a turn, the rest of its entries waiting for
 * the next pass (files) or remembered with one summary line (the others).
 * See docs/queue.md, "Local submission".
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
#include "date.h"
#include "qsign.h"
#include "send.h"

#define DROP_MAX 1000		/* files a turn, as for queue/new/ */
#define DROP_LOOK_MAX 4096	/* entries read a turn */
#define DROP_UID_MAX 100	/* files of one uid a turn */
#define DROP_UID_LOG 10		/* entries of one uid logged a turn */
#define DROP_RETRY_MS 60000	/* a file we could not queue: next try */
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
 * deleted (it is a user's message); <0 if it could not be moved */
static int refuse(struct send *s, const char *path, uid_t uid,
		  const char *why)
{
	struct str w = STR_INIT;
	int r;

	if (str_catf(&w, "from uid %lu: %s", (unsigned long)uid, why) < 0)
		r = quarantine_file(s->root, path, why);
	else
		r = quarantine_file(s->root, path, w.s);
	str_free(&w);
	return r;
}

/* addr_ok - an address as sendmail writes one: queue_qualify takes it
 * and has nothing to change (complete, its domain in A-labels, every
 * entry's checks); a hand-made file may hold anything */
static int addr_ok(const char *a)
{
	struct str q = STR_INIT;
	const char *why;
	int ok = queue_qualify(a, "", 0, &q, &why) == 0 && str_eqs(&q, a);

	str_free(&q);
	return ok;
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
	if (e->sender.len && (!addr_ok(e->sender.s) ||
			      str_eqs(&e->sender, QUEUE_DBL_SENDER)))
		return "an invalid sender address";
	for (i = 0; i < e->rcpts.len; i += strlen(e->rcpts.s + i) + 1)
		if (!addr_ok(e->rcpts.s + i))
			return "an invalid recipient address";
	return NULL;
}

/* copy - the checked envelope and the message into a new queue file;
 * -EILSEQ when the file changed under us (its owner may write it),
 * -EBADMSG for a NUL or a CR in the message: sendmail writes LF line
 * ends, a stray CR as a space, and refuses a NUL (queue_lf) */
static int copy(struct send *s, int fd, const struct qenv *in, off_t off,
		uint64_t len, uid_t uid, char *buf, struct str *id)
{
	struct qenv e;
	struct qwriter w;
	struct qsign qs;
	struct str rcv = STR_INIT;
	ssize_t got;
	int r;

	qenv_init(&e);
	r = str_copyb(&e.sender, in->sender.s ? in->sender.s : "",
		      in->sender.len) ||
	    str_copyb(&e.rcpts, in->rcpts.s, in->rcpts.len) ||
	    str_catf(&e.uid, "%lu", (unsigned long)uid) ||
	    str_catf(&rcv, "Received: (facteur drop from uid %lu);\n\t",
		     (unsigned long)uid) || date_cat(&rcv, time(NULL)) ||
	    str_catc(&rcv, '\n') ? -ENOMEM : 0;
	e.nrcpts = in->nrcpts;
	if (r == 0)
		r = qw_open(&w, s->root, &e);
	if (r == 0) {
		r = qw_body(&w, rcv.s, rcv.len);
		/* a local user's sendmail: signed like mta-inject's mail */
		(void)qsign_start(&qs, &w, s->root, 1);
		while (r == 0 && len) {
			got = pread(fd, buf, len < CHUNK ? (size_t)len : CHUNK,
				    off);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				r = got < 0 ? -errno : -EILSEQ;
				break;
			}
			if (memchr(buf, '\r', (size_t)got) ||
			    memchr(buf, 0, (size_t)got)) {
				r = -EBADMSG;
				break;
			}
			r = qsign_put(&qs, buf, (size_t)got);
			off += got;
			len -= (uint64_t)got;
		}
		if (r == 0)
			r = qsign_end(&qs);
		qsign_free(&qs);
		if (r == 0)
			r = qw_commit(&w, id);
		else
			qw_abort(&w);
	}
	qenv_free(&e);
	str_free(&rcv);
	return r;
}

/* take - one drop file (SB its lstat), checked, copied into the queue and
 * removed; -1 if it was refused and could not be moved aside */
static int take(struct send *s, const char *path, const char *name,
		const struct stat *sb, unsigned long max, char *buf)
{
	struct stat fb;
	struct qenv e;
	struct str id = STR_INIT;
	const char *why = NULL;
	off_t off = 0;
	uint64_t len = 0;
	int fd, r, later = 0;

	if (sb->st_nlink != 1)
		return refuse(s, path, sb->st_uid, "a file with more than one "
			      "link") < 0 ? -1 : 0;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		/* the file's fault, or ours (out of descriptors): only the
		 * first is a reason to set a user's message aside */
		if (errno == EACCES || errno == ELOOP)
			return refuse(s, path, sb->st_uid, errno == EACCES ?
				      "not readable by the mail user" :
				      "changed into a symbolic link") < 0 ? -1 : 0;
		if (errno == ENOENT)
			return 0;
		slog("warning: cannot open %s: %s; it is tried again later",
		     path, strerror(errno));
		return 1;
	}
	qenv_init(&e);
	/* the one size trusted: the file may grow while it is read, and
	 * queue_read_env's own look at it is not this one */
	if (fstat(fd, &fb) < 0 || fb.st_dev != sb->st_dev ||
	    fb.st_ino != sb->st_ino || !S_ISREG(fb.st_mode) ||
	    fb.st_nlink != 1) {
		why = "changed while it was looked at";
		goto out;
	}
	if ((uint64_t)fb.st_size > (uint64_t)max + ENV_SLACK) {
		why = "larger than control/databytes";
		goto out;
	}
	r = queue_read_env(fd, &e, &off, &len);
	if (r == -ENOMEM) {
		slog("warning: out of memory reading %s; it is tried again "
		     "later", path);
		later = 1;
		goto out;
	}
	if (r < 0) {
		why = "damaged (not a whole queue file, or an unknown record)";
		goto out;
	}
	/* exactly databytes, as at every other entry; and copy() reads no
	 * more than this, whatever the file has grown to since */
	if (len > max) {
		why = "larger than control/databytes";
		goto out;
	}
	if ((uint64_t)off + len != (uint64_t)fb.st_size) {
		why = "changed while it was looked at";
		goto out;
	}
	if ((why = check_env(&e)) != NULL)
		goto out;
	r = copy(s, fd, &e, off, len, fb.st_uid, buf, &id);
	if (r == -EILSEQ || r == -EBADMSG) {
		why = r == -EILSEQ ? "cut short while it was read" :
		      "the message holds a CR or a NUL (sendmail writes "
		      "neither)";
		goto out;
	}
	if (r < 0) {
		slog("warning: cannot queue %s: %s; it is tried again later",
		     path, strerror(-r));
		later = 1;
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
	r = later;
	if (why && refuse(s, path, sb->st_uid, why) < 0)
		r = -1;
	qenv_free(&e);
	str_free(&id);
	return r;
}

/* what one uid did in this turn */
struct uidturn {
	uid_t uid;
	unsigned taken, logged, unlogged;
};

struct turn {
	struct uidturn *u;
	size_t n, cap;
	size_t taken;		/* files, toward DROP_MAX */
	unsigned long max;	/* control/databytes */
	char *buf;
	struct str p;
};

/* uidturn - UID's counters; a shared spare without memory, which only
 * makes the limits stricter */
static struct uidturn *uidturn(struct turn *t, uid_t uid)
{
	static struct uidturn spare;
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->u[i].uid == uid)
			return &t->u[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct uidturn *a = realloc(t->u, cap * sizeof *a);

		if (!a) {
			spare.uid = uid;
			return &spare;
		}
		t->u = a;
		t->cap = cap;
	}
	memset(&t->u[t->n], 0, sizeof *t->u);
	t->u[t->n].uid = uid;
	return &t->u[t->n++];
}

/* odd - an entry that is not a message file: moved aside and logged once,
 * at most DROP_UID_LOG of one uid a turn; the others, and those that
 * cannot be moved, are remembered (a count for the summary line). A
 * directory is never moved: a user's own made writable by all could be,
 * and the user, holding it open, would then write inside queue/. When no
 * more can be remembered, one warning, and the rest are skipped unlogged:
 * a bounded log whatever drop/ holds */
static void odd(struct send *s, struct turn *t, uint64_t key,
		const struct stat *sb)
{
	struct uidturn *u;

	if (s->drop_seen.full)
		return;
	u = uidturn(t, sb->st_uid);
	if (u->logged < DROP_UID_LOG) {
		u->logged++;
		if (S_ISDIR(sb->st_mode))
			slog("warning: will not quarantine %s (from uid %lu: "
			     "a directory, not a message file)", t->p.s,
			     (unsigned long)sb->st_uid);
		else if (refuse(s, t->p.s, sb->st_uid, S_ISLNK(sb->st_mode) ?
			   "a symbolic link, not a message file" :
			   "not a regular file") == 0)
			return;
	} else {
		u->unlogged++;
	}
	if (dropseen_add(&s->drop_seen, key) == -ENOSPC) {
		s->drop_seen.full = 1;
		slog("warning: %s/drop holds too many entries that are not "
		     "message files to remember; the others are skipped "
		     "unlogged", s->root);
	}
}

/* entry - one name of drop/ */
static void entry(struct send *s, struct turn *t, const struct dirent *de)
{
	const char *name = de->d_name;
	size_t len = strlen(name);
	uint64_t key;
	struct stat sb;
	struct uidturn *u;
	int r;

	if (!strcmp(name, ".") || !strcmp(name, "..") ||
	    !strcmp(name, "trigger") ||
	    (len > 4 && !strcmp(name + len - 4, ".tmp")))
		return;
	/* one already logged costs nothing more, not even an lstat */
	key = dropseen_key(de->d_ino, name);
	if (dropseen_has(&s->drop_seen, key))
		return;
	t->p.len = 0;
	if (str_catf(&t->p, "%s/drop/%s", s->root, name) < 0)
		return;
	if (lstat(t->p.s, &sb) < 0) {
		if (errno != ENOENT) /* gone: its owner took it back */
			slog("warning: cannot look at %s: %s", t->p.s,
			     strerror(errno));
		return;
	}
	if (!S_ISREG(sb.st_mode)) {
		odd(s, t, key, &sb);
		return;
	}
	u = uidturn(t, sb.st_uid);
	if (u->taken >= DROP_UID_MAX) {
		s->drop_deferred = 1;	/* for the pass, not the turn */
		return;
	}
	u->taken++;
	t->taken++;
	r = take(s, t->p.s, name, &sb, t->max, t->buf);
	if (r < 0) {
		u->logged++;
		(void)dropseen_add(&s->drop_seen, key);
	} else if (r > 0) {
		s->drop_later = 1;
	}
}

/* summary - one line a uid for its entries not logged one by one */
static void summary(struct send *s, struct turn *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->u[i].unlogged)
			slog("warning: %s/drop: %u more entries from uid %lu "
			     "that are not message files; left there, not "
			     "logged one by one", s->root, t->u[i].unlogged,
			     (unsigned long)t->u[i].uid);
}

/* pass_start - drop/ opened for a new pass; the trigger is served */
static int pass_start(struct send *s)
{
	struct str dir = STR_INIT;
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
	}
	s->drop_dir = d;
	str_free(&dir);
	return r;
}

/* pass_end - the whole of drop/ read: files over a uid's share in any
 * turn of the pass are read by a new pass at once; files we could not
 * queue (a full disk, no descriptor) by one a minute later, so that
 * neither waits for a trigger and neither spins */
static void pass_end(struct send *s)
{
	drop_close(s);
	dropseen_pass_end(&s->drop_seen);
	if (s->drop_later)
		s->drop_retry_ms = now_ms() + DROP_RETRY_MS;
	else if (s->drop_deferred)
		s->drop_rescan = 1;
	s->drop_deferred = s->drop_later = 0;
}

/* drop_close - the pass given up (at exit) or over */
void drop_close(struct send *s)
{
	if (s->drop_dir)
		closedir(s->drop_dir);
	s->drop_dir = NULL;
}

/* drop_pickup - the next slice of drop/: at most DROP_LOOK_MAX entries
 * and DROP_MAX files a turn, from where the last turn stopped. A pass that
 * ends with files left (a uid over its share) asks for another */
int drop_pickup(struct send *s)
{
	struct turn t = {0};
	struct dirent *de = NULL;
	size_t looked = 0;
	int r;

	if (!s->drop_dir && (r = pass_start(s)) < 0)
		return r;
	t.max = ctl_num_warn(s->root, CTL_DATABYTES, slog);
	t.buf = malloc(CHUNK);
	if (!t.buf) {
		slog("warning: out of memory for %s/drop", s->root);
		return -ENOMEM;
	}
	while (looked < DROP_LOOK_MAX && t.taken < DROP_MAX &&
	       (de = readdir(s->drop_dir)) != NULL) {
		looked++;
		entry(s, &t, de);
	}
	if (!de)
		pass_end(s);
	summary(s, &t);
	free(t.buf);
	free(t.u);
	str_free(&t.p);
	return 0;
}
