/* examples/queue_squares.c - a queue feeding worker processes, with sentinels.
 *
 * 100 numbers go through a task queue to 3 worker processes; each worker squares
 * what it gets and puts the result on a result queue, until it reads the sentinel
 * (an empty message, one per worker). The parent prints the squares in order.
 *
 *   Python:  for i in range(100): tasks.put(i)
 *            for _ in workers: tasks.put(None)     # sentinels
 */
#include <mproc.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 100, WORKERS = 3 };

struct queues {
    mproc_queue *tasks;
    mproc_queue *results;
};

static int worker(void *arg)
{
    struct queues *q = arg;
    for (;;) {
        int64_t x;
        size_t len;
        int rc = mproc_queue_get_into(q->tasks, &x, sizeof x, &len, MPROC_FOREVER);
        if (rc < 0)
            return 1;
        if (len == 0) /* the sentinel: no more work */
            return 0;
        int64_t pair[2] = {x, x * x};
        if (mproc_queue_put(q->results, pair, sizeof pair, MPROC_FOREVER) < 0)
            return 1;
    }
}

int main(void)
{
    struct queues q;
    mproc_process *workers[WORKERS] = {0};
    int64_t squares[N];
    int rc = mproc_queue_new(&q.tasks, NULL);
    if (rc == 0)
        rc = mproc_queue_new(&q.results, NULL);
    for (int i = 0; rc == 0 && i < WORKERS; i++) {
        rc = mproc_process_new(&workers[i], worker, &q, NULL);
        if (rc == 0)
            rc = mproc_process_start(workers[i]);
    }
    for (int64_t i = 0; rc == 0 && i < N; i++)
        rc = mproc_queue_put(q.tasks, &i, sizeof i, MPROC_FOREVER);
    for (int i = 0; rc == 0 && i < WORKERS; i++)
        rc = mproc_queue_put(q.tasks, NULL, 0, MPROC_FOREVER); /* sentinels */
    for (int i = 0; rc == 0 && i < N; i++) {
        int64_t pair[2];
        size_t len;
        rc = mproc_queue_get_into(q.results, pair, sizeof pair, &len, 10.0);
        if (rc == 0)
            squares[pair[0]] = pair[1];
    }
    int failed = 0;
    for (int i = 0; i < WORKERS; i++) {
        int code = 0;
        if (workers[i] != NULL && mproc_process_join(workers[i], 10.0) == 0 &&
            mproc_process_exitcode(workers[i], &code) == 1 && code != 0)
            failed++;
        mproc_process_free(workers[i]);
    }
    if (rc == 0) {
        for (int i = 0; i < N; i++)
            printf("%" PRId64 "%c", squares[i], i % 10 == 9 ? '\n' : ' ');
    }
    mproc_queue_free(q.tasks);
    mproc_queue_free(q.results);
    if (rc < 0 || failed) {
        fprintf(stderr, "queue_squares: %s\n", rc < 0 ? mproc_strerror(rc) : "a worker failed");
        return 1;
    }
    return 0;
}
