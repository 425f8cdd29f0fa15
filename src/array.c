/* src/array.c - typed shared values and arrays (Python's multiprocessing.Value/Array).
 *
 * DESIGN: one anonymous MAP_SHARED mapping holds everything: a header (magic, type,
 * length, flags, total size, and an mproc_lock unless MPROC_ARRAY_NOLOCK) followed by
 * the elements, 16-byte aligned. The handle *is* the mapping, so a forked child uses
 * the same pointer and mproc_array_free is one munmap; there is no heap part to leak
 * or to copy. Nobody sleeps here except on the robust lock (see src/lock.c): a process
 * blocked in get/set/add is woken by the holder's release, or by the kernel when the
 * holder dies.
 *
 * A holder that dies: the next get/set/add gets MPROC_OWNER_DIED with the lock. The
 * helpers here touch one element with one aligned load or store, so the dead holder
 * either wrote its element or did not; the data is never half-written by these calls.
 * They therefore mark the lock consistent and go on. A caller that holds the lock
 * (mproc_array_lock) around a multi-element update must make its own repair when *it*
 * sees MPROC_OWNER_DIED; if it releases without mproc_lock_consistent, the lock is
 * unrecoverable and every helper returns -ENOTRECOVERABLE from then on.
 *
 * The lock is recursive (Python gives Value and Array an RLock), so a caller may hold it
 * around several helper calls to make a compound update atomic.
 *
 * Without a lock (NOLOCK), each get and set is still a single relaxed atomic access,
 * so no reader sees a torn element, but add is a read-modify-write and can lose
 * updates between processes, as in Python with lock=False.
 */
#include "internal.h"

#include <math.h>

#define ARRAY_MAGIC 0x4d415252u /* "MARR" */

struct mproc_array {
    uint32_t magic;
    uint32_t type;
    uint64_t len;
    uint64_t map_size;
    uint32_t flags;
    uint32_t pad_;
    mproc_lock lock;
    /* elements follow at ELEMS_OFFSET */
};

#define ELEMS_OFFSET ((sizeof(struct mproc_array) + 15u) & ~(size_t)15u)

size_t mproc_type_size(mproc_type type)
{
    switch (type) {
    case MPROC_TYPE_I8:
    case MPROC_TYPE_U8:
        return 1;
    case MPROC_TYPE_I16:
    case MPROC_TYPE_U16:
        return 2;
    case MPROC_TYPE_I32:
    case MPROC_TYPE_U32:
    case MPROC_TYPE_F32:
        return 4;
    case MPROC_TYPE_I64:
    case MPROC_TYPE_U64:
    case MPROC_TYPE_F64:
        return 8;
    }
    return 0;
}

int mproc_array_new(mproc_array **out, mproc_type type, size_t len, unsigned flags)
{
    if (out == NULL || len == 0 || (flags & ~(unsigned)MPROC_ARRAY_NOLOCK) != 0)
        return -EINVAL;
    size_t esize = mproc_type_size(type);
    if (esize == 0 || len > ((size_t)PTRDIFF_MAX - ELEMS_OFFSET) / esize)
        return -EINVAL;
    size_t total = ELEMS_OFFSET + len * esize;
    int rc = mproc__sys_mem_fits(total); /* its zeroed pages are taken as they are touched */
    if (rc < 0)
        return rc;
    void *mem;
    rc = mproc__sys_map_shared(-1, total, &mem);
    if (rc < 0)
        return rc == -ENODEV ? -ENOMEM : rc;
    mproc_array *a = mem; /* fresh anonymous memory is zero-filled */
    if ((flags & MPROC_ARRAY_NOLOCK) == 0) {
        rc = mproc_lock_init(&a->lock, MPROC_LOCK_RECURSIVE); /* Python: an RLock */
        if (rc < 0) {
            mproc__sys_unmap(mem, total);
            return rc;
        }
    }
    a->type = (uint32_t)type;
    a->len = len;
    a->map_size = total;
    a->flags = flags;
    a->magic = ARRAY_MAGIC;
    *out = a;
    return 0;
}

