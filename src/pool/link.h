/* src/pool/link.h - a message link to processes elsewhere that host the pool's workers
 * (the ranks of an MPI job: src/mpi/ implements it), and what travels on it.
 *
 * DESIGN. The pool knows the link through these operations only, registered by the
 * library that implements them (libmproc-mpi, from a constructor: mproc__link_register), so
 * libmproc itself depends on libc alone. One process of the job is the master: it runs
 * the program, and its pools with .start = MPROC_START_MPI put one worker on each host
 * (src/pool/remote.c). Every other process is a host: mproc_init never returns there but
 * serves (src/pool/host.c): for each pool, it forks a real pool worker of its own (so a
 * task that crashes, or one killed for its time limit, never takes the host down) and
 * relays between it and the link: chunks in, result records out.
 *
 * Messages between a pair of processes arrive in the order they were sent. A host that is
 * lost (its process died, its machine went away) is seen by the master through `watch`, a
 * descriptor that turns readable then; the link's sends and receives never wait on a lost
 * peer past that.
 */
#ifndef MPROC_POOL_LINK_H
#define MPROC_POOL_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "launch.h"
#include "fnref.h"

enum { LINK_NONE = 0, LINK_MASTER = 1, LINK_HOST = 2 };

/* A message's tag: control (struct link_msg), or a chunk exactly as a worker's channel
 * carries it (master to host). */
enum { LINK_CTL = 1, LINK_CHUNK = 2 };

struct mproc__link_ops {
    const char *name; /* "MPI" */
    /* mproc_init: join the job, if this process is in one: LINK_NONE, LINK_MASTER,
   LINK_HOST (then it serves), or < 0 when the job could not be joined. */
    int (*join)(int *argc, char ***argv);
    /* Master: how many hosts a pool of `want` workers gets (0: as many as there are;
       -1: how many there are now, starting none); may start them (MPI_Comm_spawn). < 0
       with why in msg (n bytes; msg may be NULL). */
    int (*hosts)(int want, char *msg, size_t n);
    /* Send len bytes with tag to host h (on a host: to the master; h is ignored). 0, or
   < 0 when it could not be sent (the peer is lost: -EPIPE). Never waits for the peer
   (the message is copied when it cannot go at once); buf may be reused at once. */
    int (*send)(int h, int tag, const void *buf, size_t len);
    /* A message that has come: 1 with its sender, tag and length (then recv takes it), 0
       when none, < 0 on failure. Never waits. */
    int (*probe)(int *h, int *tag, size_t *len);
    int (*recv)(int h, int tag, void *buf, size_t len);
    /* A descriptor that turns readable (or hangs up) when host h (on a host: the master)
   is lost, or when it sent after a quiet spell (a wake-up: a receiver sleeps in poll()
   on it); -1 if none. drain: what made it readable: 0 wake-ups (taken), < 0 lost. */
    int (*watch)(int h);
    int (*drain)(int h);
    /* Sends not out yet: MPI moves them only inside MPI calls, so the relays keep making
       them (probe) instead of sleeping. */
    bool (*sending)(void);
    /* Host h for a message: "rank 2 (pid 123 on node1)". */
    void (*name_host)(int h, char *buf, size_t n);
    /* At the end of the program (master) or of serving (host): leave the job. damaged: a
       host was lost (the job cannot end cleanly: MPI aborts it, with `status`). */
    void (*leave)(int status, bool damaged);
};

/* Register the link (libmproc-mpi's constructor). The one symbol of libmproc's own that
 * another library of the project calls. */
__attribute__((visibility("default"))) void mproc__link_register(const struct mproc__link_ops *l);
const struct mproc__link_ops *mproc__link(void); /* the registered one, or NULL */

/* Control messages: a struct link_msg, then what its kind carries. */
enum {
    L_OPEN = 1, /* master: a pool opens; then struct link_open and the initializer's argument */
    L_OPENED,   /* host: code (0, or why it cannot serve it: text follows) */
    L_START,    /* master: fork the worker of incarnation `inc` */
    L_STARTED,  /* host: code, pid (text follows a failure) */
    L_KILL,     /* master: kill incarnation inc */
    L_WIND,     /* master: no more chunks for incarnation inc: it exits once it ran them */
    L_UP,       /* host: the worker's counters, then its result records (each a uint32_t
                   length, then the record, padded to 8) */
    L_DIED,     /* host: incarnation inc ended with exit status `code` (its records are
                   all sent before) */
    L_CLOSE,    /* master: the pool is gone */
    L_CLOSED,   /* host */
    L_EXIT      /* master: the program ends; the host leaves the job */
};

struct link_msg {
    uint32_t kind;
    uint32_t inc;     /* the worker's incarnation (START, STARTED, KILL, UP, DIED) */
    int32_t code;     /* OPENED, STARTED: 0 or a failure; DIED: the exit status */
    int32_t pid;      /* STARTED: the worker's pid */
    uint64_t started; /* UP: the slot's counters as the worker wrote them */
    uint64_t ended;
    int64_t age_ns; /* UP: how long ago the last task began (clocks differ by host) */
    uint32_t retiring;
    uint32_t pad;
};

struct link_open {
    uint64_t msg_max, channel_size, ring_cap;
    uint32_t maxtasks, timing;
    uint32_t slot; /* this host's worker slot in the pool (for its messages) */
    uint32_t build_len, init_len;
    uint32_t pad;
    unsigned char build[MPROC__BUILD_MAX];
    unsigned char init[MPROC__FNREF_MAX]; /* the initializer's reference (init_len 0: none) */
    uint64_t initarg_len;                 /* its argument's bytes follow */
};

/* Master: at the program's exit the hosts leave, then this process (src/pool/remote.c):
 * registered (once) by mproc_init when it joined a job as the master, or when a pool
 * started its hosts. 0 or -ENOMEM. */
int mproc__remote_at_exit(void);

/* Host: serve the master until it says the program ends (src/pool/host.c). Returns the
 * exit status. */
int mproc__host_serve(const struct mproc__link_ops *l);

#endif
