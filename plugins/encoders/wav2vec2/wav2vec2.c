/* plugins/encoders/wav2vec2/wav2vec2.c — the `wav2vec2` encoder plugin: wav2vec 2.0 checkpoints
 * from Hugging Face folders, every selected hidden state pooled over time. The network is
 * libserbench's (serbench/ssl.h); the plugin logic is shared (../wav2vec2/ssl_encoder.c). */
#include "ssl_encoder.h"

SSL_ENCODER_PLUGIN(wav2vec2, SB_SSL_WAV2VEC2,
                   "wav2vec 2.0 hidden states (Hugging Face checkpoint, fp32 on OpenBLAS), "
                   "pooled per layer.")
