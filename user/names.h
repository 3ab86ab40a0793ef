/* Names of kernel TCP states and address families, as the kernel spells them. */
#ifndef SYNFIN_NAMES_H
#define SYNFIN_NAMES_H
#include <stdint.h>

/* "SYN_SENT", ...; "UNKNOWN" for values outside the kernel's enum. */
const char *state_name(uint8_t state);
/* "ipv4" / "ipv6" / "unknown" */
const char *family_name(uint8_t family);

#endif
