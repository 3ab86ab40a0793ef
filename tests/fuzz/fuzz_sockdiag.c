/* sock_diag replies are bytes from the kernel: tw_parse_reply() must survive any. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "timewait.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private, exactly sized copy so ASan sees any read past the reply. */
	uint8_t *copy = malloc(size ? size : 1);
	struct tw_lookup res;

	memcpy(copy, data, size);
	tw_parse_reply(copy, size, &res);
	free(copy);
	return 0;
}
