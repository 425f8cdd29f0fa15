/* src/net/auth.c - the handshake: both ends prove they hold the same key.
 *
 * DESIGN. The listener speaks first, always, so that a client learns at once what it
 * is talking to:
 *   listener -> client   "#MPROC1#OPEN#"                   (no key: nothing to prove)
 *   listener -> client   "#MPROC1#CHALLENGE#" + 32 random bytes N1
 *   client -> listener   HMAC-SHA256(key, "mproc-client" + N1)
 *   listener -> client   "#WELCOME#" or "#FAILURE#" (and it hangs up)
 *   client -> listener   "#CHALLENGE#" + 32 random bytes N2
 *   listener -> client   HMAC-SHA256(key, "mproc-listener" + N2)
 *   client -> listener   "#WELCOME#" or "#FAILURE#"
 * Each is one message of the connection's framing. The challenges are fresh random bytes
 * (OpenSSL's RAND_bytes), so an answer seen once is worth nothing later; the role is
 * inside what is signed, so an answer the listener gives cannot be passed back to it as
 * a client's (reflection); the listener asks first, so a stranger learns nothing signed
 * before it has proven itself. Digests are compared in constant time (CRYPTO_memcmp).
 * The shape is Python's multiprocessing.connection handshake; the bytes are our own.
 *
 * Strangers: every message of the handshake is received into a buffer of MAX_MSG bytes
 * on the stack (mproc_conn_recv_into: a longer length is refused before anything is
 * read or allocated), and the whole handshake runs against one deadline.
 */
#include "net/net.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

#define HELLO_OPEN "#MPROC1#OPEN#"
#define HELLO_KEY "#MPROC1#CHALLENGE#"
#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"
#define ROLE_CLIENT "mproc-client"
#define ROLE_LISTENER "mproc-listener"

enum {
    NONCE = 32,   /* bytes of a challenge */
    DIGEST = 32,  /* bytes of an HMAC-SHA256 */
    MAX_MSG = 64, /* the longest handshake message */
};

int64_t mproc__net_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double mproc__net_left(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return MPROC_FOREVER;
    int64_t left = deadline - mproc__net_now_ns();
    return left > 0 ? (double)left / 1e9 : 0.0;
}

static int send_msg(mproc_conn *c, const void *buf, size_t len, int64_t deadline)
{
    return mproc_conn_send(c, buf, len, mproc__net_left(deadline));
}

/* One handshake message of at most MAX_MSG bytes into buf; a longer one is not ours. */
static int recv_msg(mproc_conn *c, unsigned char buf[MAX_MSG], size_t *len, int64_t deadline)
{
    int rc = mproc_conn_recv_into(c, buf, MAX_MSG, len, mproc__net_left(deadline));
    return rc == -MPROC_ETOOSMALL || rc == -EMSGSIZE ? -EPROTO : rc;
}

static bool is(const unsigned char *buf, size_t len, const char *text)
{
    return len == strlen(text) && memcmp(buf, text, len) == 0;
}

/* HMAC-SHA256(key, role + nonce) into out. 0, or -ENOMEM when OpenSSL fails. */
static int sign(const struct mproc__net_key *key, const char *role, const unsigned char *nonce,
                unsigned char out[DIGEST])
{
    unsigned char msg[sizeof ROLE_LISTENER + NONCE];
    size_t rlen = strlen(role);
    memcpy(msg, role, rlen);
    memcpy(msg + rlen, nonce, NONCE);
    unsigned int olen = 0;
    if (HMAC(EVP_sha256(), key->bytes, (int)key->len, msg, rlen + NONCE, out, &olen) == NULL ||
        olen != DIGEST)
        return -ENOMEM;
    return 0;
}

static int fresh_nonce(unsigned char nonce[NONCE])
{
    return RAND_bytes(nonce, NONCE) == 1 ? 0 : -ENOMEM;
}

/* Ask the peer to sign a fresh challenge (prefix + nonce) as role; say whether it did.
 * 0 (it did: "#WELCOME#" sent), -MPROC_EAUTH ("#FAILURE#" sent), or an error. */
static int challenge(mproc_conn *c, const struct mproc__net_key *key, const char *prefix,
                     const char *role, int64_t deadline)
{
    unsigned char msg[MAX_MSG], want[DIGEST];
    size_t plen = strlen(prefix), len;
    memcpy(msg, prefix, plen);
    int rc = fresh_nonce(msg + plen);
    if (rc == 0)
        rc = sign(key, role, msg + plen, want);
    if (rc == 0)
        rc = send_msg(c, msg, plen + NONCE, deadline);
    if (rc == 0)
        rc = recv_msg(c, msg, &len, deadline);
    if (rc < 0)
        return rc;
    bool good = len == DIGEST && CRYPTO_memcmp(msg, want, DIGEST) == 0;
    rc = send_msg(c, good ? WELCOME : FAILURE, strlen(good ? WELCOME : FAILURE), deadline);
    if (!good)
        return -MPROC_EAUTH;
    return rc;
}

/* Sign the challenge in msg (prefix + nonce) as role and send the answer; then hear the
 * verdict. 0, -MPROC_EAUTH, -EPROTO or an error. */
static int answer(mproc_conn *c, const struct mproc__net_key *key, const unsigned char *nonce,
                  const char *role, int64_t deadline)
{
    unsigned char digest[DIGEST], msg[MAX_MSG];
    size_t len;
    int rc = sign(key, role, nonce, digest);
    if (rc == 0)
        rc = send_msg(c, digest, DIGEST, deadline);
    if (rc == 0)
        rc = recv_msg(c, msg, &len, deadline);
    if (rc < 0)
        return rc;
    if (is(msg, len, WELCOME))
        return 0;
    return is(msg, len, FAILURE) ? -MPROC_EAUTH : -EPROTO;
}

int mproc__net_serve(mproc_conn *c, const struct mproc__net_key *key, int64_t deadline)
{
    if (key->len == 0)
        return send_msg(c, HELLO_OPEN, strlen(HELLO_OPEN), deadline);
    int rc = challenge(c, key, HELLO_KEY, ROLE_CLIENT, deadline);
    if (rc < 0)
        return rc;
    unsigned char msg[MAX_MSG];
    size_t len;
    if ((rc = recv_msg(c, msg, &len, deadline)) < 0)
        return rc;
    size_t plen = strlen(CHALLENGE);
    if (len != plen + NONCE || memcmp(msg, CHALLENGE, plen) != 0)
        return -EPROTO;
    return answer(c, key, msg + plen, ROLE_LISTENER, deadline);
}

int mproc__net_answer(mproc_conn *c, const struct mproc__net_key *key, int64_t deadline)
{
    unsigned char msg[MAX_MSG];
    size_t len;
    int rc = recv_msg(c, msg, &len, deadline);
    if (rc < 0)
        return rc;
    size_t plen = strlen(HELLO_KEY);
    if (is(msg, len, HELLO_OPEN))
        return key->len == 0 ? 0 : -MPROC_EAUTH; /* it could not prove anything */
    if (len != plen + NONCE || memcmp(msg, HELLO_KEY, plen) != 0)
        return -EPROTO;
    if (key->len == 0)
        return -MPROC_EAUTH; /* it wants a key we do not have */
    rc = answer(c, key, msg + plen, ROLE_CLIENT, deadline);
    if (rc < 0)
        return rc;
    return challenge(c, key, CHALLENGE, ROLE_LISTENER, deadline);
}
