/*
 * floor: attaches bench/floor.bpf.c's empty program and holds it until
 * SIGINT or SIGTERM (make bench's "floor" row). Usage: floor OBJECT.
 * Prints synfin's ready line, so the bench starts the storm once attached.
 */
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t done;

static void on_signal(int sig)
{
	(void)sig;
	done = 1;
}

/* Signals stay blocked outside sigsuspend(), so one cannot slip in between
 * the check of done and the wait and leave the wait hanging. */
static void wait_for_stop(void)
{
	sigset_t stop, old;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, &old);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "Tracing TCP connections... Hit Ctrl-C to end.\n");
	while (!done)
		sigsuspend(&old);
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *link;

	if (argc != 2) {
		fprintf(stderr, "usage: floor OBJECT\n");
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "floor: cannot load %s\n", argv[1]);
		return 1;
	}
	prog = bpf_object__next_program(obj, NULL);
	link = prog ? bpf_program__attach(prog) : NULL;
	if (!link) {
		fprintf(stderr, "floor: cannot attach %s\n", argv[1]);
		bpf_object__close(obj);
		return 1;
	}
	wait_for_stop();
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
