/* A TCP proxy that plays an operator's tunnel: every chunk is held DELAY seconds in each
 * direction (25 ms each way by default: a 50 ms round trip), in order, without limiting
 * throughput. One thread, epoll; cheap enough that several can run beside a benchmark on
 * two cores. Loopback only.
 *   cc -O2 -o delayproxy scripts/delayproxy.c && ./delayproxy LISTEN_PORT TARGET_PORT [DELAY_SECONDS]
 * Prints "ready" once listening. Part of the bench tooling (scripts/bench.sh). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct chunk { struct chunk *next; double due; size_t len, off; char data[]; } chunk;
typedef struct side { int fd; struct side *peer; chunk *head, *tail; int eof; } side;

static double delay = 0.025;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nonblock(fd);
    return fd;
}

static void close_pair(int ep, side *s) {
    side *p = s->peer;
    for (side *x = s; x; x = (x == s ? p : NULL)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
        close(x->fd);
        while (x->head) { chunk *c = x->head; x->head = c->next; free(c); }
    }
    free(s); free(p);
}

/* Writes what is due to `s->peer`; returns -1 when the pair must go. */
static int flush_due(side *s, double t) {
    side *to = s->peer;
    while (s->head && s->head->due <= t) {
        chunk *c = s->head;
        ssize_t n = send(to->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->off += n;
        if (c->off < c->len) return 0;
        s->head = c->next;
        if (!s->head) s->tail = NULL;
        free(c);
    }
    if (!s->head && s->eof) shutdown(to->fd, SHUT_WR);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: delayproxy LISTEN_PORT TARGET_PORT [DELAY_SECONDS]\n"); return 2; }
    int lport = atoi(argv[1]), tport = atoi(argv[2]);
    if (argc > 3) delay = atof(argv[3]);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(lport) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 128) != 0) { perror("listen"); return 1; }
    nonblock(l);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    printf("ready\n"); fflush(stdout);
    side *all[4096]; int nall = 0;
    static char buf[1 << 18];
    for (;;) {
        /* Wake at the earliest due chunk. */
        double t = now(), next = t + 1;
        for (int i = 0; i < nall; i++) if (all[i] && all[i]->head && all[i]->head->due < next) next = all[i]->head->due;
        /* A chunk due but not yet accepted by its receiver: look again in a millisecond. */
        int timeout = next <= t ? 1 : (int)((next - t) * 1000 + 0.999);
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, timeout < 0 ? 0 : timeout);
        t = now();
        for (int i = 0; i < n; i++) {
            side *s = evs[i].data.ptr;
            if (!s) {
                int c = accept(l, NULL, NULL);
                if (c < 0) continue;
                int u = connect_to(tport);
                if (u < 0) { close(c); continue; }
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                nonblock(c);
                side *a1 = calloc(1, sizeof *a1), *b1 = calloc(1, sizeof *b1);
                a1->fd = c; b1->fd = u; a1->peer = b1; b1->peer = a1;
                struct epoll_event e1 = { .events = EPOLLIN, .data.ptr = a1 }, e2 = { .events = EPOLLIN, .data.ptr = b1 };
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &e1);
                epoll_ctl(ep, EPOLL_CTL_ADD, u, &e2);
                /* Two free entries for the two directions (never over a live one). */
                side *pair[2] = { a1, b1 };
                for (int j = 0; j < 2; j++) {
                    int k = 0;
                    while (k < nall && all[k]) k++;
                    if (k == nall) { if (nall == 4096) break; nall++; }
                    all[k] = pair[j];
                }
                continue;
            }
            ssize_t r = recv(s->fd, buf, sizeof buf, 0);
            if (r > 0) {
                chunk *ch = malloc(sizeof *ch + r);
                ch->next = NULL; ch->due = t + delay; ch->len = r; ch->off = 0;
                memcpy(ch->data, buf, r);
                if (s->tail) s->tail->next = ch; else s->head = ch;
                s->tail = ch;
            } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                s->eof = 1;
                epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                if (s->peer->eof && !s->head && !s->peer->head) {
                    for (int k = 0; k < nall; k++) if (all[k] == s || all[k] == s->peer) all[k] = NULL;
                    close_pair(ep, s);
                }
            }
        }
        for (int i = 0; i < nall; i++) {
            side *s = all[i];
            if (!s) continue;
            if (flush_due(s, t) < 0 || (s->eof && s->peer->eof && !s->head && !s->peer->head)) {
                side *p = s->peer;
                for (int k = 0; k < nall; k++) if (all[k] == s || all[k] == p) all[k] = NULL;
                close_pair(ep, s);
            }
        }
    }
}
