/*
 * Before the freeze: what a restore of the pod will not carry, said while every process still
 * runs (a connection to another machine, a Unix socket to a server outside the pod). Read only:
 * each process's /proc/PID/fd links, the socket tables of /proc/self/net (pod init shares the
 * pod's network namespace) and the kernel's Unix socket peers; nothing is stopped, duplicated
 * or connected to. The dump's own warnings (listen.c, warn_lost_sockets), made while frozen,
 * stay the exact ones: a connection opened or closed in between makes them differ.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "../init/control.h"
#include "dump.h"
#include "objects.h"

struct pod_socket {
	uint64_t ino;
	pid_t pid; /* the first process found holding it */
	int said;
};

struct pod_sockets {
	struct pod_socket *s;
	int n;
};

static struct pod_socket *find_socket(struct pod_sockets *ps, uint64_t ino)
{
	for (int i = 0; i < ps->n; i++)
		if (ps->s[i].ino == ino)
			return &ps->s[i];
	return NULL;
}

/* Every socket an fd of the pod's processes is open on, once. */
static void collect_sockets(struct pod_sockets *ps, const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		char dir[64];
		snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pids[i]);
		DIR *d = opendir(dir);
		if (!d)
			continue; /* it ended meanwhile */
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char path[384], link[128];
			snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
			ssize_t l = readlink(path, link, sizeof link - 1);
			if (l < 0)
				continue;
			link[l] = 0;
			unsigned long long ino;
			if (sscanf(link, "socket:[%llu]", &ino) != 1 || find_socket(ps, ino))
				continue;
			ps->s = xrealloc(ps->s, (size_t)(ps->n + 1) * sizeof *ps->s);
			ps->s[ps->n++] = (struct pod_socket){(uint64_t)ino, pids[i], 0};
		}
		closedir(d);
	}
}

/* "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6), as /proc/net/tcp prints them. */
static void address_words(const char *hex, int v6, char *out, size_t size)
{
	char text[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	const char *colon = strchr(hex, ':');
	if (colon)
		port = (unsigned)strtoul(colon + 1, NULL, 16);
	if (!v6) {
		struct in_addr a;
		a.s_addr = (uint32_t)strtoul(hex, NULL, 16); /* the kernel prints the raw word */
		inet_ntop(AF_INET, &a, text, sizeof text);
		snprintf(out, size, "%s:%u", text, port);
		return;
	}
	struct in6_addr a;
	for (int w = 0; w < 4 && strlen(hex) >= 32; w++) {
		char word[9];
		memcpy(word, hex + 8 * w, 8);
		word[8] = 0;
		uint32_t v = (uint32_t)strtoul(word, NULL, 16);
		memcpy(&a.s6_addr[4 * w], &v, 4);
	}
	inet_ntop(AF_INET6, &a, text, sizeof text);
	snprintf(out, size, "[%s]:%u", text, port);
}

static void say(int conn, const struct pod_socket *s, const char *what)
{
	char who[128], line[1200];
	describe_pid(s->pid, who, sizeof who);
	snprintf(line, sizeof line, "prewarn %s: %.900s will be restored disconnected", who, what);
	control_send(conn, line, -1);
}

/* One line of a /proc/self/net table that is a socket of the pod. */
struct inet_entry {
	char local[80], remote[80];
	/* local and remote as the IPv4 table writes them when they are IPv4-mapped (see comparable) */
	char local_key[80], remote_key[80];
	unsigned state;
	int v6;
	struct pod_socket *s;
};

/* An address of a table line as the IPv4 table writes it when it is an IPv4-mapped IPv6 one
 * (::ffff:127.0.0.1 is 127.0.0.1): the two ends of one connection can be in different tables,
 * a Java or Python server listening on "::" and a client connecting to 127.0.0.1. The third
 * 32-bit word is printed as the machine holds it: FFFF0000 little-endian, 0000FFFF big. */
static void comparable(const char *hex, char *out, size_t size)
{
	if (strlen(hex) > 32 && strncmp(hex, "0000000000000000", 16) == 0 &&
	    (strncmp(hex + 16, "FFFF0000", 8) == 0 || strncmp(hex + 16, "0000FFFF", 8) == 0))
		snprintf(out, size, "%s", hex + 24);
	else
		snprintf(out, size, "%s", hex);
}

/* Adds the pod's sockets of one /proc/self/net table (each socket once, whichever table has it). */
static void read_table(struct pod_sockets *ps, const char *table, int v6, struct inet_entry **all, int *n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/net/%s", table);
	char *text = read_text_file(path, NULL);
	if (!text)
		return; /* no such protocol here */
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct inet_entry e;
		unsigned long long ino;
		if (sscanf(line, " %*s %79s %79s %x %*s %*s %*s %*s %*s %llu", e.local, e.remote, &e.state, &ino) != 4)
			continue; /* the heading */
		e.s = find_socket(ps, ino);
		if (!e.s || e.s->said)
			continue;
		e.s->said = 1;
		e.v6 = v6;
		comparable(e.local, e.local_key, sizeof e.local_key);
		comparable(e.remote, e.remote_key, sizeof e.remote_key);
		*all = xrealloc(*all, (size_t)(*n + 1) * sizeof **all);
		(*all)[(*n)++] = e;
	}
	free(text);
}

