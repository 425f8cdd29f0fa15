/* bench/queue.c - mproc_queue throughput, one producer process, one consumer process.
 *
 * One repetition of each figure, mproc first, then its raw anchor:
 *   queue.8B     8-byte messages/s     mproc_queue | raw: an SPSC ring of 8-byte slots in
 *                                      shared memory, written here (the physical limit)
 *   queue.1KiB   1 KiB messages/s      mproc_queue (Python anchor only, bench/py_queue.py)
 *   queue.64KiB  64 KiB messages, B/s  mproc_queue | memcpy: 1 MiB blocks streamed through
 *                                      64 MiB buffers in one process | memcpy_hot: 1 MiB
 *                                      blocks between two 1 MiB buffers (cache-resident)
 *
 * The parent produces, a forked child consumes. Every message carries its sequence number
 * in its first 8 bytes (and its low byte again in the last byte); the consumer checks the
 * length, the order and the sum of the sequence numbers. The clock runs from the first put
 * (the consumer is already waiting) to the consumer's last get (CLOCK_MONOTONIC is shared).
 * The queue is created with the default options (1 MiB of storage), as a user would.
 *
 * Usage: queue [--rep]   (BENCH_SCALE=0.1 in the environment shrinks every count)
 */
#include "bench.h"

#include "mproc/error.h"
#include "mproc/queue.h"

struct shared {
    int ready;
    int failed;
    double t_end;
    uint64_t sum;
};

static uint64_t scaled(uint64_t n)
{
    return bench_scaled(n, 16);
}

/* ---- mproc_queue ------------------------------------------------------------------ */

static void consume(mproc_queue *q, struct shared *sh, size_t size, uint64_t n)
{
    unsigned char *buf = malloc(size);
    if (buf == NULL)
        _exit(2);
    bench_set_flag(&sh->ready, 1);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = 0;
        int rc = mproc_queue_get_into(q, buf, size, &len, MPROC_FOREVER);
        uint64_t seq;
        memcpy(&seq, buf, sizeof seq);
        if (rc < 0 || len != size || seq != i || (size > 8 && buf[size - 1] != (unsigned char)i)) {
            fprintf(stderr, "queue consumer: message %llu: rc %d (%s), len %zu, seq %llu\n",
                    (unsigned long long)i, rc, mproc_strerror(rc), len, (unsigned long long)seq);
            sh->failed = 1;
            _exit(1);
        }
        sum += seq;
    }
    sh->t_end = bench_now();
    sh->sum = sum;
    free(buf);
    _exit(0);
}

/* Messages per second through an mproc_queue. */
static double run_mproc(size_t size, uint64_t n)
{
    mproc_queue *q;
    BENCH_OK(mproc_queue_new(&q, NULL));
    struct shared *sh = bench_shared(sizeof *sh);
    pid_t pid = bench_fork();
    if (pid == 0)
        consume(q, sh, size, n);

    unsigned char *msg = malloc(size);
    if (msg == NULL)
        bench_die("malloc");
    memset(msg, 0xa5, size);
    bench_wait_flag(&sh->ready, 1);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        memcpy(msg, &i, sizeof i);
        if (size > 8)
            msg[size - 1] = (unsigned char)i;
        int rc = mproc_queue_put(q, msg, size, MPROC_FOREVER);
        if (rc < 0) {
            kill(pid, SIGKILL);
            bench_die("mproc_queue_put message %llu: %s", (unsigned long long)i,
                      mproc_strerror(rc));
        }
    }
    bench_reap(pid, "queue consumer");
    if (sh->sum != n * (n - 1) / 2)
        bench_die("queue: checksum %llu, want %llu", (unsigned long long)sh->sum,
                  (unsigned long long)(n * (n - 1) / 2));
    double rate = (double)n / (sh->t_end - t0);
    free(msg);
    munmap(sh, sizeof *sh);
    mproc_queue_free(q);
    return rate;
}

/* ---- raw anchor: a single-producer single-consumer ring of 8-byte slots --------------
 * Lamport's ring with cached indices: each side publishes its index after every message
 * (release store) and re-reads the other's only when its cached copy says full/empty.
 * Both sides spin, yielding to the scheduler after a few empty spins (the two may share
 * one CPU on a busy machine). */

