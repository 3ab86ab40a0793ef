#include "sink.h"

void sinks_add(struct sinks *all, struct sink *s)
{
	if (all->n < SINKS_MAX) {
		all->s[all->n++] = s;
		all->wants_status |= s->ops->wants_status;
	}
}

/* Calls the callback `op` of every sink that has one. */
#define EACH(all, op, ...)                                                     \
	do {                                                                   \
		for (int i_ = 0; i_ < (all)->n; i_++)                          \
			if ((all)->s[i_]->ops->op)                             \
				(all)->s[i_]->ops->op((all)->s[i_], ##__VA_ARGS__); \
	} while (0)

/* -p: a record of a socket held by another process, or by none, is left out. */
static bool held_elsewhere(const struct sinks *all, uint32_t pid)
{
	return all->pid && pid != all->pid;
}

void sinks_start(struct sinks *all)
{
	EACH(all, start);
}

void sinks_state(struct sinks *all, const struct synfin_event *e, const struct transition *tr)
{
	if (!held_elsewhere(all, tr->pid))
		EACH(all, state, e, tr);
}

void sinks_conn(struct sinks *all, const struct lifecycle *l)
{
	if (!held_elsewhere(all, l->c->pid))
		EACH(all, conn, l);
}

void sinks_packet(struct sinks *all, const struct synfin_segment *seg, const char *ifname)
{
	EACH(all, packet, seg, ifname);
}

void sinks_lost(struct sinks *all, uint64_t ts_ns, const struct loss *l)
{
	EACH(all, lost, ts_ns, l);
}

void sinks_stuck(struct sinks *all, const struct conn *c, uint64_t now_ns)
{
	if (!held_elsewhere(all, c->pid))
		EACH(all, stuck, c, now_ns);
}

void sinks_tw_end(struct sinks *all, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	if (!held_elsewhere(all, e->pid))
		EACH(all, tw_end, e, how, now_ns);
}

void sinks_reset(struct sinks *all, const struct synfin_event *e)
{
	if (!all->pid) /* a socket-less RST: held by nobody */
		EACH(all, reset, e);
}

void sinks_drop(struct sinks *all, const struct synfin_event *e)
{
	if (!all->pid) /* a segment's record: no holder named */
		EACH(all, drop, e);
}

void sinks_tick(struct sinks *all, uint64_t now_ns, const struct sink_status *st)
{
	EACH(all, tick, now_ns, st);
}

void sinks_report(struct sinks *all, uint64_t now_ns, bool final)
{
	EACH(all, report, now_ns, final);
}