/* Whether e's other end is also in the pod (its remote is another pod socket's local and the
 * other way round): a TCP connection restore carries (dump/tcp-pair.c matches them so too). */
static int other_end_in_pod(const struct inet_entry *all, int n, const struct inet_entry *e)
{
	for (int i = 0; i < n; i++)
		if (&all[i] != e && strcmp(all[i].local_key, e->remote_key) == 0 && strcmp(all[i].remote_key, e->local_key) == 0)
			return 1;
	return 0;
}

/* A TCP state in which the connection has a peer (what the dump relays: getpeername works):
 * ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT. */
static int relayable_state(unsigned state)
{
	return state == 0x01 || state == 0x04 || state == 0x05 || state == 0x08;
}

/* The pod's TCP (or UDP) sockets, from the IPv4 and the IPv6 table together: connections to
 * outside the pod and connected datagram sockets are not carried; listeners and TCP
 * connections whose two ends are in the pod are. */
static int scan_inet(struct pod_sockets *ps, int tcp, int relay, int conn)
{
	struct inet_entry *all = NULL;
	int n = 0;
	read_table(ps, tcp ? "tcp" : "udp", 0, &all, &n);
	read_table(ps, tcp ? "tcp6" : "udp6", 1, &all, &n);
	int said = 0;
	for (int i = 0; i < n; i++) {
		const struct inet_entry *e = &all[i];
		if (tcp && (e->state == 0x0A || other_end_in_pod(all, n, e)))
			continue; /* a listener, restored on its address; a pair inside the pod */
		if (tcp && relay && relayable_state(e->state))
			continue; /* a move keeps it open at the source (VOS_OBJ_RELAYED) */
		char what[200], at[120];
		address_words(e->remote, e->v6, at, sizeof at);
		const char *port = strrchr(e->remote, ':');
		int connected = port && strtoul(port + 1, NULL, 16) != 0;
		if (tcp)
			snprintf(what, sizeof what, "a TCP connection to %s", at);
		else if (connected)
			snprintf(what, sizeof what, "a UDP socket to %s", at);
		else
			snprintf(what, sizeof what, "a UDP socket");
		say(conn, e->s, what);
		said++;
	}
	free(all);
	return said;
}

/* The pod's Unix sockets connected to a socket outside the pod (a local server's). A listener,
 * a pair inside the pod and a client still in the queue of the pod's own listener are carried. */
static int scan_unix(struct pod_sockets *ps, int relay, int conn)
{
	char *text = read_text_file("/proc/self/net/unix", NULL);
	if (!text)
		return 0;
	struct peer_map peers = {NULL, 0};
	struct err e;
	if (load_unix_peers(&peers, &e) < 0) {
		free(text);
		return 0;
	}
	int said = 0;
	for (int i = 0; i < ps->n; i++) {
		struct pod_socket *s = &ps->s[i];
		uint64_t peer = peer_of(&peers, s->ino);
		int known = 0;
		unsigned type = 0;
		char peer_path[600] = "";
		/* Is it a Unix socket at all, and where is its peer bound? */
		char *line = text;
		while (line && *line) {
			char *next = strchr(line, '\n');
			unsigned long long ino;
			unsigned line_type = 0;
			int at = 0;
			if (sscanf(line, "%*s %*s %*s %*s %x %*s %llu%n", &line_type, &ino, &at) == 2) {
				if (ino == s->ino) {
					known = 1;
					type = line_type;
				}
				if (peer && ino == peer) {
					const char *p = line + at;
					while (*p == ' ')
						p++;
					size_t len = next ? (size_t)(next - p) : strlen(p);
					snprintf(peer_path, sizeof peer_path, "%.*s", (int)(len < 590 ? len : 590), p);
				}
			}
			line = next ? next + 1 : NULL;
		}
		if (!known || s->said)
			continue;
		s->said = 1;
		if (peer == 0 || find_socket(ps, peer))
			continue;
		if (relay && type == SOCK_STREAM)
			continue; /* a move keeps it open at the source (VOS_OBJ_RELAYED) */
		char what[700];
		if (peer_path[0])
			snprintf(what, sizeof what, "a Unix socket to %s", peer_path);
		else
			snprintf(what, sizeof what, "a Unix socket");
		say(conn, s, what);
		said++;
	}
	free(peers.pairs);
	free(text);
	return said;
}

int prescan_lost(int conn, int relay)
{
	pid_t *pids;
	int n;
	struct err e;
	if (list_pod_pids(&pids, &n, &e) < 0)
		return 0; /* the dump's own warnings still come */
	struct pod_sockets ps = {NULL, 0};
	collect_sockets(&ps, pids, n);
	free(pids);
	int said = 0;
	if (ps.n > 0) {
		said += scan_inet(&ps, 1, relay, conn) + scan_inet(&ps, 0, 0, conn);
		said += scan_unix(&ps, relay, conn);
	}
	free(ps.s);
	return said;
}
