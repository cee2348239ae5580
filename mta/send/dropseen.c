/*
 * dropseen - the entries of drop/ that are not message files and that
 * mta-send could not move aside (a user's directory cannot be moved out
 * by anyone else), remembered so that each is logged once, not at every
 * look, and costs no system call after its first.
 *
 * A set of 64-bit keys (inode and name hashed together, then mixed with
 * a secret drawn once a process, so that a user who sees the inode
 * numbers cannot choose names whose keys crowd one run of slots and make
 * each pass over drop/ probe the whole table), open addressing,
 * at most SEEN_MAX of them: a user who makes more gets one warning and
 * the rest are skipped without a word. An entry that a whole pass over
 * drop/ did not see is gone and forgotten, so the set holds only what
 * is there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "send.h"

#define SEEN_MAX 65536		/* keys; the table is at most twice that */

/* the secret of the keys, drawn at the first one (0: not yet) */
static uint64_t secret;

/* dropseen_key - never 0, which marks an empty slot */
uint64_t dropseen_key(uint64_t ino, const char *name)
{
	uint64_t h = 14695981039346656037u;	/* FNV-1a */

	while (!secret)
		if (getrandom(&secret, sizeof secret, 0) != sizeof secret)
			secret = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211u;
	h ^= ino * 0x9e3779b97f4a7c15u;
	/* splitmix64's finalizer on the keyed sum: every bit of the slot
	 * depends on the secret and on every bit of h */
	h += secret;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
	h ^= h >> 31;
	return h ? h : 1;
}

static size_t slot(const struct dropseen *d, uint64_t key)
{
	size_t i = (size_t)(key ^ (key >> 29)) & (d->cap - 1);

	while (d->key[i] && d->key[i] != key)
		i = (i + 1) & (d->cap - 1);
	return i;
}

/* dropseen_has - is KEY remembered? If so it is marked seen this pass */
int dropseen_has(struct dropseen *d, uint64_t key)
{
	size_t i;

	if (!d->cap)
		return 0;
	i = slot(d, key);
	if (!d->key[i])
		return 0;
	d->pass[i] = d->cur;
	return 1;
}

/* grow - a table of CAP slots (a power of two) with every key, or with
 * only those seen this pass (ALL 0) */
static int grow(struct dropseen *d, size_t cap, int all)
{
	struct dropseen n = *d;
	size_t i;

	n.key = calloc(cap, sizeof *n.key);
	n.pass = calloc(cap, sizeof *n.pass);
	if (!n.key || !n.pass) {
		free(n.key);
		free(n.pass);
		return -ENOMEM;
	}
	n.cap = cap;
	n.n = 0;
	for (i = 0; i < d->cap; i++)
		if (d->key[i] && (all || d->pass[i] == d->cur)) {
			size_t k = slot(&n, d->key[i]);

			n.key[k] = d->key[i];
			n.pass[k] = d->pass[i];
			n.n++;
		}
	free(d->key);
	free(d->pass);
	*d = n;
	return 0;
}

/* dropseen_add - remember KEY; -ENOSPC when SEEN_MAX are */
int dropseen_add(struct dropseen *d, uint64_t key)
{
	size_t i;

	if (d->n >= SEEN_MAX)
		return -ENOSPC;
	if ((d->n + 1) * 2 > d->cap &&
	    grow(d, d->cap ? d->cap * 2 : 1024, 1) < 0)
		return -ENOMEM;
	i = slot(d, key);
	if (!d->key[i]) {
		d->key[i] = key;
		d->n++;
	}
	d->pass[i] = d->cur;
	return 0;
}

/* dropseen_pass_end - a whole pass is over: what it did not see is gone.
 * The table is rebuilt (deleting from open addressing breaks chains) */
void dropseen_pass_end(struct dropseen *d)
{
	if (d->cap)
		(void)grow(d, d->cap, 0);	/* without memory, keep all */
	/* not at once under the limit: entries not remembered would be
	 * logged again at each pass */
	if (d->n < SEEN_MAX / 2)
		d->full = 0;
	d->cur++;
}

void dropseen_free(struct dropseen *d)
{
	free(d->key);
	free(d->pass);
	memset(d, 0, sizeof *d);
}
