/*
 * Planning one forward: which sequences run recurrent and which chunked,
 * the per-call parameter block and sequence tables (shaders/opencl/
 * efla_params.h), the scratch layout and the launch shapes.
 */
#ifndef EFLA_OPENCL_PLAN_H
#define EFLA_OPENCL_PLAN_H

#include "backends/opencl/opencl_internal.h"

typedef struct efla_cl_plan {
    const efla_cl_program *program;
    /* Table entries (int4 each) and where each table starts in the block,
     * counted in int4 from the block's start. The first-chunk table holds,
     * per scan entry, the index of its sequence's first chunk. */
    int64_t recurrent_count, chunk_count, scan_count;
    int32_t recurrent_table, chunk_table, scan_table, first_chunk_table;
    /* The parameter block followed by the tables (host memory). */
    int64_t *block;
    size_t block_bytes;
    /* Launch shapes. */
    uint32_t recurrent_columns, recurrent_row_groups; /* dvr, rsr */
    bool nvmma; /* the chunk kernels are the nvmma pipeline (its own scratch layout) */
    int scan_kernel;                                  /* EFLA_CL_STATE.. or EFLA_CL_NVMMA_STATE.. */
    uint32_t scan_columns;                            /* value columns of one state work-group */
    uint32_t scan_items;                              /* its work-items */
    size_t recurrent_local_bytes, scan_local_bytes;   /* the __local arguments */
    uint64_t scratch_bytes;
} efla_cl_plan;

/* Whether a sequence of `length` tokens runs the recurrent kernel. */
bool efla_cl_runs_recurrent(const efla_forward_args *args, int64_t length);

/* The state kernel (EFLA_CL_STATE..STATE32) for a Dv tile width. */
int efla_cl_state_kernel(uint32_t columns);

/* Fills the plan (and allocates its block from the context's allocator). */
efla_status efla_cl_plan_make(efla_backend_context *ctx, const efla_forward_args *args,
                              const efla_cl_program *program, efla_cl_plan *plan);
void efla_cl_plan_free(efla_backend_context *ctx, efla_cl_plan *plan);

#endif
