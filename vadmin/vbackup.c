/*
 * vbackup - `vadmin backup FILE`: a consistent copy of the account
 * database, taken while everything runs.
 *
 * SQLite's online backup API copies every page of db/accounts.sqlite in
 * one step, inside one read transaction: in WAL mode that is a snapshot
 * of the last commit, and writers (other vadmin runs) go on meanwhile.
 * The copy is written to FILE.tmp.PID.NSEC beside FILE (created with
 * O_EXCL, 0600: it holds password hashes), switched out of WAL mode so
 * that it is one self-contained file, checked with PRAGMA
 * integrity_check, fsynced, renamed over FILE, and FILE's directory is
 * fsynced: FILE is the old copy or the new one, never half of one, and
 * a copy that fails the check never replaces a good one.
 *
 * FILE may already exist if it is a regular file (a nightly job reuses
 * one name); a directory, a symbolic link, a device, or the live
 * database itself are refused. Started as root, vadmin is the mail user
 * by now (vopen), so the copy is written, and owned, by it.
 *
 * Exit: 0 done; 1 FILE is unusable (its directory missing or closed to
 * us, not a regular file, the database itself); 111 the database, the
 * disk, or the copy's check failed (FILE is left as it was).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "fsx.h"
#include "store.h"
#include "vadmin.h"

/* how long a step may keep meeting a lock: the busy timeout of lib/db.c */
#define BACKUP_WAIT_MS 10000
#define BACKUP_NAP_MS 20

/* say - put what went wrong in why, and return r (a negative errno) */
static int say(struct str *why, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int say(struct str *why, int r, const char *fmt, ...)
{
	va_list ap;

	why->len = 0;
	va_start(ap, fmt);
	(void)str_vcatf(why, fmt, ap);	/* out of memory: r still says */
	va_end(ap);
	return r;
}

/* dir_of - the directory part of a path, "." for a bare name */
static int dir_of(const char *path, struct str *dir)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return str_copys(dir, ".");
	if (slash == path)
		return str_copys(dir, "/");
	return str_copyb(dir, path, (size_t)(slash - path));
}

/* same_file - whether FILE (lstat'ed as st) is the database PATH+SUFFIX */
static int same_file(const struct stat *st, const char *path,
		     const char *suffix)
{
	struct str p = STR_INIT;
	struct stat db;
	int same = 0;

	if (str_copys(&p, path) == 0 && str_cats(&p, suffix) == 0 &&
	    stat(p.s, &db) == 0)
		same = db.st_dev == st->st_dev && db.st_ino == st->st_ino;
	str_free(&p);
	return same;
}

/* check_target - FILE is nothing yet, or a regular file that is not the
 * live database (nor its WAL or index); refusals exit 1 */
static void check_target(struct vctx *c, const char *file)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	struct str db = STR_INIT;
	struct stat st;
	size_t i;

	if (!*file)
		vfail(EX_REFUSED, "backup: an empty file name; name the file "
		      "to write");
	if (lstat(file, &st) < 0) {
		if (errno == ENOENT)
			return;	/* a missing directory is said at create */
		vfail(errno == EIO ? EX_TEMP : EX_REFUSED, "cannot look at "
		      "%s: %s", file, strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		vfail(EX_REFUSED, "%s is a directory; name a file in it, e.g. "
		      "%s/accounts.sqlite", file, file);
	if (!S_ISREG(st.st_mode))
		vfail(EX_REFUSED, "%s is not a regular file (a link, a device "
		      "or a FIFO); name a plain file", file);
	if (db_path(&db, c->root) < 0)
		vfail(EX_TEMP, "out of memory");
	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
		if (same_file(&st, db.s, suffixes[i]))
			vfail(EX_REFUSED, "%s is the live database; name a "
			      "file outside %s/db", file, c->root);
	str_free(&db);
}

/* copy_pages - every page of src into dst in one step (one snapshot),
 * retried while a lock is met, for at most BACKUP_WAIT_MS */
static int copy_pages(sqlite3 *src, sqlite3 *dst, struct str *why)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int64_t start = now_ms();
	int rc;

	if (!b)
		return say(why, -EIO, "cannot start the copy: %s",
			   sqlite3_errmsg(dst));
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
	       rc == SQLITE_LOCKED) {
		if (now_ms() - start >= BACKUP_WAIT_MS)
			break;
		sqlite3_sleep(BACKUP_NAP_MS);
	}
	/* finish says what went wrong in a step, and frees b either way */
	if (sqlite3_backup_finish(b) != SQLITE_OK || rc != SQLITE_DONE) {
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			return say(why, -EBUSY, "the database stayed locked "
				   "for %d s; retry", BACKUP_WAIT_MS / 1000);
		return say(why, -EIO, "copying failed: %s",
			   sqlite3_errmsg(dst));
	}
	return 0;
}

/* first_line - the first report of integrity_check, its line breaks
 * made spaces: a diagnostic is one line */
static const char *first_line(sqlite3_stmt *st, struct str *buf)
{
	const char *t = (const char *)sqlite3_column_text(st, 0);
	size_t i;

	if (str_copys(buf, t ? t : "") < 0)
		return "?";
	for (i = 0; i < buf->len; i++)
		if ((unsigned char)buf->s[i] < 0x20 || buf->s[i] == 0x7f)
			buf->s[i] = ' ';
	return buf->s;
}

