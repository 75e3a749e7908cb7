/* serbench/serbench.h — the whole public SDK. A plugin includes this and nothing else
 * from serbench. */
#ifndef SERBENCH_H
#define SERBENCH_H

#include "common.h"
#include "error.h"
#include "options.h"
#include "corpus.h"
#include "plugin.h"
#include "audio.h"
#include "fbank.h"
#include "hash.h"
#include "rng.h"
#include "safetensors.h"
#include "text.h"
#include "files.h"
#include "nn.h"
#include "nn_train.h"
#include "metrics.h"
#include "agree.h"
#include "signif.h"
#include "ssl.h"

#endif
