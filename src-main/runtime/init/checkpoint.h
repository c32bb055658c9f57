#ifndef VOS_CHECKPOINT_H
#define VOS_CHECKPOINT_H

#include <stddef.h>

struct pod;

/*
 * Takes a checkpoint of the pod into out_fd (a stream: written front to back, never sought).
 * The request line carries what was written before us (records, bytes, chain: see image-io.h)
 * and stop=1 to end the pod after a successful checkpoint. While the pod is frozen a line
 * "frozen" goes to the requester on `conn`. The reply line is "ok processes=N threads=N
 * frozen_us=N records=N bytes=N chain=N ..." (the counts to continue the image with: the
 * requester writes the rest and the trailer) or "error {status}" (common/status.h).
 *
 * With hold=1 (a migration) the pod stays frozen after writing: "held <same counts>" goes to
 * the requester, which answers "commit" (the pod ends; the reply says stopped=1) or anything
 * else (it runs again; stopped=0). The image stream *out_fd is closed (and set to -1) once
 * complete.
 */
void checkpoint_run(struct pod *pod, int *out_fd, int conn, const char *request, char *reply, size_t size);

#endif
