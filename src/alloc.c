/* src/alloc.c - every heap allocation of the library goes through here, so a
 * test can fail the Nth one (fault point "alloc") and check that the failed
 * call released what it had and left nothing behind. */
#include "internal.h"

void *mproc__malloc(size_t n)
{
    if (MPROC__FAULT("alloc") < 0)
        return NULL;
    return malloc(n != 0 ? n : 1);
}

void *mproc__calloc(size_t n, size_t size)
{
    if (MPROC__FAULT("alloc") < 0)
        return NULL;
    return calloc(n != 0 ? n : 1, size != 0 ? size : 1);
}

void *mproc__realloc(void *p, size_t n)
{
    if (MPROC__FAULT("alloc") < 0)
        return NULL;
    return realloc(p, n != 0 ? n : 1);
}

char *mproc__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mproc__malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void mproc__free(void *p)
{
    free(p);
}
