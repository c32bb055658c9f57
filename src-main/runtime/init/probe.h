/* `vos-init probe`: what this machine lets a pod do (probe.c). */
#ifndef VOS_PROBE_H
#define VOS_PROBE_H

int probe_main(int argc, char **argv);

#endif
