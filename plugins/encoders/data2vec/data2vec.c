/* plugins/encoders/data2vec/data2vec.c — the `data2vec` encoder plugin: data2vec-audio checkpoints
 * from Hugging Face folders, every selected hidden state pooled over time. The network is
 * libserbench's (serbench/ssl.h); the plugin logic is shared (../wav2vec2/ssl_encoder.c). */
#include "ssl_encoder.h"

SSL_ENCODER_PLUGIN(data2vec, SB_SSL_DATA2VEC,
                   "data2vec-audio hidden states (Hugging Face checkpoint, fp32 on OpenBLAS), "
                   "pooled per layer.")
