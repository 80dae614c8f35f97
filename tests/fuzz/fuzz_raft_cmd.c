/* libFuzzer target for the Raft command codec (raft/cmd.c).
 *
 * The input is decoded from a heap copy of its exact size, so ASan reports any read past it. A
 * command that decodes is encoded again and must give back exactly the input bytes (the format
 * has one encoding per command); a mismatch traps.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_raft_cmd.c raft/cmd.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = malloc(size ? size : 1);
    CHECK(in != NULL);
    if (size > 0)
        memcpy(in, data, size);
    struct sl_raft_cmd c;
    if (sl_raft_cmd_decode(in, size, &c) == 0) {
        CHECK(size % 8 == 0);
        CHECK(sl_raft_cmd_size(&c) == size);
        uint8_t *out = malloc(size);
        CHECK(out != NULL);
        CHECK(sl_raft_cmd_encode(&c, out, size) == size);
        CHECK(memcmp(in, out, size) == 0);
        free(out);
    }
    free(in);
    return 0;
}
