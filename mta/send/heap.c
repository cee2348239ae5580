/*
 * heap - waiting messages ordered by when they are next due.
 *
 * A binary min-heap on due_ms: the next message to try is found in O(1)
 * and a retry is filed in O(log n), so a million deferred messages cost
 * no directory scan and no sorting pass (qmail's slowdown past 25,000).
 */
#include <errno.h>
#include <stdlib.h>

#include "send.h"

static void put(struct send *s, size_t i, struct msg *m)
{
	s->heap[i] = m;
	m->hidx = (uint32_t)i;
}

static void up(struct send *s, size_t i)
{
	struct msg *m = s->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (s->heap[p]->due_ms <= m->due_ms)
			break;
		put(s, i, s->heap[p]);
		i = p;
	}
	put(s, i, m);
}

static void down(struct send *s, size_t i)
{
	struct msg *m = s->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->heap_n)
			break;
		if (c + 1 < s->heap_n &&
		    s->heap[c + 1]->due_ms < s->heap[c]->due_ms)
			c++;
		if (s->heap[c]->due_ms >= m->due_ms)
			break;
		put(s, i, s->heap[c]);
		i = c;
	}
	put(s, i, m);
}

int heap_push(struct send *s, struct msg *m)
{
	if (s->heap_n == s->heap_cap) {
		size_t cap = s->heap_cap ? s->heap_cap * 2 : 1024;
		struct msg **h = realloc(s->heap, cap * sizeof *h);

		if (!h)
			return -ENOMEM;
		s->heap = h;
		s->heap_cap = cap;
	}
	s->heap[s->heap_n] = m;
	up(s, s->heap_n++);
	return 0;
}

struct msg *heap_top(struct send *s)
{
	return s->heap_n ? s->heap[0] : NULL;
}

void heap_pop(struct send *s)
{
	struct msg *m;

	if (!s->heap_n)
		return;
	m = s->heap[0];
	m->hidx = NOHEAP;
	if (--s->heap_n) {
		s->heap[0] = s->heap[s->heap_n];
		down(s, 0);
	}
}

/* sched_now - every waiting message due now: equal keys keep the heap
 * ordered as it stands */
void sched_now(struct send *s)
{
	long long now = now_ms();
	size_t i;

	for (i = 0; i < s->heap_n; i++) {
		s->heap[i]->due_ms = now;
		s->heap[i]->force = 1;
	}
}
