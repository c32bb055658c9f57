/*
 * The anchor of a moved session's connections to outside its pod (anchor.c): the source of a
 * move keeps the real sockets, and their bytes go to and come from the agent.
 */
#ifndef VOS_ANCHOR_H
#define VOS_ANCHOR_H

#include <stdint.h>

/* The sockets a held pod handed over: object id (as in the image) and our fd of it. */
struct anchored_set {
	struct anchored_socket {
		uint32_t id;
		int fd;
	} *v;
	int n;
};

void anchored_set_add(struct anchored_set *s, uint32_t id, int fd);
/* Closes the fds (plainly: the program may still hold the same sockets) and frees. */
void anchored_set_free(struct anchored_set *s);

/*
 * Relays the sockets' bytes with the agent over `agent_fd` until every connection has ended
 * or the agent's end closes (then those still open are reset, as a network failure would).
 * Frees `s`. The frames, both ways, big-endian: u8 type, u32 connection (object id), u32
 * length, payload:
 *   1 DATA   bytes (at most ANCHOR_MAX_DATA)
 *   2 EOF    no more bytes this way (from here: the other end closed its side; from the agent:
 *            shut down writing once what it sent is written)
 *   3 RESET  from here: the connection failed (payload: why, in words); from the agent: reset it
 *   4 CLOSED from here: the connection has ended both ways and is closed (no payload)
 */
#define ANCHOR_DATA 1
#define ANCHOR_EOF 2
#define ANCHOR_RESET 3
#define ANCHOR_CLOSED 4
#define ANCHOR_MAX_DATA (64 * 1024)
void anchor_run(int agent_fd, struct anchored_set *s);

#endif
