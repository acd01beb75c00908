/* vigil: the command-line entry point; each subcommand lives in cli_<name>.c. */
#include "cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
