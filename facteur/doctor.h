/*
 * doctor.h - the pieces of `facteur doctor` shared by its files:
 * doctor.c (the driver, the report and the older checks), doctor_tables.c
 * (domains, cdb-age and the CDB regeneration of --fix), doctor_walk.c
 * (maildirs), doctor_ctl.c (the syntax of the control files) and
 * doctor_net.c (tls, listen), doctor_mx.c (mx) and doctor_dkim.c (dkim);
 * the srs check is in doctor_ctl.c.
 *
 * One report a check: every problem goes through say(), which keeps the
 * text line and the JSON fields ("message", "fix") from the one call,
 * so that the two outputs cannot disagree. A problem's format string
 * is "what; how to fix": the first "; " of the format (not of the
 * formatted text, which may hold any path) separates the two.
 */
#ifndef FACTEUR_DOCTOR_H
#define FACTEUR_DOCTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store.h"
#include "str.h"

enum { OK, WARN, FAIL };

struct report {
	struct str line;	/* the text after "NAME: " */
	struct str what;	/* the problems, joined by "; " */
	struct str fix;		/* their fixes, joined by "; " */
	struct str done;	/* what --fix did, one line each, '\n' ended */
};

#define REPORT_INIT {STR_INIT, STR_INIT, STR_INIT, STR_INIT}

struct doctor {
	const char *root;
	int as_root;		/* started as root */
	int user_r;		/* priv_mailuser()'s result, when as_root */
	int fix;		/* --fix */
	int regen;		/* --fix ran vadmin rebuild: 1 done, <0 failed */
	uid_t uid;
	gid_t gid;
	struct str user;	/* control/mailuser */
	struct store *db;		/* opened by the database check */
	struct str path;	/* scratch */
	struct str bindir;	/* where facteur run takes the services from */
	struct report svc_p;	/* services: what was seen before the drop */
	int svc_v;		/* and its verdict */
	unsigned long svc_found;	/* bit i: run_service(i) is a file */
};

int say(struct report *p, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void did(struct report *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void report_reset(struct report *p);
void report_free(struct report *p);

int next_row(struct store_stmt *st, int *rc);

int check_cdbs(struct doctor *d, struct report *p);
int check_domains(struct doctor *d, struct report *p);
int check_cdb_age(struct doctor *d, struct report *p);
int check_passwords(struct doctor *d, struct report *p);
int check_maildirs(struct doctor *d, struct report *p);
int fix_mode(struct doctor *d, struct report *p, int dfd, const char *name,
	     const char *rel, const struct stat *st, mode_t want);
int check_relay(struct doctor *d, struct report *p);

/* doctor_ctl.c */
#define DOCTOR_LISTEN_FILES 5
extern const char *const doctor_listen_files[DOCTOR_LISTEN_FILES];
int check_control_files(struct doctor *d, struct report *p);
int check_listen_lines(struct doctor *d, struct report *p);
int check_srs(struct doctor *d, struct report *p);

/* doctor_net.c */
int check_tls_files(struct doctor *d, struct report *p);
int check_listen_greet(struct doctor *d, struct report *p);

/* The network half of a check (mx, dkim) on a thread of its own, which
 * writes only that check's report: beside_run starts FN (in the caller
 * when no thread can be made), FN's last act is beside_end, the
 * driver's check_*_done asks beside_ended and check_*_finish joins.
 * A zeroed struct (the calloc of the check's job) is the start: no
 * thread, not ended. */
struct beside_thread {
	pthread_t thread;
	int threaded;
	atomic_int done;
};

void beside_run(struct beside_thread *t, void *(*fn)(void *), void *arg);
void beside_end(struct beside_thread *t);
int beside_ended(struct beside_thread *t);
void beside_join(struct beside_thread *t);

/* say_capped - one problem of a check that may find thousands (one a
 * domain, a key): the first CAP spelled out, the others counted; X has
 * p (the report), v (the verdict), said and unsaid */
#define say_capped(x, cap, level, ...) do {				\
	if ((x)->v < (level))						\
		(x)->v = (level);					\
	if ((x)->said < (cap)) {					\
		(x)->said++;						\
		(void)say((x)->p, (level), __VA_ARGS__);		\
	} else {							\
		(x)->unsaid++;						\
	}								\
} while (0)

/* doctor_mx.c: begun early, run beside the other checks */
int check_mx_start(struct doctor *d, struct report *p, void **job_r);
int check_mx_done(void *job);
int check_mx_finish(void *job, struct report *p);

/* doctor_dkim.c: the key files judged at the start, their DNS records
 * asked beside the other checks */
int check_dkim_start(struct doctor *d, struct report *p, void **job_r);
int check_dkim_done(void *job);
int check_dkim_finish(void *job, struct report *p);

/* doctor_queue.c: the queue read and its diagnoses started early, their
 * answers taken at the end */
int check_queue_start(struct doctor *d, struct report *p, void **job_r);
int check_queue_done(void *job);
int check_queue_finish(void *job, struct report *p);

#endif
