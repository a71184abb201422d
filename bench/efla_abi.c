/*
 * Prints the size and field offsets of the public structs of efla.h, one
 * "struct.field offset" line each (and "struct size"), so that
 * bench/check_abi.sh can compare them with the ctypes mirror in
 * bench/efla_ctypes.py.
 */
#include "efla/efla.h"

#include <stddef.h>
#include <stdio.h>

#define SIZE(type) printf("%s %zu\n", #type, sizeof(type))
#define FIELD(type, field) printf("%s.%s %zu\n", #type, #field, offsetof(type, field))

static void context_create_info(void) {
    SIZE(efla_context_create_info);
    FIELD(efla_context_create_info, struct_size);
    FIELD(efla_context_create_info, next);
    FIELD(efla_context_create_info, backend);
    FIELD(efla_context_create_info, device_index);
    FIELD(efla_context_create_info, threads);
    FIELD(efla_context_create_info, flags);
    FIELD(efla_context_create_info, allocator);
    FIELD(efla_context_create_info, parallel_for);
    FIELD(efla_context_create_info, parallel_for_user);
}

static void device_info(void) {
    SIZE(efla_device_info);
    FIELD(efla_device_info, struct_size);
    FIELD(efla_device_info, backend);
    FIELD(efla_device_info, index);
    FIELD(efla_device_info, type);
    FIELD(efla_device_info, name);
    FIELD(efla_device_info, vendor);
    FIELD(efla_device_info, driver_version);
    FIELD(efla_device_info, pci_bus_id);
    FIELD(efla_device_info, uuid);
    FIELD(efla_device_info, vendor_id);
    FIELD(efla_device_info, device_id);
    FIELD(efla_device_info, compute_units);
    FIELD(efla_device_info, subgroup_size);
    FIELD(efla_device_info, shared_memory_bytes);
    FIELD(efla_device_info, memory_bytes);
    FIELD(efla_device_info, flags);
    FIELD(efla_device_info, kernel_path);
}

static void tensor(void) {
    SIZE(efla_tensor);
    FIELD(efla_tensor, buffer);
    FIELD(efla_tensor, offset);
    FIELD(efla_tensor, dtype);
    FIELD(efla_tensor, rank);
    FIELD(efla_tensor, shape);
    FIELD(efla_tensor, strides);
}

static void forward_desc(void) {
    SIZE(efla_forward_desc);
    FIELD(efla_forward_desc, struct_size);
    FIELD(efla_forward_desc, next);
    FIELD(efla_forward_desc, q);
    FIELD(efla_forward_desc, k);
    FIELD(efla_forward_desc, v);
    FIELD(efla_forward_desc, beta);
    FIELD(efla_forward_desc, out);
    FIELD(efla_forward_desc, initial_state);
    FIELD(efla_forward_desc, final_state);
    FIELD(efla_forward_desc, cu_seqlens);
    FIELD(efla_forward_desc, cu_seqlens_dtype);
    FIELD(efla_forward_desc, num_sequences);
    FIELD(efla_forward_desc, scale);
    FIELD(efla_forward_desc, mode);
    FIELD(efla_forward_desc, algorithm);
    FIELD(efla_forward_desc, flags);
}

static void forward_plan(void) {
    SIZE(efla_forward_plan);
    FIELD(efla_forward_plan, struct_size);
    FIELD(efla_forward_plan, algorithm);
    FIELD(efla_forward_plan, kernel_path);
}

static void stage_time(void) {
    SIZE(efla_stage_time);
    FIELD(efla_stage_time, name);
    FIELD(efla_stage_time, ms);
    FIELD(efla_stage_time, dispatches);
}

int main(void) {
    context_create_info();
    device_info();
    tensor();
    forward_desc();
    forward_plan();
    stage_time();
    return 0;
}
