/*
 * priv - running as the mail user.
 *
 * Files under the root belong to the user named in control/mailuser
 * (default "facteur"). A program started as root that writes them calls
 * priv_become_mailuser() first, so everything it creates is owned by that
 * user and it holds no more privilege than the services that read them.
 * Started as any other user, it changes nothing. A mail user with uid 0 or
 * gid 0, or one that does not own queue/, is refused (-EPERM): the mail
 * user can write control/, so trusting it to name root, or any other
 * account, would hand that account to whoever holds the mail user. priv_drop() sets groups,
 * gid and uid and checks that root cannot be regained.
 *
 * priv_start() is the start-up step of the programs that write the root
 * (the queue tools, mta-send, mta-remote, the servers), as args_start()
 * is of their options, and like it exits rather than returns on failure:
 * priv_become_mailuser(), else exit 111 with one line saying why; and
 * exit 111 when the process could still be root afterwards.
 */
#ifndef FACTEUR_PRIV_H
#define FACTEUR_PRIV_H

#include <sys/types.h>

#define MAILUSER_DEFAULT "facteur"

int priv_mailuser(const char *root, uid_t *uid_r, gid_t *gid_r);
int priv_drop(uid_t uid, gid_t gid);
int priv_become_mailuser(const char *root);
void priv_start(const char *root);
const char *priv_error(int r);

#endif
