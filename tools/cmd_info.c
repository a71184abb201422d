/* `efla info`: what this build of efla can use on this machine. */
#include "cli_util.h"
#include "commands.h"
#include "info_vulkan.h"

#include <stdlib.h>
#include <string.h>

typedef struct device_entry {
    efla_device_info info;
    efla_status status;
    char error[256];
    bool has_vulkan;
    info_vulkan vulkan;
} device_entry;

typedef struct backend_report {
    efla_backend backend;
    bool compiled, available;
    char reason[512];
    uint32_t device_count;
    device_entry *devices;
} backend_report;

typedef struct auto_report {
    bool ok;
    efla_device_info info;
    char error[512];
} auto_report;

#define REPORTED_BACKENDS (EFLA_BACKEND_COUNT - 1) /* all but AUTO */

static const char *device_type_name(efla_device_type type) {
    static const char *const names[] = {"other",       "discrete_gpu", "integrated_gpu",
                                        "virtual_gpu", "cpu",          "software"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

static void copy_error(char *buf, size_t size, efla_status status) {
    const char *message = efla_last_error_message();
    snprintf(buf, size, "%s", message && *message ? message : efla_status_string(status));
}

static void gather_devices(backend_report *r) {
    efla_status s = efla_device_count(r->backend, &r->device_count);
    if (s != EFLA_SUCCESS || r->device_count == 0) {
        if (s != EFLA_SUCCESS) copy_error(r->reason, sizeof r->reason, s);
        r->device_count = 0;
        return;
    }
    r->devices = calloc(r->device_count, sizeof *r->devices);
    if (!r->devices) {
        snprintf(r->reason, sizeof r->reason, "out of memory");
        r->device_count = 0;
        return;
    }
    for (uint32_t d = 0; d < r->device_count; ++d) {
        device_entry *e = &r->devices[d];
        e->info = (efla_device_info)EFLA_DEVICE_INFO_INIT;
        e->status = efla_device_get_info(r->backend, d, &e->info);
        if (e->status != EFLA_SUCCESS) copy_error(e->error, sizeof e->error, e->status);
        if (e->status == EFLA_SUCCESS && r->backend == EFLA_BACKEND_VULKAN)
            e->has_vulkan = info_vulkan_device(d, &e->vulkan);
    }
}

static void gather_backend(backend_report *r, efla_backend backend) {
    memset(r, 0, sizeof *r);
    r->backend = backend;
    r->compiled = efla_backend_compiled(backend) != 0;
    efla_status s = efla_backend_probe(backend);
    r->available = s == EFLA_SUCCESS;
    if (!r->available)
        copy_error(r->reason, sizeof r->reason, s);
    else
        gather_devices(r);
}

static void gather_auto(auto_report *a) {
    efla_context_create_info create = EFLA_CONTEXT_CREATE_INFO_INIT;
    efla_context context = NULL;
    memset(a, 0, sizeof *a);
    a->info = (efla_device_info)EFLA_DEVICE_INFO_INIT;
    efla_status s = efla_context_create(&create, &context);
    if (s == EFLA_SUCCESS) s = efla_context_device_info(context, &a->info);
    a->ok = s == EFLA_SUCCESS;
    if (!a->ok) copy_error(a->error, sizeof a->error, s);
    efla_context_destroy(context);
}

static void feature_list(uint32_t flags, char *buf, size_t size) {
    static const struct {
        uint32_t bit;
        const char *name;
    } features[] = {{EFLA_DEVICE_FP16, "fp16"},
                    {EFLA_DEVICE_BF16, "bf16"},
                    {EFLA_DEVICE_SUBGROUPS, "subgroups"},
                    {EFLA_DEVICE_COOPERATIVE_MATRIX, "coopmat"},
                    {EFLA_DEVICE_TIMESTAMPS, "timestamps"}};
    size_t used = (size_t)snprintf(buf, size, "%s", "");
    for (size_t i = 0; i < sizeof features / sizeof features[0] && used < size; ++i)
        if (flags & features[i].bit)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? " " : "",
                                     features[i].name);
    if (!used) snprintf(buf, size, "none");
}

static void print_device_text(const device_entry *e, uint32_t index) {
    const efla_device_info *i = &e->info;
    if (e->status != EFLA_SUCCESS) {
        printf("  [%u] error: %s\n", index, e->error);
        return;
    }
    char features[128];
    feature_list(i->flags, features, sizeof features);
    printf("  [%u] %s (%s)\n", index, i->name, device_type_name(i->type));
    printf("      vendor %s, driver %s%s%s\n", i->vendor, i->driver_version,
           i->pci_bus_id[0] ? ", pci " : "", i->pci_bus_id);
    printf("      memory %.1f GiB, %u compute units, subgroup size %u, shared memory %llu B\n",
           (double)i->memory_bytes / (1024.0 * 1024.0 * 1024.0), i->compute_units, i->subgroup_size,
           (unsigned long long)i->shared_memory_bytes);
    printf("      features: %s\n      kernel path: %s\n", features, i->kernel_path);
    if (e->has_vulkan)
        printf("      bindings: %s; 16-bit tensors: %s\n", e->vulkan.bindings,
               e->vulkan.storage_16bit ? "16-bit storage" : "32-bit words");
}

static void print_text(const backend_report *reports, const auto_report *a) {
    printf("efla %s\n", efla_version_string());
    for (int b = 0; b < REPORTED_BACKENDS; ++b) {
        const backend_report *r = &reports[b];
        const char *name = efla_backend_name(r->backend);
        if (!r->compiled)
            printf("%s: not compiled in\n", name);
        else if (!r->available)
            printf("%s: compiled in, unavailable: %s\n", name, r->reason);
        else
            printf("%s: available, %u device(s)%s%s\n", name, r->device_count,
                   r->reason[0] ? ": " : "", r->reason);
        for (uint32_t d = 0; d < r->device_count; ++d)
            print_device_text(&r->devices[d], d);
    }
    if (a->ok)
        printf("auto: %s device %u (%s)\n", efla_backend_name(a->info.backend), a->info.index,
               a->info.name);
    else
        printf("auto: no device: %s\n", a->error);
}

static void json_field(const char *key, const char *value) {
    printf(",\"%s\":", key);
    if (value)
        cli_json_string(stdout, value);
    else
        fputs("null", stdout);
}

static void json_flag(const char *key, uint32_t flags, uint32_t bit) {
    printf(",\"%s\":%s", key, flags & bit ? "true" : "false");
}

static void print_device_json(const device_entry *e, uint32_t index) {
    const efla_device_info *i = &e->info;
    printf("{\"index\":%u", index);
    if (e->status != EFLA_SUCCESS) {
        json_field("error", e->error);
        fputc('}', stdout);
        return;
    }
    json_field("name", i->name);
    json_field("vendor", i->vendor);
    json_field("type", device_type_name(i->type));
    json_field("driver_version", i->driver_version);
    json_field("pci_bus_id", i->pci_bus_id);
    printf(",\"vendor_id\":%u,\"device_id\":%u,\"memory_bytes\":%llu,\"compute_units\":%u,"
           "\"subgroup_size\":%u,\"shared_memory_bytes\":%llu",
           i->vendor_id, i->device_id, (unsigned long long)i->memory_bytes, i->compute_units,
           i->subgroup_size, (unsigned long long)i->shared_memory_bytes);
    json_flag("fp16", i->flags, EFLA_DEVICE_FP16);
    json_flag("bf16", i->flags, EFLA_DEVICE_BF16);
    json_flag("subgroups", i->flags, EFLA_DEVICE_SUBGROUPS);
    json_flag("coopmat", i->flags, EFLA_DEVICE_COOPERATIVE_MATRIX);
    json_flag("timestamps", i->flags, EFLA_DEVICE_TIMESTAMPS);
    json_field("kernel_path", i->kernel_path);
    if (e->has_vulkan) {
        json_field("vulkan_bindings", e->vulkan.bindings);
        printf(",\"vulkan_16bit_storage\":%s", e->vulkan.storage_16bit ? "true" : "false");
    }
    fputc('}', stdout);
}

static void print_backend_json(const backend_report *r) {
    printf("{\"name\":");
    cli_json_string(stdout, efla_backend_name(r->backend));
    printf(",\"compiled\":%s,\"available\":%s", r->compiled ? "true" : "false",
           r->available ? "true" : "false");
    json_field("reason", r->reason[0] ? r->reason : NULL);
    fputs(",\"devices\":[", stdout);
    for (uint32_t d = 0; d < r->device_count; ++d) {
        if (d) fputc(',', stdout);
        print_device_json(&r->devices[d], d);
    }
    fputs("]}", stdout);
}

static void print_json(const backend_report *reports, const auto_report *a) {
    fputs("{\"version\":", stdout);
    cli_json_string(stdout, efla_version_string());
    fputs(",\"backends\":[", stdout);
    for (int b = 0; b < REPORTED_BACKENDS; ++b) {
        if (b) fputc(',', stdout);
        print_backend_json(&reports[b]);
    }
    fputs("],\"auto\":{\"ok\":", stdout);
    fputs(a->ok ? "true" : "false", stdout);
    if (a->ok) {
        json_field("backend", efla_backend_name(a->info.backend));
        printf(",\"device\":%u", a->info.index);
        json_field("device_name", a->info.name);
    } else {
        json_field("error", a->error);
    }
    fputs("}}\n", stdout);
}

int cmd_info(int argc, char **argv) {
    bool json = false;
    const cli_option options[] = {{"--json", NULL, NULL, &json}};
    int code = cli_parse_options(argc, argv, 2, options, 1);
    if (code == CLI_PARSE_HELP) {
        fputs("usage: efla info [--json]\n", stdout);
        return CLI_EXIT_OK;
    }
    if (code != CLI_EXIT_OK) return code;
    backend_report reports[REPORTED_BACKENDS];
    for (int b = 0; b < REPORTED_BACKENDS; ++b)
        gather_backend(&reports[b], (efla_backend)(EFLA_BACKEND_CPU + b));
    auto_report chosen;
    gather_auto(&chosen);
    if (json)
        print_json(reports, &chosen);
    else
        print_text(reports, &chosen);
    for (int b = 0; b < REPORTED_BACKENDS; ++b)
        free(reports[b].devices);
    return CLI_EXIT_OK;
}
