// nosymbol: a shared object that looks like a plugin but exports no wsgw_handler_v1. The gateway must
// refuse to start with a message naming the missing symbol.
#include <wsgw/handler.h>

extern "C" WSGW_EXPORT int wsgw_not_a_handler(void) { return WSGW_ABI_VERSION; }
