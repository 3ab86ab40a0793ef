#include "history.h"
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Entry i of h as the synfin_event that transition would have produced alone. */
static void history_entry(const struct synfin_history *h, unsigned i, struct synfin_event *e)
{
	bool last = i + 1 == h->n;
	uint8_t state = h->newstate[i] & (uint8_t)~SF_HIST_OWNER_CTX;

	*e = h->last;
	e->type = SF_EV_STATE;
	e->ts_ns = h->ts_ns[i];
	e->oldstate = h->oldstate[i];
	e->newstate = state;
	e->pid = 0;
	memset(e->comm, 0, sizeof(e->comm));
	if (h->newstate[i] & SF_HIST_OWNER_CTX) {
		e->pid = h->owner_pid;
		memcpy(e->comm, h->owner_comm, sizeof(e->comm));
	}
	if (last)
		return; /* the kernel filled in the last one's facts itself */
	e->bytes_acked = e->bytes_received = 0;
	e->sk_err = e->close_flags = e->retrans = 0;
	e->local_isn = e->remote_isn = e->srtt_us = 0;
	if (state == SF_TCP_ESTABLISHED && h->hs_seen) {
		e->local_isn = h->local_isn;
		e->remote_isn = h->remote_isn;
		e->srtt_us = h->srtt_us;
		e->retrans = h->hs_retrans;
	}
}

int history_replay(const struct synfin_history *h, history_state_fn fn, struct app *app)
{
	unsigned n = h->n <= SF_HIST_MAX ? h->n : SF_HIST_MAX;

	for (unsigned i = 0; i < n; i++) {
		struct synfin_event e;
		int err;

		history_entry(h, i, &e);
		err = fn(app, &e);
		if (err)
			return err;
	}
	return 0;
}
