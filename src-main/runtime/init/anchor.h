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
 * Flow control, per connection (no payload), so that one connection that is not read never
 * holds up the others of the same move:
 *   5 FULL   from here: the socket holds ANCHOR_CONN_FULL bytes the agent sent and it has not
 *            taken; the agent sends it no more until ROOM (what was under way is still taken)
 *   6 ROOM   from here: it has taken all but ANCHOR_CONN_ROOM of them
 *   7 PAUSE  from the agent: do not read the socket (its bytes cannot go on for now)
 *   8 RESUME from the agent: read it again
 */
#define ANCHOR_DATA 1
#define ANCHOR_EOF 2
#define ANCHOR_RESET 3
#define ANCHOR_CLOSED 4
#define ANCHOR_FULL 5
#define ANCHOR_ROOM 6
#define ANCHOR_PAUSE 7
#define ANCHOR_RESUME 8
#define ANCHOR_CONN_FULL (512 * 1024)
#define ANCHOR_CONN_ROOM (128 * 1024)
#define ANCHOR_MAX_DATA (64 * 1024)
void anchor_run(int agent_fd, struct anchored_set *s);

#endif
