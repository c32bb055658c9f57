/* The terminal host (`vos-init host`): keeps a session's pty so that its program outlives the agent. */
#ifndef VOS_HOST_H
#define VOS_HOST_H

struct host_options {
	const char *socket_path;
	int cols, rows;
	char **argv;
};

/* `vos-init host ARGS`: starts the detached host; prints "ok HOSTPID CHILDPID" or "error WHY".
 * Returns the exit status for main. */
int host_main(int argc, char **argv);

#endif
