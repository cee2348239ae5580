/*
 * store_pg - the PostgreSQL back end of lib/store (libpq).
 */
#include "store.h"

#include <errno.h>

/* store_pg_open - not yet */
int store_pg_open(const char *conninfo, int create, struct store **s_r)
{
	(void)conninfo;
	(void)create;
	(void)s_r;
	return -ENOTSUP;
}
