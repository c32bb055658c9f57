#ifndef VOS_RESTORE_MAIN_H
#define VOS_RESTORE_MAIN_H

/* `vos-init restore`: brings an image back to life in a new pod on this terminal. */
int restore_main(int argc, char **argv);

#endif
