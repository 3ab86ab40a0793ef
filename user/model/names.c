#include "names.h"
#include <string.h>
#include <sys/socket.h>
#include "synfin.h"
#include "tracker.h"

/* Padded to 16 bytes so writers can copy a name with one fixed-size move. */
struct state_text {
	char name[16];
	uint8_t len;
};

#define STATE(s) { s, sizeof(s) - 1 }
static const struct state_text state_texts[SF_TCP_MAX_STATES] = {
	[0] = STATE("UNKNOWN"),
	[SF_TCP_ESTABLISHED] = STATE("ESTABLISHED"), [SF_TCP_SYN_SENT] = STATE("SYN_SENT"),
	[SF_TCP_SYN_RECV] = STATE("SYN_RECV"),	     [SF_TCP_FIN_WAIT1] = STATE("FIN_WAIT1"),
	[SF_TCP_FIN_WAIT2] = STATE("FIN_WAIT2"),     [SF_TCP_TIME_WAIT] = STATE("TIME_WAIT"),
	[SF_TCP_CLOSE] = STATE("CLOSE"),	     [SF_TCP_CLOSE_WAIT] = STATE("CLOSE_WAIT"),
	[SF_TCP_LAST_ACK] = STATE("LAST_ACK"),	     [SF_TCP_LISTEN] = STATE("LISTEN"),
	[SF_TCP_CLOSING] = STATE("CLOSING"),	     [SF_TCP_NEW_SYN_RECV] = STATE("NEW_SYN_RECV"),
};

const char *state_name16(uint8_t state, size_t *len)
{
	const struct state_text *t = &state_texts[state < SF_TCP_MAX_STATES ? state : 0];

	*len = t->len;
	return t->name;
}

const char *state_name(uint8_t state)
{
	size_t len;

	return state_name16(state, &len);
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

static const char *const outcome_labels[OUTCOME_COUNT] = {
	[OUTCOME_UNKNOWN] = "unknown", [OUTCOME_CLOSED] = "closed",   [OUTCOME_RESET] = "reset",
	[OUTCOME_REFUSED] = "refused", [OUTCOME_TIMEOUT] = "timeout", [OUTCOME_ABORTED] = "aborted",
};

static const char *const closer_labels[CLOSER_COUNT] = {
	[CLOSER_NONE] = "none", [CLOSER_LOCAL] = "local", [CLOSER_REMOTE] = "remote",
	[CLOSER_BOTH] = "both",
};

const char *outcome_label(int outcome)
{
	return outcome >= 0 && outcome < OUTCOME_COUNT ? outcome_labels[outcome] : "unknown";
}

const char *closer_label(int closer)
{
	return closer >= 0 && closer < CLOSER_COUNT ? closer_labels[closer] : "none";
}

/* The kernel's enums are small (under 128 values today); a larger value is not named. */
#define REASONS_MAX 256

static char rst_reasons[REASONS_MAX][REASON_NAME_MAX];
static char drop_reasons[REASONS_MAX][REASON_NAME_MAX];

static void reason_set(char (*table)[REASON_NAME_MAX], uint32_t value, const char *name)
{
	if (value < REASONS_MAX)
		strncpy(table[value], name, REASON_NAME_MAX - 1);
}

static const char *reason_name(char (*table)[REASON_NAME_MAX], uint32_t value)
{
	return value < REASONS_MAX && table[value][0] ? table[value] : NULL;
}

void rst_reason_set(uint32_t value, const char *name)
{
	reason_set(rst_reasons, value, name);
}

const char *rst_reason_name(uint32_t value)
{
	return reason_name(rst_reasons, value);
}

void drop_reason_set(uint32_t value, const char *name)
{
	reason_set(drop_reasons, value, name);
}

const char *drop_reason_name(uint32_t value)
{
	return reason_name(drop_reasons, value);
}
