/*
 * A small SIMT emulator: runs a kernel's blocks one after another, each
 * CUDA thread of a block a ucontext fiber. Fibers run until they reach a
 * barrier (__syncthreads or a warp collective), in an order shuffled by a
 * seed (EFLA_EMU_SEED), so that missing barriers change results. Shared
 * memory starts as NaN, so reads of unwritten shared memory show up.
 * Deadlocks (threads waiting on different barriers) abort with a message.
 */
#include "emu_runtime.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <ucontext.h>
#include <vector>

namespace {

constexpr size_t kStackBytes = 256 * 1024;

enum class State { ready, block_wait, warp_wait, named_wait, done };

constexpr int kNamedBarriers = 16;

struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    State state = State::ready;
    int named = 0; /* the named barrier waited at */
};

/* A bulk copy issued but not landed yet. */
struct PendingCopy {
    void *to;
    const void *from;
    uint32_t bytes;
};
/* An emulated mbarrier: arrivals and copy bytes still owed by its
 * current phase, the phases completed, and copies not yet landed. */
struct MBarrier {
    uint32_t arrivals = 0, pending = 0;
    int64_t bytes = 0;
    uint32_t phases = 0;
    std::vector<PendingCopy> copies;
};

struct Block {
    int threads = 0;
    int64_t index[2] = {0, 0};
    std::vector<Fiber> *fibers = nullptr;
    int current = 0;
    int block_arrived = 0;
    int warp_arrived[32] = {};
    int named_arrived[kNamedBarriers] = {}, named_count[kNamedBarriers] = {};
    std::vector<unsigned char> shared;
    std::vector<unsigned char> exchange; /* [32 warps][32 lanes][kSlot] */
    std::map<void *, MBarrier> barriers; /* by address in shared memory */
    std::vector<PendingCopy> stores;     /* bulk stores not yet read */
    efla_emu_kernel_fn kernel = nullptr;
    efla_cuda_params params;
    ucontext_t scheduler;
};

constexpr size_t kSlot = 64;

Block *g_block = nullptr;
std::vector<Fiber> g_fibers;
uint64_t g_rng = 0;

struct KernelInfo {
    efla_emu_kernel_fn fn;
    int max_threads;
};

std::map<std::string, KernelInfo> &registry() {
    static std::map<std::string, KernelInfo> kernels;
    return kernels;
}

uint64_t next_random() {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "efla CUDA emulator: %s\n", what);
    std::abort();
}

Fiber &self() { return (*g_block->fibers)[g_block->current]; }

int alive_in_warp(int warp) {
    int alive = 0;
    for (int t = warp * 32; t < warp * 32 + 32 && t < g_block->threads; ++t)
        if ((*g_block->fibers)[t].state != State::done) ++alive;
    return alive;
}

int alive_in_block() {
    int alive = 0;
    for (int t = 0; t < g_block->threads; ++t)
        if ((*g_block->fibers)[t].state != State::done) ++alive;
    return alive;
}

/* Releases the barriers every live thread has reached. */
void release_complete_barriers() {
    if (g_block->block_arrived > 0 && g_block->block_arrived == alive_in_block()) {
        for (int t = 0; t < g_block->threads; ++t)
            if ((*g_block->fibers)[t].state == State::block_wait)
                (*g_block->fibers)[t].state = State::ready;
        g_block->block_arrived = 0;
    }
    for (int id = 0; id < kNamedBarriers; ++id) {
        if (g_block->named_arrived[id] == 0 ||
            g_block->named_arrived[id] < g_block->named_count[id])
            continue;
        for (int t = 0; t < g_block->threads; ++t) {
            Fiber &fiber = (*g_block->fibers)[t];
            if (fiber.state == State::named_wait && fiber.named == id) fiber.state = State::ready;
        }
        g_block->named_arrived[id] = 0;
    }
    for (int w = 0; w * 32 < g_block->threads; ++w) {
        if (g_block->warp_arrived[w] == 0 || g_block->warp_arrived[w] != alive_in_warp(w)) continue;
        for (int t = w * 32; t < w * 32 + 32 && t < g_block->threads; ++t)
            if ((*g_block->fibers)[t].state == State::warp_wait)
                (*g_block->fibers)[t].state = State::ready;
        g_block->warp_arrived[w] = 0;
    }
}