static bool valid(const mproc_array *a)
{
    return a != NULL && a->magic == ARRAY_MAGIC;
}

void *mproc_array_data(const mproc_array *a)
{
    return valid(a) ? (char *)(uintptr_t)a + ELEMS_OFFSET : NULL;
}

size_t mproc_array_len(const mproc_array *a)
{
    return valid(a) ? (size_t)a->len : 0;
}

mproc_type mproc_array_type(const mproc_array *a)
{
    return valid(a) ? (mproc_type)a->type : (mproc_type)0;
}

mproc_lock *mproc_array_lock(const mproc_array *a)
{
    if (!valid(a) || (a->flags & MPROC_ARRAY_NOLOCK) != 0)
        return NULL;
    return (mproc_lock *)(uintptr_t)&a->lock;
}

void mproc_array_free(mproc_array *a)
{
    if (!valid(a))
        return;
    mproc__sys_unmap(a, (size_t)a->map_size);
}

/* ---- element access -------------------------------------------------------- */

/* An element, widened: integers as int64 or uint64 bits, floats as double. */
typedef struct {
    bool is_float;
    int64_t i;
    double f;
} value;

static value load(const mproc_array *a, size_t i)
{
    char *p = (char *)mproc_array_data(a);
    value v = {0};
    switch ((mproc_type)a->type) {
    case MPROC_TYPE_I8:
        v.i = __atomic_load_n((int8_t *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_U8:
        v.i = __atomic_load_n((uint8_t *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_I16:
        v.i = __atomic_load_n((int16_t *)(void *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_U16:
        v.i = __atomic_load_n((uint16_t *)(void *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_I32:
        v.i = __atomic_load_n((int32_t *)(void *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_U32:
        v.i = __atomic_load_n((uint32_t *)(void *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_I64:
        v.i = __atomic_load_n((int64_t *)(void *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_U64: /* values above INT64_MAX read back as their bits (wrap) */
        v.i = (int64_t)__atomic_load_n((uint64_t *)(void *)p + i, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_F32: {
        uint32_t bits = __atomic_load_n((uint32_t *)(void *)p + i, __ATOMIC_RELAXED);
        float f;
        memcpy(&f, &bits, sizeof f);
        v.is_float = true;
        v.f = f;
        break;
    }
    case MPROC_TYPE_F64: {
        uint64_t bits = __atomic_load_n((uint64_t *)(void *)p + i, __ATOMIC_RELAXED);
        memcpy(&v.f, &bits, sizeof v.f);
        v.is_float = true;
        break;
    }
    }
    return v;
}

/* Store an integer (truncated modulo the element width, as ctypes does) or a double. */
static void store(mproc_array *a, size_t i, value v)
{
    char *p = (char *)mproc_array_data(a);
    uint64_t u = (uint64_t)v.i;
    switch ((mproc_type)a->type) {
    case MPROC_TYPE_I8:
    case MPROC_TYPE_U8:
        __atomic_store_n((uint8_t *)p + i, (uint8_t)u, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_I16:
    case MPROC_TYPE_U16:
        __atomic_store_n((uint16_t *)(void *)p + i, (uint16_t)u, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_I32:
    case MPROC_TYPE_U32:
        __atomic_store_n((uint32_t *)(void *)p + i, (uint32_t)u, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_I64:
    case MPROC_TYPE_U64:
        __atomic_store_n((uint64_t *)(void *)p + i, u, __ATOMIC_RELAXED);
        break;
    case MPROC_TYPE_F32: {
        float f = (float)v.f;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        __atomic_store_n((uint32_t *)(void *)p + i, bits, __ATOMIC_RELAXED);
        break;
    }
    case MPROC_TYPE_F64: {
        uint64_t bits;
        memcpy(&bits, &v.f, sizeof bits);
        __atomic_store_n((uint64_t *)(void *)p + i, bits, __ATOMIC_RELAXED);
        break;
    }
    }
}

static bool is_float_type(const mproc_array *a)
{
    return a->type == MPROC_TYPE_F32 || a->type == MPROC_TYPE_F64;
}

/* A double that converts to int64 without undefined behaviour: finite, in range. */
static bool fits_i64(double d)
{
    return isfinite(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
}

static int lock(mproc_array *a)
{
    mproc_lock *l = mproc_array_lock(a);
    if (l == NULL)
        return 0;
    int rc = mproc__lock_acquire_until(l, MPROC__NO_DEADLINE);
    if (rc == MPROC_OWNER_DIED) {
        /* One element is one aligned store: the dead holder's write either happened or
         * did not, so the data is consistent for these helpers (see DESIGN). */
        rc = mproc_lock_consistent(l);
        if (rc < 0)
            (void)mproc_lock_release(l);
    }
    return rc;
}

static void unlock(mproc_array *a)
{
    mproc_lock *l = mproc_array_lock(a);
    if (l != NULL)
        (void)mproc_lock_release(l);
}

/* The operations, run under the lock: get, set, add. */
enum op { OP_GET, OP_SET, OP_ADD };

static int access_elem(mproc_array *a, size_t i, enum op op, value in, value *out)
{
    if (!valid(a) || i >= a->len)
        return -EINVAL;
    /* Conversions that would be undefined are refused before taking the lock. */
    if (op != OP_GET && in.is_float && !is_float_type(a) && !fits_i64(in.f))
        return -ERANGE;
    int rc = lock(a);
    if (rc < 0)
        return rc;
    value v = load(a, i);
    if (op == OP_SET || op == OP_ADD) {
        value nv = {.is_float = is_float_type(a)};
        if (nv.is_float) {
            double d = in.is_float ? in.f : (double)in.i;
            nv.f = op == OP_ADD ? v.f + d : d;
        } else {
            int64_t d = in.is_float ? (int64_t)in.f : in.i;
            /* Wrap like the element type does, without signed-overflow UB. */
            nv.i = op == OP_ADD ? (int64_t)((uint64_t)v.i + (uint64_t)d) : d;
        }
        store(a, i, nv);
        v = load(a, i); /* the stored value, as its type holds it */
    }
    unlock(a);
    if (out != NULL)
        *out = v;
    return 0;
}

int mproc_array_get_f64(mproc_array *a, size_t i, double *out)
{
    if (out == NULL)
        return -EINVAL;
    value v;
    int rc = access_elem(a, i, OP_GET, (value){0}, &v);
    if (rc < 0)
        return rc;
    *out = v.is_float ? v.f : a->type == MPROC_TYPE_U64 ? (double)(uint64_t)v.i : (double)v.i;
    return 0;
}

int mproc_array_set_f64(mproc_array *a, size_t i, double v)
{
    return access_elem(a, i, OP_SET, (value){.is_float = true, .f = v}, NULL);
}

int mproc_array_get_i64(mproc_array *a, size_t i, int64_t *out)
{
    if (out == NULL)
        return -EINVAL;
    value v;
    int rc = access_elem(a, i, OP_GET, (value){0}, &v);
    if (rc < 0)
        return rc;
    if (v.is_float) {
        if (!fits_i64(v.f))
            return -ERANGE;
        *out = (int64_t)v.f;
    } else {
        *out = v.i;
    }
    return 0;
}

int mproc_array_set_i64(mproc_array *a, size_t i, int64_t v)
{
    return access_elem(a, i, OP_SET, (value){.i = v}, NULL);
}

int mproc_array_add_i64(mproc_array *a, size_t i, int64_t delta, int64_t *out)
{
    value v;
    int rc = access_elem(a, i, OP_ADD, (value){.i = delta}, &v);
    if (rc < 0)
        return rc;
    if (out != NULL) {
        if (v.is_float) {
            if (!fits_i64(v.f))
                return -ERANGE; /* the add happened; only the report does not fit */
            *out = (int64_t)v.f;
        } else {
            *out = v.i;
        }
    }
    return 0;
}