#define RING_SLOTS 4096u

struct ring {
    _Alignas(64) uint64_t head; /* next slot to read; written by the consumer */
    _Alignas(64) uint64_t tail; /* next slot to write; written by the producer */
    _Alignas(64) int ready;
    double t_end;
    uint64_t sum;
    _Alignas(64) uint64_t slot[RING_SLOTS];
};

static double run_raw_ring(uint64_t n)
{
    struct ring *r = bench_shared(sizeof *r);
    pid_t pid = bench_fork();
    if (pid == 0) {
        bench_set_flag(&r->ready, 1);
        uint64_t head = 0, tail = 0, sum = 0;
        unsigned spins = 0;
        while (head < n) {
            if (head == tail) {
                tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
                if (head == tail) {
                    if (++spins > 64)
                        sched_yield();
                    continue;
                }
                spins = 0;
            }
            uint64_t v = r->slot[head % RING_SLOTS];
            if (v != head)
                _exit(1);
            sum += v;
            head++;
            __atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
        }
        r->t_end = bench_now();
        r->sum = sum;
        _exit(0);
    }
    bench_wait_flag(&r->ready, 1);
    double t0 = bench_now();
    uint64_t head = 0;
    unsigned spins = 0;
    for (uint64_t tail = 0; tail < n;) {
        if (tail - head == RING_SLOTS) {
            head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
            if (tail - head == RING_SLOTS) {
                if (++spins > 64)
                    sched_yield();
                continue;
            }
            spins = 0;
        }
        r->slot[tail % RING_SLOTS] = tail;
        tail++;
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    }
    bench_reap(pid, "raw ring consumer");
    if (r->sum != n * (n - 1) / 2)
        bench_die("raw ring: checksum %llu", (unsigned long long)r->sum);
    double rate = (double)n / (r->t_end - t0);
    munmap(r, sizeof *r);
    return rate;
}

/* ---- memcpy anchors: bytes/s copying 1 MiB blocks in one process ----------------------
 * memcpy: streaming through 64 MiB buffers (beyond the caches: the memory's rate, the
 * anchor docs/benchmarks.md names); memcpy_hot: between two fixed 1 MiB buffers, which stay in
 * the cache (the queue's 1 MiB ring and the 64 KiB message buffers do too), shown as the
 * harder, informative limit. */

static double run_memcpy(size_t span, uint64_t total_blocks)
{
    const size_t block = 1u << 20;
    unsigned char *src = malloc(span), *dst = malloc(span);
    if (src == NULL || dst == NULL)
        bench_die("malloc");
    for (size_t i = 0; i < span; i++)
        src[i] = (unsigned char)(i * 7u + 1u);
    memcpy(dst, src, span); /* fault every page in and warm up before the clock starts */
    memset(dst, 0, span);
    size_t nblocks = span / block;
    double t0 = bench_now();
    for (uint64_t b = 0; b < total_blocks; b++) {
        size_t off = (size_t)(b % nblocks) * block;
        memcpy(dst + off, src + off, block);
        __asm__ volatile("" : : "r"(dst) : "memory"); /* keep every copy */
    }
    double dt = bench_now() - t0;
    if (total_blocks >= nblocks && memcmp(src, dst, span) != 0)
        bench_die("memcpy: copy differs");
    free(src);
    free(dst);
    return (double)total_blocks * (double)block / dt;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;

    bench_emit("queue.8B", "mproc", run_mproc(8, scaled(2000000)), "msg/s");
    bench_emit("queue.8B", "raw", run_raw_ring(scaled(50000000)), "msg/s");
    bench_emit("queue.1KiB", "mproc", run_mproc(1024, scaled(500000)), "msg/s");
    bench_emit("queue.64KiB", "mproc", run_mproc(65536, scaled(20000)) * 65536.0, "B/s");
    bench_emit("queue.64KiB", "memcpy", run_memcpy(64u << 20, scaled(2048)), "B/s");
    bench_emit("queue.64KiB", "memcpy_hot", run_memcpy(1u << 20, scaled(4096)), "B/s");
    return 0;
}
