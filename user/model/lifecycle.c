#include "lifecycle.h"
#include "names.h"
#include <stddef.h>

const char *time_wait_name(const struct conn *c)
{
	if (c->flags & CONN_TW_SKIPPED)
		return "skipped";
	if (c->close_flags & SF_CLOSE_TIME_WAIT)
		return "entered";
	if (c->close_flags & SF_CLOSE_TW_FIN_WAIT2)
		return "fin_wait2";
	return NULL;
}

/* Retransmissions during the handshake: SYNs on the client, SYN-ACKs on the server. */
static void handshake_retrans(struct lifecycle *l, const struct conn *c)
{
	bool known = !c->partial && (c->flags & (CONN_HANDSHAKE_SEEN | CONN_CLOSED));

	l->syn_retrans = known && c->role == ROLE_CLIENT ? c->hs_retrans : -1;
	l->synack_retrans = known && c->role == ROLE_SERVER ? c->hs_retrans : -1;
}

/*
 * Who reset it, why and when: a reset outcome; one that ended otherwise
 * (a keepalive or retransmission timeout) with an RST this host sent as it
 * gave up; a refusal whose RST this host sent too (both ends here: an ICMP
 * unreachable refuses as well, so an unseen RST is not assumed). The reason
 * is known when this host sent it (either end here).
 */
static void reset_facts(struct lifecycle *l, const struct conn *c)
{
	bool reset = l->outcome == OUTCOME_RESET;
	bool sent_as_it_ended = !reset && (c->flags & CONN_RESET_SENT) && c->rst_reason;
	bool refused_by_rst = l->outcome == OUTCOME_REFUSED && c->rst_reason;
	bool known = (reset || sent_as_it_ended || refused_by_rst) && c->rst_reason;

	l->reset_by = reset ? (conn_reset_by_remote(c) ? "remote" : "local") :
		      sent_as_it_ended ? "local" : refused_by_rst ? "remote" : NULL;
	l->reset_reason = known ? rst_reason_name(c->rst_reason - 1u) : NULL;
	l->reset_at_us = !l->reset_by ? -1 :
			 (int64_t)(((known && c->rst_ns ? c->rst_ns : c->state_ns) - c->first_ns) / 1000);
}

void lifecycle_of(struct lifecycle *l, const struct conn *c, const struct flow *f, bool ends_flow)
{
	bool hs = c->flags & CONN_HANDSHAKE_SEEN;

	l->c = c;
	l->outcome = conn_outcome(c);
	l->closer = conn_closer(c);
	l->time_wait = time_wait_name(c);
	reset_facts(l, c);
	l->handshake_us = conn_handshake_us(c);
	l->duration_us = conn_duration_us(c);
	l->accept_wait_us = conn_accept_wait_us(c);
	handshake_retrans(l, c);
	l->local_isn = hs ? (int64_t)c->local_isn : -1;
	l->remote_isn = hs ? (int64_t)c->remote_isn : -1;
	l->tx_bytes = conn_tx_bytes(c);
	l->rx_bytes = conn_rx_bytes(c);
	l->ndrops = 0;
	l->drops_known = false;
	l->full_listener = NULL;
	l->full_listener_syns = 0;
	l->flow = f;
	l->ends_flow = ends_flow;
	l->side = f ? flow_side_of(f, c) : -1;
	if (f)
		flow_wire_facts(f, &l->wire);
}
