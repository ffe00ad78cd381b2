/* New TCP connections per second, for bench/bench.py (built with gcc by the bench).
 *
 *   connrate serve PORT              accept every connection (IPv4 and IPv6), send one byte,
 *                                    wait for the client's close; SERVERS threads
 *   connrate connect HOST PORT SECONDS THREADS
 *                                    THREADS loops of connect, read the byte, close by RST;
 *                                    prints "CONNECTIONS ERRORS" after SECONDS
 *
 * No socket is left in TIME_WAIT, on either side: the client closes first and by RST
 * (SO_LINGER with a zero timeout), the server only after it (its close is passive). So
 * conntrack keeps each entry 10 s (CLOSE) rather than 120 s (TIME_WAIT), and no new SYN meets
 * an old socket. A side that closed first by FIN would leave a TIME_WAIT socket per connection,
 * keyed by the one client address and a client port reused within seconds: a new SYN that
 * meets one (or a conntrack entry of another path with other TCP timestamps) is dropped and
 * sent again a second later, and the measure swings by a factor of ten between rounds of one
 * path. Spreading the client over many source addresses would only make those collisions
 * rarer while the TIME_WAIT sockets and entries still piled up (30,000 a second for 120 s is
 * more than the conntrack table holds); the reset removes them. The server speaks first (the
 * byte) rather than resetting at once: a proxy takes a reset before any data for a failed
 * connection and retries it. A connection counts once its byte arrived: the whole handshake
 * went through the path and back, and data too. A proxy on the path keeps its own TIME_WAIT
 * sockets, if it closes first: that is its own cost.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SERVERS 32   /* each serves one connection at a time: more than the clients' threads */

static struct addrinfo *target;
static struct timespec deadline;
static atomic_ulong connections, errors;
static int listener;

static int before_deadline(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < deadline.tv_sec ||
	       (now.tv_sec == deadline.tv_sec && now.tv_nsec < deadline.tv_nsec);
}

static const struct linger reset = {.l_onoff = 1, .l_linger = 0};   /* close() sends RST */

static void *connect_loop(void *unused)
{
	struct timeval timeout = {.tv_sec = 5};
	char byte;
	(void)unused;
	while (before_deadline()) {
		int fd = socket(target->ai_family, SOCK_STREAM, 0);
		if (fd < 0) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
		int ok = connect(fd, target->ai_addr, target->ai_addrlen) == 0 && read(fd, &byte, 1) == 1;
		atomic_fetch_add(ok ? &connections : &errors, 1);
		close(fd);
	}
	return NULL;
}

static void *accept_loop(void *unused)
{
	char buf[64];
	(void)unused;
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
		if (write(fd, "x", 1) == 1)
			while (read(fd, buf, sizeof buf) > 0)   /* until the client's close */
				;
		close(fd);
	}
	return NULL;
}

static int serve(const char *port)
{
	struct sockaddr_in6 addr = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any,
				    .sin6_port = htons((unsigned short)atoi(port))};
	int on = 1, off = 0;
	pthread_t others[SERVERS - 1];
	listener = socket(AF_INET6, SOCK_STREAM, 0);
	if (listener < 0 ||
	    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) ||
	    setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) ||
	    bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096)) {
		perror("connrate serve");
		return 1;
	}
	for (int i = 0; i < SERVERS - 1; i++)
		pthread_create(&others[i], NULL, accept_loop, NULL);
	accept_loop(NULL);
	return 0;
}

static int run(const char *host, const char *port, int seconds, int threads)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	pthread_t *ids = calloc((size_t)threads, sizeof *ids);
	int rc = getaddrinfo(host, port, &hints, &target);
	if (rc != 0 || !ids) {
		fprintf(stderr, "connrate: %s\n", rc ? gai_strerror(rc) : "out of memory");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
	for (int i = 0; i < threads; i++)
		pthread_create(&ids[i], NULL, connect_loop, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(ids[i], NULL);
	printf("%lu %lu\n", atomic_load(&connections), atomic_load(&errors));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2]);
	if (argc == 6 && strcmp(argv[1], "connect") == 0)
		return run(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: connrate serve PORT | connrate connect HOST PORT SECONDS THREADS\n");
	return 2;
}
