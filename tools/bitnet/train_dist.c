/*
 * train_dist.c - MPI for data-parallel training (train_dist.h). Built with MPI when
 * CMake finds it (BITNET_MPI); MPI is started only when an MPI launcher started the
 * program, so the same binary runs alone without mpirun's start-up cost.
 */
#include <stdio.h>
#include <stdlib.h>

#include "train_dist.h"

#if BITNET_MPI
#include <mpi.h>

/* The rank-ordered sum: MPI applies a non-commutative operation in rank order. */
static void sum_in_order(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const float *a = in;
    float *b = inout;
    for (int i = 0; i < *len; i++)
        b[i] = a[i] + b[i];
}

static MPI_Op op_sum_in_order = MPI_OP_NULL;

bool train_dist_built(void) { return true; }

bool train_dist_init(int *argc, char ***argv, train_dist *d)
{
    *d = (train_dist){.rank = 0, .size = 1, .mpi = false};
    /* Hydra (MPICH) sets PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE */
    if (!getenv("PMI_SIZE") && !getenv("OMPI_COMM_WORLD_SIZE"))
        return true;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "bitnet train: MPI_Init failed\n");
        return false;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    MPI_Op_create(sum_in_order, 0, &op_sum_in_order);
    d->mpi = true;
    return true;
}

void train_dist_finalize(const train_dist *d)
{
    if (!d->mpi)
        return;
    MPI_Op_free(&op_sum_in_order);
    MPI_Finalize();
}

bool train_dist_mean_floats(const train_dist *d, float *g, size_t n)
{
    if (d->size == 1)
        return true;
    const float k = 1.0f / (float)d->size;
    for (size_t at = 0; at < n;) {
        int chunk = n - at > (1u << 30) ? 1 << 30 : (int)(n - at);
        if (MPI_Allreduce(MPI_IN_PLACE, g + at, chunk, MPI_FLOAT, op_sum_in_order,
                          MPI_COMM_WORLD) != MPI_SUCCESS) {
            fprintf(stderr, "bitnet train: MPI_Allreduce of the gradients failed\n");
            return false;
        }
        at += (size_t)chunk;
    }
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] * k;
    return true;
}

double train_dist_mean(const train_dist *d, double x)
{
    if (d->size == 1)
        return x;
    double sum = x;
    MPI_Allreduce(&x, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return sum / d->size;
}

bool train_dist_any(const train_dist *d, bool flag)
{
    if (d->size == 1)
        return flag;
    int in = flag, out = in;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out != 0;
}

bool train_dist_all(const train_dist *d, bool ok)
{
    if (d->size == 1)
        return ok;
    int in = ok, out = in;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return out != 0;
}

#else /* one process */

bool train_dist_built(void) { return false; }

bool train_dist_init(int *argc, char ***argv, train_dist *d)
{
    (void)argc;
    (void)argv;
    *d = (train_dist){.rank = 0, .size = 1, .mpi = false};
    if (getenv("PMI_SIZE") && atoi(getenv("PMI_SIZE")) > 1) {
        fprintf(stderr, "bitnet train: started by an MPI launcher with %s ranks, but this "
                "bitnet was built without MPI (install libmpich-dev: "
                "scripts/install-deps.sh --mpi, and build again)\n", getenv("PMI_SIZE"));
        return false;
    }
    return true;
}

void train_dist_finalize(const train_dist *d) { (void)d; }

bool train_dist_mean_floats(const train_dist *d, float *g, size_t n)
{
    (void)d;
    (void)g;
    (void)n;
    return true;
}

double train_dist_mean(const train_dist *d, double x)
{
    (void)d;
    return x;
}

bool train_dist_any(const train_dist *d, bool flag)
{
    (void)d;
    return flag;
}

bool train_dist_all(const train_dist *d, bool ok)
{
    (void)d;
    return ok;
}

#endif
