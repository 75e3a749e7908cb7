/* tests/unit/ssl/helpers.h — shared by the SSL tests: a temporary folder, paths into the
 * source tree, running the Python parity scripts, and a deterministic test WAV. */
#ifndef SSL_TEST_HELPERS_H
#define SSL_TEST_HELPERS_H

#include <stddef.h>

/* Create (once per process) and return a fresh temporary folder. */
const char *ssl_tmpdir(void);
/* tmpdir/name (static buffer, rotated among 4). */
const char *ssl_tmp(const char *name);
/* $SB_SOURCE_ROOT/rel (static buffer). */
const char *ssl_source(const char *rel);
/* Nonzero when /usr/bin/python3 can import torch and torchaudio. */
int ssl_have_torch(void);
/* Run a shell command; returns its exit status (stderr passes through). */
int ssl_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write a 16-bit 16 kHz mono WAV of n samples (a gliding harmonic tone with noise). */
void ssl_write_wav(const char *path, size_t n, unsigned seed);
/* Recursively remove the temporary folder. */
void ssl_cleanup(void);

#endif
