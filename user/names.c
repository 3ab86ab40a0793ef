#include "names.h"
#include <sys/socket.h>
#include "synfin.h"

static const char *const state_names[SF_TCP_MAX_STATES] = {
	[SF_TCP_ESTABLISHED] = "ESTABLISHED", [SF_TCP_SYN_SENT] = "SYN_SENT",
	[SF_TCP_SYN_RECV] = "SYN_RECV",	      [SF_TCP_FIN_WAIT1] = "FIN_WAIT1",
	[SF_TCP_FIN_WAIT2] = "FIN_WAIT2",     [SF_TCP_TIME_WAIT] = "TIME_WAIT",
	[SF_TCP_CLOSE] = "CLOSE",	      [SF_TCP_CLOSE_WAIT] = "CLOSE_WAIT",
	[SF_TCP_LAST_ACK] = "LAST_ACK",	      [SF_TCP_LISTEN] = "LISTEN",
	[SF_TCP_CLOSING] = "CLOSING",	      [SF_TCP_NEW_SYN_RECV] = "NEW_SYN_RECV",
};

const char *state_name(uint8_t state)
{
	if (state < SF_TCP_MAX_STATES && state_names[state])
		return state_names[state];
	return "UNKNOWN";
}

const char *family_name(uint8_t family)
{
	switch (family) {
	case AF_INET:
		return "ipv4";
	case AF_INET6:
		return "ipv6";
	default:
		return "unknown";
	}
}
