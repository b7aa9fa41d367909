#ifndef REDIS_OPS_COPENSSL_SHIM_H
#define REDIS_OPS_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/* These are macros in OpenSSL 3; Swift cannot import them. */
static inline long ro_SSL_set_tlsext_host_name(SSL *s, const char *name) { return SSL_set_tlsext_host_name(s, name); }
static inline long ro_SSL_CTX_set_min_proto_version(SSL_CTX *c, int v) { return SSL_CTX_set_min_proto_version(c, v); }
static inline long ro_SSL_CTX_set_mode(SSL_CTX *c, long m) { return SSL_CTX_set_mode(c, m); }
static inline int ro_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }
static inline long ro_SSL_MODE_ENABLE_PARTIAL_WRITE(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
static inline long ro_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
static inline long ro_SSL_MODE_AUTO_RETRY(void) { return SSL_MODE_AUTO_RETRY; }
#endif
