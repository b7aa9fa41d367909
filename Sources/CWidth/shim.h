#ifndef REDIS_OPS_CWIDTH_SHIM_H
#define REDIS_OPS_CWIDTH_SHIM_H
#include <wchar.h>
#include <locale.h>
/* glibc declares wcwidth only under _XOPEN_SOURCE, which Swift's Glibc module hides. */
extern int wcwidth(wchar_t c);
#endif
