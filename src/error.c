/* src/error.c - messages and names for every error code. */
#include "internal.h"

#include <stdio.h>

static const struct {
    const char *name;
    const char *message;
} own[] = {
    [MPROC_ECLOSED - MPROC_EBASE] = {"MPROC_ECLOSED", "object is closed"},
    [MPROC_EEOF - MPROC_EBASE] = {"MPROC_EEOF", "peer closed its end (end of file)"},
    [MPROC_EBROKEN - MPROC_EBASE] = {"MPROC_EBROKEN", "broken: a party died, timed out or aborted"},
    [MPROC_ETOOSMALL -
        MPROC_EBASE] = {"MPROC_ETOOSMALL",
                        "buffer too small for the message; it is kept for the next call"},
    [MPROC_ECORRUPT - MPROC_EBASE] = {"MPROC_ECORRUPT",
                                      "shared state was left half-written by a process that died"},
    [MPROC_ESTATE -
        MPROC_EBASE] = {"MPROC_ESTATE", "operation not valid in the object's current state"},
    [MPROC_ENOTSUP - MPROC_EBASE] = {"MPROC_ENOTSUP", "not supported by this build or kernel"},
    [MPROC_EEXEC - MPROC_EBASE] = {"MPROC_EEXEC", "child could not execute the program"},
    [MPROC_EFAULT - MPROC_EBASE] = {"MPROC_EFAULT", "fault injected at a named fault point"},
    [MPROC_EDIED - MPROC_EBASE] = {"MPROC_EDIED", "the worker running the task died"},
    [MPROC_ETIMELIMIT - MPROC_EBASE] = {"MPROC_ETIMELIMIT", "the task ran past its time limit"},
    [MPROC_ECANCELLED - MPROC_EBASE] = {"MPROC_ECANCELLED", "the task was cancelled before it ran"},
    [MPROC_EAUTH -
        MPROC_EBASE] = {"MPROC_EAUTH", "authentication failed: the peer does not share the key"},
    [MPROC_ENOINIT - MPROC_EBASE] = {"MPROC_ENOINIT",
                                     "a worker started by spawn or the fork server did not reach "
                                     "mproc_init(&argc, &argv): call it at the top of main()"},

};

static int magnitude(int code)
{
    return code == INT32_MIN ? INT32_MAX : (code < 0 ? -code : code);
}

const char *mproc_strerror(int code)
{
    static _Thread_local char buf[128];
    int c = magnitude(code);
    if (c == 0)
        return "success";
    if (c > MPROC_EBASE && c < MPROC_ELAST)
        return own[c - MPROC_EBASE].message;
    if (c < 4096) {
        const char *s = strerrordesc_np(c);
        if (s != NULL)
            return s;
    }
    snprintf(buf, sizeof buf, "unknown error %d", code);
    return buf;
}

const char *mproc_errname(int code)
{
    int c = magnitude(code);
    if (c == 0)
        return "OK";
    if (c > MPROC_EBASE && c < MPROC_ELAST)
        return own[c - MPROC_EBASE].name;
    if (c < 4096) {
        const char *s = strerrorname_np(c);
        if (s != NULL)
            return s;
    }
    return "UNKNOWN";
}
