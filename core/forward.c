/* The dispatcher: validate, then hand the resolved request to the backend. */
#include "core/context.h"
#include "core/error.h"
#include "core/validate.h"

efla_status efla_forward(efla_context context, const efla_forward_desc *desc) {
    efla_error_clear();
    efla_forward_args args;
    int64_t *seqlens;
    efla_status status = efla_forward_validate(context, desc, &args, &seqlens);
    if (status != EFLA_SUCCESS) return status;
    status = context->ops->forward(context->impl, &args);
    efla_forward_args_release(context, seqlens);
    return status;
}

efla_status efla_forward_query(efla_context context, const efla_forward_desc *desc,
                               efla_forward_plan *out_plan) {
    efla_error_clear();
    if (!out_plan || out_plan->struct_size < sizeof *out_plan)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "plan is NULL or its struct_size is too small (EFLA_FORWARD_PLAN_INIT)");
    efla_forward_args args;
    int64_t *seqlens;
    efla_status status = efla_forward_validate(context, desc, &args, &seqlens);
    if (status != EFLA_SUCCESS) return status;
    efla_forward_plan plan = EFLA_FORWARD_PLAN_INIT;
    status = context->ops->forward_query(context->impl, &args, &plan);
    efla_forward_args_release(context, seqlens);
    if (status == EFLA_SUCCESS) *out_plan = plan;
    return status;
}

efla_status efla_forward_record_native(efla_context context, efla_native_kind kind,
                                       const void *native_cmd, const efla_forward_desc *desc) {
    efla_error_clear();
    if (!native_cmd) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "command target is NULL");
    efla_forward_args args;
    int64_t *seqlens;
    efla_status status = efla_forward_validate(context, desc, &args, &seqlens);
    if (status != EFLA_SUCCESS) return status;
    status = context->ops->forward_record
                 ? context->ops->forward_record(context->impl, kind, native_cmd, &args)
                 : efla_error(EFLA_ERROR_UNSUPPORTED, "%s backend cannot record into a host "
                                                      "command stream", context->ops->name);
    efla_forward_args_release(context, seqlens);
    return status;
}
