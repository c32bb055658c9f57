/*
 * The requester's side of a checkpoint (`vos-init checkpoint`): the one writer of an image's
 * frame. It writes HEADER into the image stream (fd 3), passes the stream to the pod, which
 * writes its records, and closes the image with SESSION (the agent's, given on stdin) and
 * TRAILER. The record count, byte count and CRC chain the trailer needs pass between the pod
 * and this process only; the agent sees none of them.
 */
#ifndef VOS_CHECKPOINT_REQUEST_H
#define VOS_CHECKPOINT_REQUEST_H

struct checkpoint_request {
	const char *control; /* the pod's control socket */
	const char *producer; /* HEADER's producer ("vOS 1.2.3" from the agent) */
	int stop, hold, precopy;
	int relay; /* (hold) keep the pod's connections to outside it open here: anchor.c, fd 4 */
	int files_there; /* (hold) the mapped files listed in CONTROL.there stay out of the image */
	int incremental;         /* ask for an incremental image (see init/checkpoint.h) */
	const char *parent;      /* its parent's CHAIN id (32 hex digits), or NULL */
	int session; /* the agent gives SESSION's content on stdin once the pod is frozen */
};

/* Runs the checkpoint, printing the pod's progress and the outcome on stdout (see main.c).
 * Returns the exit status. */
int checkpoint_request(const struct checkpoint_request *o);

#endif
