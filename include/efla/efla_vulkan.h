/*
 * efla — Vulkan interop: run EFLA on an engine's own Vulkan device, on its
 * own buffers, recorded into its own command buffers.
 *
 * Works with VK_NO_PROTOTYPES (efla never links libvulkan and never calls a
 * global Vulkan symbol: every entry point comes from the host's
 * vkGetInstanceProcAddr). efla never destroys a host handle.
 *
 * Typical use
 *   1. Enable the extensions efla_vulkan_required_device_extensions() lists
 *      when creating the VkDevice (today none), and where the device offers
 *      them, what efla uses when enabled: VK_KHR_push_descriptor (fewer
 *      host-side objects, see "Descriptor sets" below) and the feature
 *      storageBuffer16BitAccess (f16/bf16 tensors read and written as 16-bit
 *      values; pass the enabled feature chain in enabled_features).
 *   2. efla_vulkan_context_create() with the instance, physical device,
 *      device, a queue that supports compute, and vkGetInstanceProcAddr.
 *   3. efla_vulkan_buffer_wrap() each VkBuffer region holding q, k, v, beta,
 *      out and the states (usage STORAGE_BUFFER; add TRANSFER_SRC/DST to use
 *      efla_buffer_upload/download on it).
 *   4. Each frame: efla_vulkan_forward_record() into a command buffer in
 *      the recording state, between the host's own commands; submit it.
 *
 * Barrier contract of efla_vulkan_forward_record
 *   Before: the host makes the inputs (q, k, v, beta, initial_state) and any
 *     earlier writes to the outputs available and visible to
 *     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT / VK_ACCESS_SHADER_READ_BIT |
 *     VK_ACCESS_SHADER_WRITE_BIT (for example with a VkMemoryBarrier from the
 *     producing stage). Queue-family ownership transfers are the host's.
 *   Inside: efla records compute dispatches, vkCmdUpdateBuffer of its small
 *     parameter block, push descriptors or bound descriptor sets, push
 *     constants, and its own barriers. It begins with one global VkMemoryBarrier
 *     (COMPUTE_SHADER | TRANSFER -> COMPUTE_SHADER | TRANSFER) that orders it
 *     after earlier compute/transfer work in the command buffer, and leaves
 *     the compute pipeline bound (re-bind yours afterwards).
 *   After: out and final_state were written with VK_ACCESS_SHADER_WRITE_BIT
 *     at VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT; the host adds the barrier
 *     that makes them visible to its consumers.
 *
 * Memory and lifetimes
 *   - efla needs device scratch for the chunked algorithm (W, U, Q K^T and,
 *     for split dispatches, a state carrier). Either pass a host buffer in
 *     efla_vulkan_record_info (efla_vulkan_forward_scratch_size() says how
 *     much), or leave it VK_NULL_HANDLE and efla uses scratch owned by the
 *     context, grown as needed; memory a larger request replaces is kept
 *     until the context is destroyed, because recorded command buffers may
 *     still use it (or until every recording was released, see below, and
 *     efla_context_synchronize() ran).
 *   - The recorded commands reference efla's pipelines, parameter buffer and
 *     (unless host scratch is given) scratch: the context, the wrapped
 *     buffers' VkBuffers and the host scratch must stay alive until the
 *     command buffer has completed. Command buffers recorded from one
 *     context share its parameter buffer and scratch, so they must execute
 *     in recording order on one queue, never concurrently.
 *   - efla_forward (the core call) on such a context submits to the given
 *     queue itself; the host must not use that queue from another thread at
 *     the same time unless it provides lock_queue/unlock_queue.
 *
 * Descriptor sets (when the host did not enable VK_KHR_push_descriptor, or
 * EFLA_VULKAN_PUSH_DESCRIPTORS=0)
 *   - Each recorded dispatch binds a descriptor set that efla allocates from
 *     pools the context owns. efla cannot see when a host command buffer
 *     completes, so the sets of an efla_vulkan_forward_record call stay
 *     valid, and keep their pool memory, until the host releases that
 *     recording or destroys the context. The rule: take
 *     mark = efla_vulkan_recording_mark() after recording; once every
 *     command buffer holding forwards recorded before the mark has completed
 *     (or was reset or freed without running again), call
 *     efla_vulkan_release_recordings(context, mark). With frames in flight,
 *     take a mark after recording each frame and release it once that
 *     frame's fence has signalled. Without releases, memory grows by a few
 *     descriptor sets per recorded forward.
 *   - Sets of efla's own submissions (efla_forward) are recycled by efla
 *     once their fence has signalled.
 *   With push descriptors nothing is allocated per recording; releasing
 *   every recording also lets scratch memory that a larger request replaced
 *   be freed at the next efla_context_synchronize().
 */
#ifndef EFLA_EFLA_VULKAN_H
#define EFLA_EFLA_VULKAN_H

#include <vulkan/vulkan_core.h>