void wait(State state) {
    Fiber &fiber = self();
    fiber.state = state;
    if (state == State::block_wait)
        ++g_block->block_arrived;
    else if (state == State::named_wait)
        ++g_block->named_arrived[fiber.named];
    else
        ++g_block->warp_arrived[g_block->current / 32];
    release_complete_barriers();
    if (fiber.state != State::ready) swapcontext(&fiber.context, &g_block->scheduler);
}

/* Lets the other ready fibers run before this one goes on. */
void yield() {
    Fiber &fiber = self();
    swapcontext(&fiber.context, &g_block->scheduler);
}

MBarrier &mbarrier(void *bar) {
    auto it = g_block->barriers.find(bar);
    if (it == g_block->barriers.end()) die("mbarrier used before its init");
    return it->second;
}

void complete_phase_if_done(MBarrier &b) {
    if (b.pending > 0 || b.bytes > 0) return;
    if (b.bytes < 0) die("mbarrier: more bytes arrived than expected");
    ++b.phases;
    b.pending = b.arrivals;
}

void land(MBarrier &b, const PendingCopy &copy) {
    std::memcpy(copy.to, copy.from, copy.bytes);
    b.bytes -= copy.bytes;
    complete_phase_if_done(b);
}

void fiber_main() {
    g_block->kernel(g_block->params);
    self().state = State::done;
    release_complete_barriers();
    /* returning resumes uc_link: the scheduler */
}

void run_block(Block &block) {
    g_block = &block;
    block.fibers = &g_fibers;
    if ((int)g_fibers.size() < block.threads) g_fibers.resize(block.threads);
    for (int t = 0; t < block.threads; ++t) {
        Fiber &fiber = g_fibers[t];
        if (fiber.stack.empty()) fiber.stack.resize(kStackBytes);
        fiber.state = State::ready;
        getcontext(&fiber.context);
        fiber.context.uc_stack.ss_sp = fiber.stack.data();
        fiber.context.uc_stack.ss_size = fiber.stack.size();
        fiber.context.uc_link = &block.scheduler;
        makecontext(&fiber.context, fiber_main, 0);
    }
    std::vector<int> order(block.threads);
    for (;;) {
        int ready = 0, done = 0;
        for (int t = 0; t < block.threads; ++t) {
            if (g_fibers[t].state == State::ready) order[ready++] = t;
            if (g_fibers[t].state == State::done) ++done;
        }
        if (done == block.threads) break;
        if (ready == 0)
            die("deadlock: threads wait at different barriers (divergent __syncthreads?)");
        for (int i = ready - 1; i > 0; --i) {
            int j = (int)(next_random() % (uint64_t)(i + 1));
            int swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
        for (int i = 0; i < ready; ++i) {
            int t = order[i];
            if (g_fibers[t].state != State::ready) continue;
            block.current = t;
            swapcontext(&block.scheduler, &g_fibers[t].context);
        }
    }
    if (!block.stores.empty()) die("a bulk store was never waited for");
    g_block = nullptr;
}

} // namespace

efla_emu_registration::efla_emu_registration(const char *name, efla_emu_kernel_fn fn,
                                             int max_threads) {
    registry()[name] = KernelInfo{fn, max_threads};
}

int efla_emu_thread_index() { return g_block->current; }
int64_t efla_emu_block_index(int axis) { return g_block->index[axis]; }
void efla_emu_barrier() { wait(State::block_wait); }

void efla_emu_named_barrier(int id, int threads) {
    if (id < 0 || id >= kNamedBarriers || threads <= 0 || threads % 32 ||
        threads > g_block->threads)
        die("named barrier: bad id or thread count");
    if (g_block->named_arrived[id] > 0 && g_block->named_count[id] != threads)
        die("named barrier: thread counts differ between its threads");
    g_block->named_count[id] = threads;
    self().named = id;
    wait(State::named_wait);
}
float *efla_emu_shared() { return reinterpret_cast<float *>(g_block->shared.data()); }

