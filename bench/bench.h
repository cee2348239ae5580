/*
 * bench.h - what the load clients of bench/ (smtp_spread, pop3_load)
 * share: an option's number, the HOST:PORT they aim at, one connection
 * to it, and their threads started and joined under a clock.
 *
 * Header-only (static functions), since the Makefile builds each
 * bench/NAME.c alone against libfacteur.a. Unlike lib/, some of these
 * end the program, as a benchmark client's main would: on bad usage
 * through the caller's usage(), on a system error with exit 111.
 * bench_connect() returns a descriptor or a negative errno code.
 */
#ifndef FACTEUR_BENCH_H
#define FACTEUR_BENCH_H

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "num.h"

/* bench_opt - an option's value, 1 to 100,000,000, else usage() */
static inline unsigned long bench_opt(const char *s, void (*usage)(void))
{
	uint64_t v;

	if (num_parse(s, 100000000, &v) < 0 || v == 0)
		usage();
	return (unsigned long)v;
}

/* bench_aim - HOST:PORT (the last colon splits) resolved into *ai_r;
 * usage() without a colon, exit 111 when it does not resolve */
static inline void bench_aim(const char *prog, const char *hp,
			     void (*usage)(void), struct addrinfo **ai_r)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	char *host = strdup(hp), *colon;

	if (!host)
		exit(111);
	colon = strrchr(host, ':');
	if (!colon)
		usage();
	*colon = 0;
	if (getaddrinfo(host, colon + 1, &hints, ai_r) != 0) {
		fprintf(stderr, "%s: cannot resolve %s\n", prog, hp);
		exit(111);
	}
	free(host);
}

/* bench_connect - a new connection to ai: its descriptor */
static inline int bench_connect(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* bench_threads - n threads of fn, all joined: the wall time they took,
 * in seconds */
static inline double bench_threads(unsigned long n, void *(*fn)(void *))
{
	pthread_t *th = calloc(n, sizeof *th);
	struct timespec t0, t1;

	if (!th)
		exit(111);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, fn, NULL) != 0)
			exit(111);
	for (unsigned long i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	free(th);
	return (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

#endif
