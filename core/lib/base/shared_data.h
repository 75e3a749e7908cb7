/* core/lib/base/shared_data.h — (internal, tests only) the real label files live in
 * ../shared/data beside the repository (SB_SHARED_DATA). Where they are missing a test is
 * skipped on a developer's machine but FAILS in CI (CI set), so that a wrong path can never
 * turn required tests into silent skips. Include after <criterion/criterion.h>. */
#ifndef SBI_SHARED_DATA_H
#define SBI_SHARED_DATA_H

#include <stdlib.h>

#define SB_MISSING_SHARED(fmt, ...)                                                                \
    do {                                                                                           \
        if (getenv("CI"))                                                                          \
            cr_assert_fail("shared data missing (CI runs with ../shared beside the clone): " fmt,  \
                           __VA_ARGS__);                                                           \
        else                                                                                       \
            cr_skip_test(fmt, __VA_ARGS__);                                                        \
    } while (0)

#endif
