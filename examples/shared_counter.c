/* examples/shared_counter.c - a counter in shared memory, incremented under a Lock.
 *
 * Four processes each add 1 to a shared Value 10,000 times. With the Value's lock
 * the total is exactly 40,000; the same loop on a plain shared int without a lock
 * loses updates (how many depends on the machine), which is why the lock is there.
 *
 *   Python:  counter = Value('i', 0)
 *            with counter.get_lock(): counter.value += 1
 */
#include <mproc.h>

#include <inttypes.h>
#include <stdio.h>

enum { PROCS = 4, ADDS = 10000 };

static mproc_array *counter; /* a Value: an array of one int64 */
static mproc_lock *lock;
static int64_t *unlocked; /* a plain shared int64, no lock */

static int add_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < ADDS; i++) {
        int64_t *v = mproc_array_data(counter);
        if (mproc_lock_acquire(lock, MPROC_FOREVER) < 0)
            return 1;
        *v += 1; /* read-modify-write, safe under the lock */
        mproc_lock_release(lock);
        *unlocked += 1; /* racy on purpose */
    }
    return 0;
}

int main(void)
{
    mproc_array *plain;
    int rc = mproc_array_new(&counter, MPROC_TYPE_I64, 1, 0);
    if (rc == 0)
        rc = mproc_array_new(&plain, MPROC_TYPE_I64, 1, MPROC_ARRAY_NOLOCK);
    if (rc < 0) {
        fprintf(stderr, "shared_counter: %s\n", mproc_strerror(rc));
        return 1;
    }
    lock = mproc_array_lock(counter);
    unlocked = mproc_array_data(plain);

    mproc_process *procs[PROCS] = {0};
    for (int i = 0; rc == 0 && i < PROCS; i++) {
        rc = mproc_process_new(&procs[i], add_many, NULL, NULL);
        if (rc == 0)
            rc = mproc_process_start(procs[i]);
    }
    for (int i = 0; i < PROCS; i++) {
        if (procs[i] != NULL)
            mproc_process_join(procs[i], MPROC_FOREVER);
        mproc_process_free(procs[i]);
    }
    int64_t total = 0;
    if (rc == 0)
        rc = mproc_array_get_i64(counter, 0, &total);
    if (rc == 0)
        printf("with the lock:    %" PRId64 " (expected %d)\n"
               "without the lock: %" PRId64 " (updates may be lost)\n",
               total, PROCS * ADDS, *unlocked);
    mproc_array_free(counter);
    mproc_array_free(plain);
    if (rc < 0) {
        fprintf(stderr, "shared_counter: %s\n", mproc_strerror(rc));
        return 1;
    }
    return total == PROCS * ADDS ? 0 : 1;
}
