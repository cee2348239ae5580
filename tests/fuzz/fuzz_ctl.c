/*
 * fuzz_ctl - libFuzzer target for ctl_parse_ulong() and the control file
 * readers ctl_get(), ctl_get_ulong() and ctl_get_lines().
 *
 * The input is parsed as a number, then written as ROOT/control/f in one
 * scratch root made once per process (on tmpfs when /dev/shm exists) and
 * removed at exit. Checked: a number parses exactly when it is all digits
 * and fits (junk is refused); every line returned is non-empty, trimmed and not a comment.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fsx.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];
static char file[96];

/* cleanup - remove the scratch root */
static void cleanup(void)
{
	fsx_rmtree(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char ctl[96];

	(void)argc;
	(void)argv;
	snprintf(root, sizeof root, "%s/facteur-fuzz-ctl-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(root))
		abort();
	snprintf(ctl, sizeof ctl, "%s/control", root);
	snprintf(file, sizeof file, "%s/control/f", root);
	if (mkdir(ctl, 0700) < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* trimmed - a non-empty value with no edge white space and no newline */
static int trimmed(const char *s, size_t n)
{
	return n > 0 && !is_space(s[0]) && !is_space(s[n - 1]) &&
	       !memchr(s, '\n', n);
}

/* check_ulong - ctl_parse_ulong() against strtoul() on all-digit input */
static void check_ulong(const char *s)
{
	unsigned long u = 0, want;
	int r = ctl_parse_ulong(s, &u);
	int digits = *s && strspn(s, "0123456789") == strlen(s);

	if (!digits) {
		/* junk after an overflowing prefix may be either error */
		if (r != -EINVAL && r != -ERANGE)
			abort();
		return;
	}
	errno = 0;
	want = strtoul(s, NULL, 10);
	if (errno == ERANGE ? r != -ERANGE : (r != 0 || u != want))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str s = STR_INIT, lines = STR_INIT;
	unsigned long u;
	size_t n, i, a;
	int fd, r;

	if (str_copyb(&s, data, size) < 0)
		abort();
	check_ulong(s.s);

	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fsx_write_all(fd, data, size) < 0 || close(fd) < 0)
		abort();

	if (ctl_get_lines(root, "f", &lines, &n) < 0)
		abort();
	for (i = a = 0; i < lines.len; i++) {
		if (lines.s[i])
			continue;
		if (!trimmed(lines.s + a, i - a) || lines.s[a] == '#')
			abort();
		a = i + 1;
		n--;
	}
	if (n != 0 || a != lines.len)
		abort();

	if (ctl_get(root, "f", "dflt", &s) < 0 || !trimmed(s.s, s.len))
		abort();
	r = ctl_get_ulong(root, "f", 7, &u);
	if (r != 0 && r != -EINVAL && r != -ERANGE)
		abort();
	str_free(&s);
	str_free(&lines);
	return 0;
}
