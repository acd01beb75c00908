/*
 * The watched process of bench_exit_latency.py: blocks until the harness writes one
 * byte to GO_FD, writes CLOCK_MONOTONIC (ns, decimal) to TS_FD, then _exit(CODE).
 * A tiny C process, so the time between the stamp and the kernel's exit notification
 * is the kernel's, not an interpreter's teardown.
 *
 * usage: bench_exit_target GO_FD TS_FD CODE
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec ts;
	char buf[32];
	char go;
	int go_fd, ts_fd, code, n;

	if (argc != 4) {
		fprintf(stderr, "usage: bench_exit_target GO_FD TS_FD CODE\n");
		return 2;
	}
	go_fd = atoi(argv[1]);
	ts_fd = atoi(argv[2]);
	code = atoi(argv[3]);
	if (read(go_fd, &go, 1) != 1)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "%lld",
		     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if (write(ts_fd, buf, (size_t)n) != n)
		return 2;
	_exit(code);
}