#include "efla/efla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The host's Vulkan objects. */
typedef struct efla_vulkan_device_info {
    uint32_t struct_size;
    const void *next; /* reserved, must be NULL */
    VkInstance instance;
    VkPhysicalDevice physical_device;
    VkDevice device;
    uint32_t queue_family_index; /* must support compute */
    uint32_t queue_index;
    PFN_vkGetInstanceProcAddr get_instance_proc_addr; /* required */
    /* The device extensions the host enabled; every one that
     * efla_vulkan_required_device_extensions() lists must be among them. */
    uint32_t enabled_extension_count;
    const char *const *enabled_extensions;
    /* Optional: the VkPhysicalDeviceFeatures2 chain the host enabled. efla
     * uses storageBuffer16BitAccess when it is VK_TRUE in a chained
     * VkPhysicalDevice16BitStorageFeatures or VkPhysicalDeviceVulkan11Features;
     * otherwise it reads 16-bit tensors through 32-bit words. */
    const VkPhysicalDeviceFeatures2 *enabled_features;
    /* Optional: a pipeline cache efla creates its pipelines through. */
    VkPipelineCache pipeline_cache;
    /* Optional: called around efla's own vkQueueSubmit calls. */
    void (*lock_queue)(void *user);
    void (*unlock_queue)(void *user);
    void *queue_lock_user;
    /* 0: unbounded. Otherwise each dispatch advances every sequence by at
     * most this many chunks (the chunk size is 16, 32 or 64 tokens; for the
     * recurrent kernel, this many chunks' worth of tokens), so that one
     * dispatch stays short enough to share a frame. */
    uint32_t max_chunks_per_dispatch;
} efla_vulkan_device_info;
#define EFLA_VULKAN_DEVICE_INFO_INIT                                                               \
    { .struct_size = sizeof(efla_vulkan_device_info) }

/* The device extensions a host device must enable for efla (none today;
 * the optional ones are listed under "Typical use" above). */
EFLA_API efla_status efla_vulkan_required_device_extensions(uint32_t *out_count,
                                                            const char *const **out_names);

/* A context on the host's device and queue. `info` may be NULL (defaults);
 * its backend and device_index are ignored. A device without what efla
 * needs is refused with EFLA_ERROR_UNSUPPORTED and a message. */
EFLA_API efla_status efla_vulkan_context_create(const efla_vulkan_device_info *vulkan,
                                                const efla_context_create_info *info,
                                                efla_context *out_context);

/* Wraps [offset, offset + size) of a host VkBuffer (no ownership taken).
 * offset must be a multiple of 4, and the VkBuffer must extend to
 * offset + size rounded up to 4. efla_buffer_destroy never destroys it. */
EFLA_API efla_status efla_vulkan_buffer_wrap(efla_context context, VkBuffer buffer,
                                             VkDeviceSize offset, VkDeviceSize size,
                                             efla_buffer *out_buffer);

/* Where efla_vulkan_forward_record records. */
typedef struct efla_vulkan_record_info {
    uint32_t struct_size;
    const void *next;               /* reserved, must be NULL */
    VkCommandBuffer command_buffer; /* recording, outside a render pass, compute-capable pool */
    /* Optional scratch (usage STORAGE_BUFFER); VK_NULL_HANDLE: the context's. */
    VkBuffer scratch_buffer;
    VkDeviceSize scratch_offset; /* a multiple of 256 */
    VkDeviceSize scratch_size;
} efla_vulkan_record_info;
#define EFLA_VULKAN_RECORD_INFO_INIT                                                               \
    { .struct_size = sizeof(efla_vulkan_record_info) }

/* Scratch bytes a forward needs when recorded with host scratch (0: none). */
EFLA_API efla_status efla_vulkan_forward_scratch_size(efla_context context,
                                                      const efla_forward_desc *desc,
                                                      uint64_t *out_bytes);

/* Validates like efla_forward, then records the forward into
 * record->command_buffer (see the barrier contract above). Nothing is
 * submitted. */
EFLA_API efla_status efla_vulkan_forward_record(efla_context context,
                                                const efla_vulkan_record_info *record,
                                                const efla_forward_desc *desc);

/* A mark covering every forward recorded from `context` so far (the number
 * of efla_vulkan_forward_record calls; see "Descriptor sets" above). */
EFLA_API efla_status efla_vulkan_recording_mark(efla_context context, uint64_t *out_mark);
/* The host says that every command buffer holding forwards recorded before
 * `mark` has completed or will never run again: efla recycles their
 * descriptor sets. A mark beyond efla_vulkan_recording_mark()'s is refused. */
EFLA_API efla_status efla_vulkan_release_recordings(efla_context context, uint64_t mark);

/* What efla uses on a Vulkan device (efla_vulkan_device_features, for
 * efla_device_get_info's index) or on a context (efla_vulkan_context_features). */
#define EFLA_VULKAN_USES_PUSH_DESCRIPTORS (1u << 0) /* else descriptor sets */
#define EFLA_VULKAN_USES_16BIT_STORAGE (1u << 1)    /* else 16-bit values in 32-bit words */
EFLA_API efla_status efla_vulkan_device_features(uint32_t device_index, uint32_t *out_flags);
EFLA_API efla_status efla_vulkan_context_features(efla_context context, uint32_t *out_flags);

#ifdef __cplusplus
}
#endif

#endif /* EFLA_EFLA_VULKAN_H */
