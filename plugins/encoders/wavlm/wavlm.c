/* plugins/encoders/wavlm/wavlm.c — the `wavlm` encoder plugin: WavLM checkpoints from
 * Hugging Face folders, every selected hidden state pooled over time. The network is
 * libserbench's (serbench/ssl.h); the plugin logic is shared (../wav2vec2/ssl_encoder.c). */
#include "ssl_encoder.h"

SSL_ENCODER_PLUGIN(wavlm, SB_SSL_WAVLM,
                   "WavLM hidden states (Hugging Face checkpoint, fp32 on OpenBLAS), "
                   "pooled per layer.")
