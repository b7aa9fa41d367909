#ifndef REDIS_OPS_CHIREDIS_SHIM_H
#define REDIS_OPS_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

/* redisReaderGetError is a macro in hiredis 0.14. */
static inline const char *ro_reader_error(redisReader *r) { return r->errstr; }
#endif
