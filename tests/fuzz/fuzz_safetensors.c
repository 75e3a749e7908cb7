/* tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors reader (the header
 * parser and its offset/shape/dtype checks): each input is written to an in-memory file and
 * opened; every tensor it accepts is looked up by name and converted to F32 when it is a
 * float type, so any accepted offset that points outside the mapping shows up under ASan.
 * Run: scripts/fuzz-safetensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <serbench/safetensors.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sb_st_file *f = NULL;
    sb_error err = { 0 };
    if (sb_st_open(path, &f, &err) == SB_OK) {
        for (size_t i = 0; i < sb_st_count(f); i++) {
            const sb_st_tensor *t = sb_st_at(f, i);
            if (sb_st_find(f, t->name) != t)
                abort(); /* names must be unique and findable */
            if (t->numel <= 1 << 20 && (t->dtype == SB_DT_F32 || t->dtype == SB_DT_F16 ||
                                        t->dtype == SB_DT_BF16 || t->dtype == SB_DT_F64)) {
                float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
                if (out && sb_st_to_f32(t, out, NULL) != SB_OK)
                    abort(); /* a float tensor the reader accepted must convert */
                free(out);
            }
        }
        (void)sb_st_metadata(f, "format");
        sb_st_close(&f);
    }
    close(fd);
    return 0;
}
