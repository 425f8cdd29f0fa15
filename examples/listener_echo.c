/* examples/listener_echo.c - a server and a client that meet at an address.
 *
 * The server listens at a Unix socket with a key; a client process (it could be any
 * program that knows the address and the key) connects, sends a few messages and an
 * empty one to say it is done; the server answers each and prints what it got. A
 * client with a wrong key is refused before it can send anything.
 *
 *   Python:  with Listener(address, authkey=b'secret password') as listener:
 *                with listener.accept() as conn: ...
 *            with Client(address, authkey=b'secret password') as conn: conn.send(...)
 */
#include <mproc.h>
#include <mproc/listener.h>

#include <stdio.h>
#include <string.h>

static char address[200];

static int client(void *arg)
{
    const char *key = arg;
    mproc_net_opts opts = {.authkey = key, .authkey_len = strlen(key)};
    mproc_conn *c;
    int rc = mproc_client_new(&c, address, &opts, 10.0);
    if (rc < 0) {
        printf("client with key \"%s\": %s\n", key, mproc_strerror(rc));
        return rc == -MPROC_EAUTH ? 0 : 1;
    }
    const char *words[] = {"hello", "world", ""}; /* the empty message: done */
    for (int i = 0; i < 3; i++) {
        char reply[64];
        size_t len;
        if (mproc_conn_send(c, words[i], strlen(words[i]), 10.0) < 0 ||
            mproc_conn_recv_into(c, reply, sizeof reply - 1, &len, 10.0) < 0)
            return 1;
        reply[len] = '\0';
        printf("client got \"%s\"\n", reply);
    }
    mproc_conn_free(c);
    return 0;
}

static mproc_process *start_client(const char *key)
{
    mproc_process *p;
    if (mproc_process_new(&p, client, (void *)key, NULL) < 0)
        return NULL;
    if (mproc_process_start(p) < 0) {
        mproc_process_free(p);
        return NULL;
    }
    return p;
}

static int end_client(mproc_process *p)
{
    int code = -1;
    if (mproc_process_join(p, 30.0) == 0)
        mproc_process_exitcode(p, &code);
    mproc_process_free(p);
    return code;
}

int main(void)
{
    const char *key = "secret password";
    mproc_net_opts opts = {.authkey = key, .authkey_len = strlen(key)};
    mproc_listener *l;
    int rc = mproc_listener_new(&l, "unix:", &opts); /* "unix:": the kernel picks a name */
    if (rc < 0) {
        fprintf(stderr, "listener: %s\n", mproc_strerror(rc));
        return 1;
    }
    snprintf(address, sizeof address, "%s", mproc_listener_address(l));
    printf("listening at %s\n", address);
    fflush(stdout);

    /* a stranger first: accept refuses it and waits on (here, a tenth of a second at a
   time, until it has) */
    mproc_process *p = start_client("wrong password");
    mproc_conn *c;
    for (int i = 0; p != NULL && i < 100 && mproc_listener_refused(l) == 0; i++)
        (void)mproc_listener_accept(l, &c, 0.1);
    if (p == NULL || end_client(p) != 0)
        return 1;

    if ((p = start_client(key)) == NULL)
        return 1;
    rc = mproc_listener_accept(l, &c, 10.0);
    if (rc < 0) {
        fprintf(stderr, "accept: %s\n", mproc_strerror(rc));
        return 1;
    }
    for (;;) {
        char msg[64], reply[80];
        size_t len;
        if (mproc_conn_recv_into(c, msg, sizeof msg - 1, &len, 10.0) < 0)
            return 1;
        msg[len] = '\0';
        int n = snprintf(reply, sizeof reply, len > 0 ? "echo: %s" : "bye", msg);
        if (mproc_conn_send(c, reply, (size_t)n, 10.0) < 0)
            return 1;
        if (len == 0)
            break;
        printf("server got \"%s\"\n", msg);
        fflush(stdout);
    }
    mproc_conn_free(c);
    int code = end_client(p);
    printf("refused: %lu stranger(s); the client exited with %d\n", mproc_listener_refused(l),
           code);
    mproc_listener_free(l);
    return code == 0 ? 0 : 1;
}
