/*
 * scratch - the scratch root of a fuzz target that writes files
 * (fuzz_rules, fuzz_records): ROOT/control/ made once per process on
 * tmpfs when /dev/shm exists (a fuzzer writes thousands of files a
 * second; a disk would make it slow and wear), removed at exit.
 * scratch_make(NAME) fills scratch_root and scratch_file with
 * ROOT/control/FILE. scratch_smtpd(NAME) is the root of the mta-smtpd
 * targets (fuzz_smtpd, fuzz_smtpd_data): scratch_make's, with queue/tmp/,
 * queue/new/ and control/resolvers at loopback's port 9, where nothing
 * listens, so the SPF, DKIM and DMARC lookups fail at once (port
 * unreachable) instead of waiting on the machine's resolver, which would
 * also see fuzzed names (the targets spent a third to two thirds of
 * their time waiting on it), as the integration tests' no_dns().
 */
#ifndef FACTEUR_FUZZ_SCRATCH_H
#define FACTEUR_FUZZ_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"

static char scratch_root[64];
static char scratch_file[128];

/* scratch_cleanup - remove the scratch root */
static void scratch_cleanup(void)
{
	fsx_rmtree(scratch_root);
}

/* scratch_make - the root of target NAME, FILE's path in its control/ */
static inline void scratch_make(const char *name, const char *file)
{
	char ctl[96];

	snprintf(scratch_root, sizeof scratch_root,
		 "%s/facteur-fuzz-%s-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", name);
	if (!mkdtemp(scratch_root))
		abort();
	snprintf(ctl, sizeof ctl, "%s/control", scratch_root);
	snprintf(scratch_file, sizeof scratch_file, "%s/control/%s",
		 scratch_root, file);
	if (mkdir(ctl, 0700) < 0)
		abort();
	atexit(scratch_cleanup);
}

/* scratch_smtpd - the root of an mta-smtpd target NAME (above) */
static inline void scratch_smtpd(const char *name)
{
	static const char *const dirs[] = {"queue", "queue/tmp", "queue/new"};
	char p[128];
	size_t i;
	FILE *f;

	scratch_make(name, "resolvers");
	for (i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		snprintf(p, sizeof p, "%s/%s", scratch_root, dirs[i]);
		if (mkdir(p, 0700) < 0)
			abort();
	}
	f = fopen(scratch_file, "w");
	if (!f || fputs("127.0.0.1:9\n", f) == EOF || fclose(f) != 0)
		abort();
}

#endif
