#include "backends/cpu/cpu_pool.h"

#include "core/context.h"
#include "core/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct efla_cpu_pool {
    const efla_allocator *allocator;
    pthread_t *workers;
    uint32_t worker_count;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    uint64_t generation; /* bumped for each parallel_for */
    bool stopping;
    /* the current job */
    efla_task_fn fn;
    void *arg;
    uint32_t count;
    atomic_uint next_task;
    uint32_t busy_workers;
};

/* Claims tasks until none are left; shared by workers and the caller. */
static void run_tasks(efla_cpu_pool *pool) {
    for (;;) {
        unsigned task = atomic_fetch_add(&pool->next_task, 1u);
        if (task >= pool->count) return;
        pool->fn(pool->arg, task);
    }
}

static void *worker_main(void *opaque) {
    efla_cpu_pool *pool = opaque;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && pool->generation == seen)
            pthread_cond_wait(&pool->work_ready, &pool->lock);
        if (pool->stopping) break;
        seen = pool->generation;
        pool->busy_workers++;
        pthread_mutex_unlock(&pool->lock);
        run_tasks(pool);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy_workers == 0) pthread_cond_signal(&pool->work_done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

efla_status efla_cpu_pool_create(uint32_t threads, const efla_allocator *allocator,
                                 efla_cpu_pool **out) {
    efla_cpu_pool *pool = efla_host_alloc(allocator, sizeof *pool);
    if (!pool) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(pool, 0, sizeof *pool);
    pool->allocator = allocator;
    pool->workers = efla_host_alloc(allocator, sizeof(pthread_t) * (threads - 1));
    if (!pool->workers) {
        efla_host_free(allocator, pool);
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->work_done, NULL);
    for (uint32_t i = 0; i + 1 < threads; ++i) {
        if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) break;
        pool->worker_count++;
    }
    *out = pool;
    return EFLA_SUCCESS;
}

void efla_cpu_pool_destroy(efla_cpu_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (uint32_t i = 0; i < pool->worker_count; ++i)
        pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->work_done);
    efla_host_free(pool->allocator, pool->workers);
    efla_host_free(pool->allocator, pool);
}

static void pool_run(efla_cpu_pool *pool, efla_task_fn fn, void *arg, uint32_t count) {
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->count = count;
    atomic_store(&pool->next_task, 0u);
    pool->generation++;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    run_tasks(pool);
    pthread_mutex_lock(&pool->lock);
    /* Workers that woke for this generation finish before we return; a
     * worker that has not woken yet finds no task left. */
    while (pool->busy_workers > 0)
        pthread_cond_wait(&pool->work_done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

void efla_cpu_parallel_for(efla_backend_context *ctx, efla_task_fn fn, void *arg, uint32_t count) {
    if (count == 0) return;
    if (ctx->params.parallel_for) {
        ctx->params.parallel_for(ctx->params.parallel_for_user, fn, arg, count);
    } else if (ctx->pool && count > 1) {
        pool_run(ctx->pool, fn, arg, count);
    } else {
        for (uint32_t i = 0; i < count; ++i)
            fn(arg, i);
    }
}
