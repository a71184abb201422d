/*
 * The copy engine's bulk copies (cp.async.bulk, sm_90+, and the
 * emulator's sm_90 build, EFLA_EMU_BULK: EFLA_BULK) and what they share:
 * shared-memory addresses and the fence between the generic and the async
 * proxy. The state kernel's loads build on these (mma_state.cuh).
 *
 * Here, stores of a staged block from shared to global memory: with
 * EFLA_BULK one thread hands the whole block to the engine and the block
 * goes on with its work while the engine reads the shared memory;
 * elsewhere every thread copies 16-byte pieces. The protocol, the same for
 * both:
 *   1. every thread that wrote the block: proxy_fence(), then a barrier;
 *   2. store_block(...) (all threads call it);
 *   3. before anyone writes that shared memory again: release_stores() by
 *      all threads, then a barrier; and release_stores() before the
 *      kernel returns.
 */
#ifndef EFLA_BULK_STORE_CUH
#define EFLA_BULK_STORE_CUH

#include "mma_rows.cuh"

#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(EFLA_CUDA_EMULATION)) ||           \
    defined(EFLA_EMU_BULK)
#define EFLA_BULK 1
#else
#define EFLA_BULK 0
#endif

namespace {

#if EFLA_BULK && defined(EFLA_CUDA_EMULATION)
EFLA_DEV void proxy_fence() {}
EFLA_DEV void bulk_store(void *to, const void *from, uint32_t bytes) {
    efla_emu_bulk_store(to, from, bytes);
}
EFLA_DEV void release_stores() {
    if (efla_tid() == 0) efla_emu_bulk_store_wait();
}
#elif EFLA_BULK
EFLA_DEV uint32_t shared_address(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
/* Orders this thread's earlier generic accesses of shared memory before
 * its later async-proxy ones (the copy engine's reads or writes). */
EFLA_DEV void proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
EFLA_DEV void bulk_store(void *to, const void *from, uint32_t bytes) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n"
                 "cp.async.bulk.commit_group;\n" ::"l"(to),
                 "r"(shared_address(from)), "r"(bytes)
                 : "memory");
}
/* The issuing thread waits until the engine has read its stores' shared
 * memory (not until they reach global memory). */
EFLA_DEV void release_stores() {
    if (efla_tid() == 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
#else
EFLA_DEV void proxy_fence() {}
EFLA_DEV void release_stores() {}
#endif

/* rows x pitch 16-bit elements, staged at `from` (shared), to `to` (global,
 * the same pitch; both 16-byte aligned, pitch a multiple of 8). The
 * padding columns travel too where the engine copies (the global layout
 * has them); the pieces copy only the first `cols` of each row. */
template <int T>
EFLA_DEV void store_block(uint16_t *to, const uint16_t *from, int rows, int pitch, int cols) {
#if EFLA_BULK
    (void)cols;
    if (efla_tid() == 0) bulk_store(to, from, (uint32_t)(2 * rows * pitch));
#else
    copy_rows<T>(to, pitch, from, pitch, rows, cols);
#endif
}

} // namespace

#endif
