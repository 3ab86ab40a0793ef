/* sock_diag replies are bytes from the kernel: both parsers must survive any. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "timewait.h"

static void count_socket(void *ctx, const struct tw_socket *s)
{
	*(unsigned *)ctx += s->sport;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sum = 0;
	/* A private, exactly sized copy so ASan sees any read past the reply. */
	uint8_t *copy = malloc(size ? size : 1);
	struct tw_lookup res;

	memcpy(copy, data, size);
	tw_parse_reply(copy, size, &res);
	tw_parse_dump(copy, size, count_socket, &sum);
	free(copy);
	return 0;
}
