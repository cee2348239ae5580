/*
 * fsx - careful file system operations (see fsx.h).
 */
#include "fsx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* fsx_write_all - write n bytes, retrying short writes and EINTR */
int fsx_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsx_fsync_dir - make a directory's entries (creations, renames) durable */
int fsx_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* fsx_fsync_parent - fsync the directory that holds path */
int fsx_fsync_parent(const char *path)
{
	struct str dir = STR_INIT;
	const char *slash = strrchr(path, '/');
	int r;

	if (!slash)
		return fsx_fsync_dir(".");
	if (slash == path)
		return fsx_fsync_dir("/");
	r = str_copyb(&dir, path, (size_t)(slash - path));
	if (r == 0)
		r = fsx_fsync_dir(dir.s);
	str_free(&dir);
	return r;
}

/* fsx_mkdir - create a directory, or accept an existing real directory */
int fsx_mkdir(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	/* lstat: a symlink where our directory belongs is refused, not followed */
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return 0;
}

/* fsx_mkdir_p - create a directory and any missing parents */
int fsx_mkdir_p(const char *path, mode_t mode)
{
	struct str p = STR_INIT;
	size_t i;
	int r;

	r = str_copys(&p, path);
	for (i = 1; r == 0 && i < p.len; i++) {
		if (p.s[i] != '/')
			continue;
		p.s[i] = 0;
		r = fsx_mkdir(p.s, mode);
		p.s[i] = '/';
	}
	if (r == 0)
		r = fsx_mkdir(p.s, mode);
	str_free(&p);
	return r;
}

/* fsx_tmpname - a temporary name beside path, unique to this process */
int fsx_tmpname(struct str *tmp, const char *path)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return str_copys(tmp, path) ? -ENOMEM :
	       str_catf(tmp, ".tmp.%ld.%ld", (long)getpid(), (long)ts.tv_nsec);
}

/* fsx_write_atomic - replace path with buf: tmp, fsync, rename, fsync dir */
int fsx_write_atomic(const char *path, const void *buf, size_t n, mode_t mode)
{
	struct str tmp = STR_INIT;
	int fd, r;

	r = fsx_tmpname(&tmp, path);
	if (r < 0)
		goto out;
	fd = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = fsx_write_all(fd, buf, n);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp.s, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp.s);
	else
		r = fsx_fsync_parent(path);
out:
	str_free(&tmp);
	return r;
}

/* fsx_read_fd - FD read to its end, at most max bytes (-EFBIG past
 * them: a writer that never stops cannot grow OUT without bound) */
int fsx_read_fd(int fd, struct str *out, size_t max)
{
	char buf[8192];
	int r = 0;

	str_trunc(out, 0);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > max) {
			r = -EFBIG;
			break;
		}
		r = str_catb(out, buf, (size_t)n);
		if (r < 0)
			break;
	}
	explicit_bzero(buf, sizeof buf);	/* it may have held a password */
	if (r == 0 && !out->s)
		r = str_catb(out, "", 0);
	return r;
}

/* fsx_read_file - read a whole regular file of at most max bytes; a
 * FIFO or a device planted where a control file belongs (control/ is the
 * mail user's, and root reads it) is refused at once, -EINVAL, never
 * waited on */
int fsx_read_file(const char *path, struct str *out, size_t max)
{
	return fsx_read_at(AT_FDCWD, path, out, max);
}

/* fsx_read_at - fsx_read_file of NAME relative to the directory DIRFD */
int fsx_read_at(int dirfd, const char *name, struct str *out, size_t max)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
			O_NONBLOCK);
	struct stat st;
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	if (r == 0)
		r = fsx_read_fd(fd, out, max);
	close(fd);
	return r;
}

/* rmtree_at - remove dir's content below dirfd without following links */
static int rmtree_at(int dirfd)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		close(dirfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct stat st;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, n, O_RDONLY | O_DIRECTORY |
					 O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				r = -errno;
				continue;
			}
			if (rmtree_at(sub) < 0)
				r = -EIO;
			if (unlinkat(dirfd, n, AT_REMOVEDIR) < 0)
				r = -errno;
		} else if (unlinkat(dirfd, n, 0) < 0) {
			r = -errno;
		}
	}
	closedir(d);
	return r;
}

/* fsx_rmtree - remove a directory tree; a missing tree is not an error */
int fsx_rmtree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = rmtree_at(fd);
	if (rmdir(path) < 0 && r == 0)
		r = -errno;
	return r;
}

/* fsx_is_dir - 1 when path is a real directory (not a link), else 0 */
int fsx_is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
