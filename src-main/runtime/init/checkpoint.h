#ifndef VOS_CHECKPOINT_H
#define VOS_CHECKPOINT_H

#include <stddef.h>

struct pod;

/*
 * Takes a checkpoint of the pod into out_fd (a stream: written front to back, never sought).
 * The requester (`vos-init checkpoint`, checkpoint-request.c) writes the image's first record,
 * HEADER, and its last ones, SESSION and TRAILER; the request line says where the image stands
 * when the pod begins (records, bytes, chain: see image-io.h) and stop=1 to end the pod after a
 * successful checkpoint. While the pod is frozen a line "frozen" goes to the requester on
 * `conn`, which answers "screen-saved", or "abort <why>" to call the checkpoint off. The reply
 * line is "ok processes=N threads=N frozen_us=N records=N bytes=N chain=N ..." (where the image
 * stands after the pod's records: the requester finishes it from there) or "error {status}"
 * (common/status.h).
 *
 * With hold=1 (a migration) the pod stays frozen after writing: "held <same counts>" goes to
 * the requester, which answers "commit" (the pod ends; the reply says stopped=1) or anything
 * else (it runs again; stopped=0). The pod closes its image stream *out_fd (and sets it to -1)
 * once its records are written.
 */
/*
 * incremental=1 [parent=HEX]: write a CHAIN record, keep write tracking on afterwards, and
 * (when HEX is the CHAIN id of this pod's previous such image) write only the pages written
 * since it, the rest as PARENT runs. A whole image says why first: a line "full <why>". The
 * reply adds image_id=HEX depth=N incremental=0|1.
 */
void checkpoint_run(struct pod *pod, int *out_fd, int conn, const char *request, char *reply, size_t size);

/* Drops the tracking kept for incremental checkpoints; the next one is whole, saying why. */
void incremental_forget(struct pod *pod, const char *why);

#endif
