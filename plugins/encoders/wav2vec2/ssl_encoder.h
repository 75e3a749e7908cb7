/* plugins/encoders/wav2vec2/ssl_encoder.h — the encoder plugin logic shared by the four
 * SSL plugins (wav2vec2, hubert, wavlm, data2vec): each plugin's own file only names its
 * family and defines its descriptor. Compiled into every module (symbols stay hidden). */
#ifndef SSL_ENCODER_H
#define SSL_ENCODER_H

#include <serbench/serbench.h>

extern const sb_option ssl_encoder_options[];

sb_status ssl_encoder_create(sb_ssl_family family, const char *plugin, const sb_host *host,
                             const sb_opts *opts, void **inst, sb_error *err);
sb_status ssl_encoder_info(void *inst, sb_encoder_info *info, sb_error *err);
sb_status ssl_encoder_fingerprint(void *inst, char out[128], sb_error *err);
sb_status ssl_encoder_encode(void *inst, const float *audio, size_t n, float *out, sb_error *err);
sb_status ssl_encoder_frames(void *inst, const float **out, size_t *T, sb_error *err);
void ssl_encoder_destroy(void *inst);

/* The vtable and descriptor of plugin NAME for FAMILY. */
#define SSL_ENCODER_PLUGIN(NAME, FAMILY, SUMMARY)                                                  \
    static sb_status NAME##_create(const sb_host *host, const sb_opts *opts, void **inst,          \
                                   sb_error *err)                                                  \
    {                                                                                              \
        return ssl_encoder_create(FAMILY, #NAME, host, opts, inst, err);                           \
    }                                                                                              \
    static const sb_encoder_vtable NAME##_vtable = {                                               \
        .struct_size = sizeof(sb_encoder_vtable),                                                  \
        .create = NAME##_create,                                                                   \
        .info = ssl_encoder_info,                                                                  \
        .fingerprint = ssl_encoder_fingerprint,                                                    \
        .encode = ssl_encoder_encode,                                                              \
        .destroy = ssl_encoder_destroy,                                                            \
        .frames = ssl_encoder_frames,                                                              \
    };                                                                                             \
    static const sb_plugin NAME##_plugin = {                                                       \
        .abi_minor = SB_ABI_MINOR,                                                                 \
        .struct_size = sizeof(sb_plugin),                                                          \
        .kind = SB_KIND_ENCODER,                                                                   \
        .name = #NAME,                                                                             \
        .version = "1.1.0",                                                                        \
        .summary = SUMMARY,                                                                        \
        .options = ssl_encoder_options,                                                            \
        .vtable = &NAME##_vtable,                                                                  \
    };                                                                                             \
    SB_PLUGIN_DEFINE(NAME##_plugin)

#endif
