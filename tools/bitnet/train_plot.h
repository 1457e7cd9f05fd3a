/*
 * train_plot.h - train.csv and loss.svg of a training run (train_plot.c).
 */
#ifndef BN_TRAIN_PLOT_H
#define BN_TRAIN_PLOT_H

#include <stdbool.h>

#include "train/run.h"

/* Columns step,lr,train_loss,val_loss,tokens_per_second,lambda,grad_norm; val_loss
 * empty on rows without evaluation. False with the library's error set. */
bool train_write_csv(const char *path, const bn_train_log_row *rows, int64_t n);

/* Train loss (every row) and validation loss (rows that have one) against step. */
bool train_write_svg(const char *path, const bn_train_log_row *rows, int64_t n,
                     const char *title);

#endif
