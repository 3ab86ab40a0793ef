/* Command lines: NUL-separated fuzz bytes become argv for options_parse(). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "options.h"

#define MAX_ARGS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2];
	struct options opts;
	int argc = 1;

	memcpy(buf, data, size);
	buf[size] = 0;
	argv[0] = (char *)"synfin";
	for (char *p = buf; p <= buf + size && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	/* argp keeps no state between calls; stdout/stderr noise is fine. */
	options_parse(argc, argv, &opts);
	free(buf);
	return 0;
}