void efla_emu_warp_exchange(const void *mine, void *all, size_t bytes) {
    if (bytes > kSlot) die("warp exchange too large");
    const int warp = g_block->current / 32, lane = g_block->current % 32;
    unsigned char *slots = g_block->exchange.data() + (size_t)warp * 32 * kSlot;
    std::memcpy(slots + lane * kSlot, mine, bytes);
    wait(State::warp_wait);
    for (int l = 0; l < 32; ++l)
        std::memcpy(static_cast<unsigned char *>(all) + l * bytes, slots + l * kSlot, bytes);
    wait(State::warp_wait); /* nobody overwrites a slot before all have read it */
}

void efla_emu_mbarrier_init(void *bar, uint32_t arrivals) {
    MBarrier &b = g_block->barriers[bar];
    b = MBarrier();
    b.arrivals = b.pending = arrivals;
}

void efla_emu_mbarrier_arrive(void *bar, uint32_t bytes) {
    MBarrier &b = mbarrier(bar);
    if (b.pending == 0) die("mbarrier: more arrivals than its count");
    b.bytes += bytes;
    --b.pending;
    complete_phase_if_done(b);
}

void efla_emu_bulk_copy(void *to, const void *from, uint32_t bytes, void *bar) {
    MBarrier &b = mbarrier(bar);
    if (bytes % 16 || (uintptr_t)to % 16 || (uintptr_t)from % 16)
        die("bulk copy: size or an address not a multiple of 16");
    const PendingCopy copy = {to, from, bytes};
    if (next_random() % 2)
        land(b, copy);
    else
        b.copies.push_back(copy);
}

void efla_emu_bulk_store(void *to, const void *from, uint32_t bytes) {
    if (bytes % 16 || (uintptr_t)to % 16 || (uintptr_t)from % 16)
        die("bulk store: size or an address not a multiple of 16");
    const PendingCopy store = {to, from, bytes};
    if (next_random() % 2)
        std::memcpy(to, from, bytes);
    else
        g_block->stores.push_back(store);
}

void efla_emu_bulk_store_wait() {
    for (const PendingCopy &store : g_block->stores)
        std::memcpy(store.to, store.from, store.bytes);
    g_block->stores.clear();
}

/* The phase with this parity is complete when the phase in progress has
 * the other parity. */
void efla_emu_mbarrier_wait(void *bar, uint32_t parity) {
    for (long spins = 0;; ++spins) {
        MBarrier &b = mbarrier(bar);
        if ((b.phases & 1u) != (parity & 1u)) return;
        if (!b.copies.empty()) {
            std::vector<PendingCopy> copies;
            copies.swap(b.copies);
            for (const PendingCopy &copy : copies)
                land(b, copy);
            continue;
        }
        if (spins > 1000000) die("deadlock: an mbarrier wait never completes");
        yield();
    }
}

bool efla_emu_find_kernel(const char *name, efla_emu_kernel_fn *fn, int *max_threads) {
    auto it = registry().find(name);
    if (it == registry().end()) return false;
    *fn = it->second.fn;
    *max_threads = it->second.max_threads;
    return true;
}

void efla_emu_launch(efla_emu_kernel_fn fn, unsigned grid_x, unsigned grid_y, unsigned threads,
                     unsigned shared_bytes, const efla_cuda_params *params) {
    if (!g_rng) {
        const char *seed = std::getenv("EFLA_EMU_SEED");
        g_rng = seed ? std::strtoull(seed, nullptr, 10) * 2654435761u + 1 : 88172645463325252ull;
    }
    if (threads % 32) die("block size is not a multiple of 32");
    Block block;
    block.threads = (int)threads;
    block.kernel = fn;
    block.params = *params;
    block.exchange.resize((size_t)32 * 32 * kSlot);
    for (unsigned y = 0; y < grid_y; ++y)
        for (unsigned x = 0; x < grid_x; ++x) {
            block.index[0] = x;
            block.index[1] = y;
            block.shared.assign(shared_bytes + 16, 0xff); /* NaN until written */
            block.barriers.clear();
            run_block(block);
        }
}
