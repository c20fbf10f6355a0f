/* tests/fuzz/fuzz.h: what every tests/fuzz/fuzz_<name>.c shares.
 *
 * Each target defines LLVMFuzzerTestOneInput(): linked with -fsanitize=fuzzer it is a
 * libFuzzer target (VA_FUZZ=ON, clang), linked with replay.c it replays files (the
 * gcc ASan + UBSan test build). A target keeps no state between inputs: everything it
 * makes is unmade before it returns, so a leak is a finding. */
#ifndef VA_TESTS_FUZZ_H
#define VA_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a crash for libFuzzer and a failure for the replay; unlike
 * assert() it holds in every build type. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
