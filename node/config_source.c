#include "node/config_source.h"

#include <stdint.h>

static int file_load(struct sl_config_source *src, struct sl_config **out, char *err, size_t errlen)
{
    return sl_config_load(src->impl, out, err, errlen);
}

void sl_config_source_file(struct sl_config_source *src, const char *path)
{
    src->description = path;
    src->load = file_load;
    src->impl = (void *)(uintptr_t)path;
}