/* check_copy - the copy as a rollback-journal database (it was copied
 * with the WAL flag of the live one; one file is what a backup should
 * be), and PRAGMA integrity_check says "ok" */
static int check_copy(sqlite3 *dst, struct str *why)
{
	struct str line = STR_INIT;
	sqlite3_stmt *st = NULL;
	int r = db_exec(dst, "PRAGMA journal_mode = DELETE");
	int rc;

	if (r < 0)
		return say(why, r, "cannot make the copy one file: %s",
			   sqlite3_errmsg(dst));
	rc = sqlite3_prepare_v2(dst, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		r = say(why, -EIO, "cannot check the copy: %s",
			sqlite3_errmsg(dst));
	else if (strcmp(first_line(st, &line), "ok"))
		r = say(why, -EILSEQ, "the copy fails SQLite's integrity "
			"check (%s): the database itself may be damaged; run "
			"facteur doctor", line.s ? line.s : "?");
	sqlite3_finalize(st);
	str_free(&line);
	return r;
}

/* write_copy - the whole copy into the empty file TMP (open as fd) */
static int write_copy(struct vctx *c, const char *tmp, int fd,
		      struct str *why)
{
	sqlite3 *dst = NULL;
	int r, rc;

	rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		r = say(why, -EIO, "cannot open %s: %s", tmp, db_errmsg(dst));
	else
		r = copy_pages(store_sqlite(c->db), dst, why);
	if (r == 0)
		r = check_copy(dst, why);
	if (sqlite3_close(dst) != SQLITE_OK && r == 0)
		r = say(why, -EIO, "cannot close %s: %s", tmp,
			db_errmsg(dst));
	/* SQLite wrote through its own descriptor; this one syncs the same
	 * file, and fchmod makes 0600 sure whatever the umask was */
	if (r == 0 && (fchmod(fd, 0600) < 0 || fsync(fd) < 0))
		r = say(why, -errno, "cannot sync %s: %s", tmp,
			strerror(errno));
	return r;
}

/* remove_tmp - the temporary copy and any file SQLite made beside it */
static void remove_tmp(const struct str *tmp)
{
	static const char *const suffixes[] = {"-journal", "-wal", "-shm"};
	struct str p = STR_INIT;
	size_t i;

	(void)unlink(tmp->s);
	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		p.len = 0;
		if (str_copys(&p, tmp->s) == 0 && str_cats(&p, suffixes[i]) == 0)
			(void)unlink(p.s);
	}
	str_free(&p);
}

/* create_tmp - FILE.tmp.PID.NSEC, new, 0600; a place we cannot write is
 * FILE's problem (exit 1), the disk's problems are 111 */
static int create_tmp(const char *file, struct str *tmp)
{
	struct str dir = STR_INIT;
	int fd, e;

	if (fsx_tmpname(tmp, file) < 0 || dir_of(file, &dir) < 0)
		vfail(EX_TEMP, "out of memory");
	fd = open(tmp->s, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd >= 0) {
		str_free(&dir);
		return fd;
	}
	e = errno;
	if (e == ENOENT || e == ENOTDIR)
		vfail(EX_REFUSED, "cannot write %s: the directory %s does not "
		      "exist; create it first", file, dir.s);
	if (e == EACCES || e == EPERM || e == EROFS)
		vfail(EX_REFUSED, "cannot write in %s: %s; started as root, "
		      "vadmin writes as the mail user: make the directory "
		      "writable by it", dir.s, strerror(e));
	vfail(EX_TEMP, "cannot create %s: %s", tmp->s, strerror(e));
}

/* cmd_backup - vadmin backup FILE, on a root opened for reading */
int cmd_backup(struct vctx *c, const char *file)
{
	struct str tmp = STR_INIT, why = STR_INIT;
	int fd, r;

	/* a page copy is SQLite's; a PostgreSQL store has its own tools */
	if (!store_sqlite(c->db))
		vfail(EX_REFUSED, "the accounts are in PostgreSQL "
		      "(control/accountdb); back them up with pg_dump");
	check_target(c, file);
	fd = create_tmp(file, &tmp);
	r = write_copy(c, tmp.s, fd, &why);
	if (close(fd) < 0 && r == 0)
		r = say(&why, -errno, "cannot close %s: %s", tmp.s,
			strerror(errno));
	if (r == 0 && rename(tmp.s, file) < 0)
		r = say(&why, -errno, "cannot rename %s to %s: %s", tmp.s,
			file, strerror(errno));
	if (r < 0) {
		remove_tmp(&tmp);
		vfail(EX_TEMP, "%s; %s was left as it was",
		      why.len ? why.s : msg_err(r), file);
	}
	r = fsx_fsync_parent(file);
	if (r < 0)
		vfail(EX_TEMP, "%s is written but its directory could not be "
		      "synced (%s); run the backup again", file, msg_err(r));
	str_free(&tmp);
	str_free(&why);
	return EX_DONE;
}
