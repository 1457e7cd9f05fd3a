/*
 * train_dist.h - data-parallel training over MPI (train_dist.c): the ranks of
 * `mpirun -np N bitnet train ...` each take 1/N of every micro-batch and average their
 * gradients before the optimizer step, so that N ranks train as one process with the
 * same global batch. Without MPI in the build, or when the program was not started by
 * an MPI launcher, there is one rank and every call is the identity.
 */
#ifndef BN_TRAIN_DIST_H
#define BN_TRAIN_DIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct train_dist {
    int rank, size;
    bool mpi;          /* MPI was initialized (launched by mpirun / mpiexec) */
} train_dist;

/* Initializes MPI when an MPI launcher started the program (its environment says so);
 * else one rank. False with a message when MPI fails to start. */
bool train_dist_init(int *argc, char ***argv, train_dist *d);
void train_dist_finalize(const train_dist *d);

/* Whether this program was built with MPI. */
bool train_dist_built(void);

/* g[i] = the mean over the ranks of g[i], summed in rank order (the same order on every
 * run of N ranks). False with a message on an MPI error. */
bool train_dist_mean_floats(const train_dist *d, float *g, size_t n);

/* The mean over the ranks of x. */
double train_dist_mean(const train_dist *d, double x);

/* Whether any rank's flag is set (an interrupt seen by one rank stops all). */
bool train_dist_any(const train_dist *d, bool flag);

/* Every rank: whether all ranks' ok is true (so that all stop together on an error). */
bool train_dist_all(const train_dist *d, bool ok);

#endif
