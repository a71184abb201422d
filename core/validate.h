/* Validation of a forward descriptor into resolved backend arguments. */
#ifndef EFLA_CORE_VALIDATE_H
#define EFLA_CORE_VALIDATE_H

#include "core/context.h"

/* Checks every rule of efla_forward_desc against `context` and fills
 * `args`. On success, args->cu_seqlens points into *out_seqlens (allocated
 * from the context's allocator, or NULL); release it with
 * efla_forward_args_release. On failure nothing is allocated. */
efla_status efla_forward_validate(efla_context context, const efla_forward_desc *desc,
                                  efla_forward_args *args, int64_t **out_seqlens);
void efla_forward_args_release(efla_context context, int64_t *seqlens);

#endif
