/* vigil logs NAME [-f]: the job's output; -f follows it until the job ends. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_session.h"
#include "base/state.h"

static const char usage[] =
	"usage: vigil logs NAME [-f]\n"
	"\n"
	"Print the output of a job started with vigil run. -f keeps following it (through\n"
	"rotation) until the run ends, then prints its outcome line and exits with its status\n"
	"(0 succeeded, 1 failed, 3 timed out, 4 unknown).\n";

static int cat_file(const char *path)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		perror(path);
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
	close(fd);
	return 0;
}

int cli_logs(int argc, char **argv)
{
	const char *name = NULL, *dir;
	bool follow = false;
	struct run_record r;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i]))
			return fputs(usage, stdout), 0;
		if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
			follow = true;
		else if (argv[i][0] == '-')
			return fprintf(stderr, "vigil logs: unknown option %s\n", argv[i]), EXIT_USAGE;
		else if (!name)
			name = argv[i];
		else
			return fprintf(stderr, "vigil logs: one job at a time\n"), EXIT_USAGE;
	}
	if (!name)
		return fputs(usage, stderr), EXIT_USAGE;
	dir = cli_state_dir_for(name);
	if (!dir || state_read(dir, name, &r) != 0)
		return fprintf(stderr, "vigil logs: no job named \"%s\"\n", name), EXIT_USAGE;
	if (!r.log[0])
		return fprintf(stderr, "vigil logs: job %s has no log (it was not started by vigil "
			       "run)\n", name), EXIT_USAGE;
	if (!follow)
		return cat_file(r.log);
	/* The log to the run's end, then its outcome line and exit status, as
	 * vigil watch NAME gives them. */
	return session_follow(dir, name, NULL, 0, r.log);
}
