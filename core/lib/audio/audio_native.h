/* core/lib/audio/audio_native.h — (internal) sb_audio_load that also reports the file's
 * native sample rate and channel count from the same open, so the feature stage can note
 * resampling and downmixing without opening every file twice. */
#ifndef SBI_AUDIO_NATIVE_H
#define SBI_AUDIO_NATIVE_H

#include <serbench/audio.h>

/* As sb_audio_load; native_rate / native_channels (either may be NULL) are set as soon as
 * the file has been opened, even if a later step fails. */
sb_status sbi_audio_load_native(const char *path, double start, double end, int channel, int rate,
                                float **samples, size_t *n, int *native_rate, int *native_channels,
                                sb_error *err);

#endif
