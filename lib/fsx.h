/*
 * fsx - careful file system operations.
 *
 * Directories are made 0700 and files 0600 unless told otherwise; nothing
 * follows a symbolic link where a directory or file of ours is expected.
 * fsx_write_atomic() writes a temporary file beside the target, fsyncs it,
 * renames it over the target and fsyncs the directory, so a reader sees
 * the old content or the new, and a crash leaves one of them on disk.
 * fsx_read_fd() reads a descriptor to its end into OUT, at most MAX
 * bytes (-EFBIG for more); fsx_read_file() does so for a regular file.
 * All functions return 0 or a negative errno code.
 */
#ifndef FACTEUR_FSX_H
#define FACTEUR_FSX_H

#include <stddef.h>
#include <sys/types.h>

#include "str.h"

int fsx_write_all(int fd, const void *buf, size_t n);
int fsx_fsync_dir(const char *dir);
int fsx_fsync_parent(const char *path);
int fsx_mkdir(const char *path, mode_t mode);
int fsx_mkdir_p(const char *path, mode_t mode);
int fsx_tmpname(struct str *tmp, const char *path);
int fsx_write_atomic(const char *path, const void *buf, size_t n, mode_t mode);
int fsx_read_fd(int fd, struct str *out, size_t max);
int fsx_read_file(const char *path, struct str *out, size_t max);
int fsx_read_at(int dirfd, const char *name, struct str *out, size_t max);
int fsx_rmtree(const char *path);
int fsx_is_dir(const char *path);

#endif
