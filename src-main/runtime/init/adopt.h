/* `vos-init adopt`: a program running on another terminal taken over onto a session's (adopt.c). */
#ifndef VOS_ADOPT_H
#define VOS_ADOPT_H

int adopt_main(int argc, char **argv);
/* `vos-init adopt-grant`: root's part of `sudo vos adopt` (a ptrace exception in each process). */
int adopt_grant_main(int argc, char **argv);

#endif
