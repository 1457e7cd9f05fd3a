/*
 * fuzz_tok_check.h - what the fuzz targets of the tokenizer file readers
 * (fuzz_tokenizer_json.c, fuzz_tokenizer_model.c) check once a load has returned:
 * a refused file left a message and no tokenizer; a loaded one is walked and used
 * (see fuzz_tok_check.c) and freed. The caller compares the live block count from
 * before the load with the one after this.
 */
#ifndef BN_FUZZ_TOK_CHECK_H
#define BN_FUZZ_TOK_CHECK_H

#include "bitnet.h"

/* Sends the library's log to a sink that drops it, at every level, so that each
 * message is still formatted (a bad format argument shows up) but nothing is printed. */
void bn_fuzz_tok_quiet_log(void);

/* Checks the outcome of one load of a `kind` tokenizer file and frees t. `target`
 * names the fuzz target in the report of a broken promise; `needle` is a text every
 * refusal's message must hold (the file's name or format). Aborts on a broken
 * promise, which libFuzzer reports as a crash. */
void bn_fuzz_tok_check_load(const char *target, bn_tokenizer_kind kind, bn_status st,
                            bn_tokenizer *t, const char *needle);

#endif
