/* serbench/fbank.h — log-mel filterbank features (FFTW), the weight-free baseline front end
 * and a building block for plugins that want spectral input.
 *
 * Definition (docs/encoders.md gives the formulas): frames of frame_ms every hop_ms
 * (no centre padding; the last partial frame is dropped; audio shorter than one frame gives
 * one zero-padded frame), DC offset removed per frame, pre-emphasis, periodic Hann window
 * (w[i] = 1/2 - 1/2 cos(2 pi i / L)), |FFT|^2 over n_fft points, HTK-mel filters that are
 * triangular in Hz between f_min and f_max, natural log with a floor of 1e-10 on the
 * energies. */
#ifndef SERBENCH_FBANK_H
#define SERBENCH_FBANK_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

typedef struct sb_fbank_config {
    int sample_rate; /* Hz, e.g. 16000 */
    int n_mels;      /* e.g. 80 */
    double frame_ms; /* e.g. 25 */
    double hop_ms;   /* e.g. 10 */
    double f_min;    /* Hz, e.g. 20 */
    double f_max;    /* Hz; <= 0 means sample_rate / 2 */
    double preemph;  /* e.g. 0.97; 0 disables */
    int n_fft;       /* 0 means the next power of two >= the frame length */
} sb_fbank_config;

/* Fill c with the defaults above (16 kHz, 80 mels, 25/10 ms, 20 Hz..Nyquist, 0.97). */
SB_API void sb_fbank_config_default(sb_fbank_config *c);

/* A filterbank computer. Not thread-safe per object; create one per thread. Creation
 * serialises FFTW planning internally, so objects may be created from several threads. */
typedef struct sb_fbank sb_fbank;
SB_API sb_status sb_fbank_create(const sb_fbank_config *c, sb_fbank **out, sb_error *err);
SB_API void sb_fbank_destroy(sb_fbank **f);
/* Frames produced for n samples (>= 1 for n >= 1; 0 for n == 0). */
SB_API size_t sb_fbank_n_frames(const sb_fbank *f, size_t n);
/* out: [sb_fbank_n_frames(n), n_mels] log energies. n == 0 is SB_ERR_INVALID. */
SB_API sb_status sb_fbank_compute(sb_fbank *f, const float *audio, size_t n, float *out,
                                  sb_error *err);

SB_END_DECLS

#endif
