/* Names of kernel TCP states and address families, as the kernel spells them. */
#ifndef SYNFIN_NAMES_H
#define SYNFIN_NAMES_H
#include <stddef.h>
#include <stdint.h>

/* "SYN_SENT", ...; "UNKNOWN" for values outside the kernel's enum. */
const char *state_name(uint8_t state);
/* The same name in a 16-byte buffer (for ob_write16), and its length. */
const char *state_name16(uint8_t state, size_t *len);
/* "ipv4" / "ipv6" / "unknown" */
const char *family_name(uint8_t family);
/* Every value of enum conn_outcome / conn_closer (tracker.h) by name, the "not
 * known" one included ("unknown", "none"): for labels that must sum up. */
const char *outcome_label(int outcome);
const char *closer_label(int closer);

/* The kernel's reset reasons (enum sk_rst_reason, from its BTF at start-up), lower
 * case without the SK_RST_REASON_ prefix: "no_socket", "tcp_timewait_socket". */
#define REASON_NAME_MAX 40
void rst_reason_set(uint32_t value, const char *name);
/* NULL when the kernel named no such value (or has no reasons). */
const char *rst_reason_name(uint32_t value);
/* The same for drop reasons (enum skb_drop_reason, without SKB_DROP_REASON_):
 * "netfilter_drop", "tcp_listen_overflow". */
void drop_reason_set(uint32_t value, const char *name);
const char *drop_reason_name(uint32_t value);

#endif
