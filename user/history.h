/* Lifecycle-only tracing: one kernel record holds a socket's transitions. */
#ifndef SYNFIN_HISTORY_H
#define SYNFIN_HISTORY_H
#include "synfin.h"

struct app;
typedef int (*history_state_fn)(struct app *app, const struct synfin_event *e);

/*
 * Turns a history record back into the state events it stands for, in order,
 * and hands each to fn; the result is what the per-event path would have
 * received. Stops at (and returns) fn's first non-zero result.
 */
int history_replay(const struct synfin_history *h, history_state_fn fn, struct app *app);

#endif
