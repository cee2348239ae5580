/*
 * vpop - the vpopmail-named commands, translated into vadmin commands.
 */
#ifndef FACTEUR_VPOP_H
#define FACTEUR_VPOP_H

#include "vadmin.h"

int vpop_is(const char *prog);
int vpop_main(struct vctx *c, const char *prog, int argc, char **argv);
int vadmin_run(struct vctx *c, int argc, char **argv);

#endif
