/* plugins/heads/common/head_ckpt.h — the checkpoint side the heads share (compiled into each
 * head with head_data.c): head_config building and comparison, reading a tensor of a fixed
 * shape, and the layer-weights-and-standardisation block that the linear and mlp heads save
 * first and stage before a load replaces anything.
 *
 * `who` names the head in messages ("head linear"). Shapes: L layers of D dims. */
#ifndef SB_HEAD_CKPT_H
#define SB_HEAD_CKPT_H

#include <serbench/serbench.h>

/* Compare a checkpoint's head_config (`saved`, NULL when absent) with this instance's
 * (`want`), both flat JSON objects: the first key of `want` (other than `skip`, which may be
 * NULL) whose value differs or is missing is an SB_ERR_CONFIG error naming the key and both
 * values. A malformed or absent `saved` is SB_ERR_FORMAT. */
sb_status hd_config_diff(const char *who, const char *saved, const char *want, const char *skip,
                         sb_error *err);

/* The integer `key` of a head_config object into *out; SB_ERR_FORMAT when absent or not one. */
sb_status hd_config_int(const char *who, const char *json, const char *key, long *out,
                        sb_error *err);

/* Read tensor `name` of f, which must have the given shape, into out (converted to F32, all
 * finite). A missing or mis-shaped tensor is SB_ERR_FORMAT naming it and both shapes. */
sb_status hd_st_read(const char *who, const sb_st_file *f, const char *name, int ndim,
                     const int64_t *shape, float *out, sb_error *err);

/* The head_config of a probe head (what fixes its tensors' shapes) into buf [cap]:
 * {"n_layers":L,"dim":D,"n_classes":K} (K = 0 for a regression head), followed by
 * "hidden":[h_0,...] when `hidden` is not NULL (n_hidden widths). Truncated to fit cap. */
void hd_probe_config(char *buf, size_t cap, int L, int D, int n_classes, const int *hidden,
                     int n_hidden);

/* The checks a probe head's load starts with: init->parts (NULL init or parts = "all") must be
 * "all", else SB_ERR_CONFIG naming `head`; then f's head_config must match `want` (all keys but
 * n_classes when init->new_output, see hd_config_diff). *fresh is set to init->new_output. */
sb_status hd_probe_load_check(const char *who, const char *head, const sb_st_file *f,
                              const sb_head_init *init, const char *want, int *fresh,
                              sb_error *err);

/* Save the tensors every probe head starts with: layer_logits a [L], mu and inv_sd [L, D]. */
sb_status hd_probe_save_stats(sb_st_writer *w, int L, int D, const float *a, const float *mu,
                              const float *inv_sd, sb_error *err);

/* A probe head's checkpoint read into a copy before it replaces the instance's, so a bad file
 * changes nothing: params [n_params] laid out as the head's own (layer logits first), then
 * mu and inv_sd [L, D]. All three point into one allocation that the stage owns. */
typedef struct hd_stage {
    float *params, *mu, *inv_sd;
    size_t n_params, LD;
} hd_stage;

/* Allocate s for n_params parameters and L x D statistics and read layer_logits into
 * s->params[0..L), mu and inv_sd from f (hd_st_read's errors). On failure s holds nothing. */
sb_status hd_stage_read_stats(const char *who, const sb_st_file *f, int L, int D, size_t n_params,
                              hd_stage *s, sb_error *err);

/* Copy s->params[0..keep) into params and the statistics into mu and inv_sd [L, D], then free
 * s. */
void hd_stage_commit(hd_stage *s, size_t keep, float *params, float *mu, float *inv_sd);

/* Free what s holds (safe on a zeroed or already freed stage). */
void hd_stage_free(hd_stage *s);

#endif
