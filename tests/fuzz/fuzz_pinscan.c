/* libFuzzer target for the pin scanner:
 *   clang -fsanitize=fuzzer,address -I. tests/fuzz/fuzz_pinscan.c pool/pinscan.c
 * Besides memory errors (libFuzzer hands over a heap buffer of exactly `size` bytes, so any read
 * past len is caught), it checks the scanner's promises: only text-visible reasons, each with a
 * name, and the same answer twice. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool/pinscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NEVER_SCANNED                                                                              \
    (SL_PIN_SET_VARIABLE | SL_PIN_CURSOR | SL_PIN_UNKNOWN_STATE | SL_PIN_LOCAL_INFILE |            \
     SL_PIN_LARGE_STATEMENT)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    uint32_t reasons = sl_pinscan(sql, size);
    if ((reasons & NEVER_SCANNED) != 0 || reasons >> SL_PIN_REASON_COUNT != 0)
        abort();
    for (uint32_t rest = reasons; rest != 0; rest &= rest - 1) {
        if (sl_pin_reason_name(rest & (~rest + 1)) == NULL)
            abort();
    }
    if (sl_pinscan(sql, size) != reasons)
        abort();
    return 0;
}
