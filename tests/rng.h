/* A small seeded generator for test inputs: splitmix64, uniform and
 * Box-Muller normals. The tests' own, so results replay from a seed alone. */
#ifndef EFLA_TESTS_RNG_H
#define EFLA_TESTS_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct test_rng {
    uint64_t state;
} test_rng;

static inline uint64_t rng_next(test_rng *rng) {
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_uniform(test_rng *rng) {
    return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double rng_range(test_rng *rng, double low, double high) {
    return low + (high - low) * rng_uniform(rng);
}

/* Standard normal (one of the Box-Muller pair; simplicity over speed). */
static inline double rng_normal(test_rng *rng) {
    double u1 = 1.0 - rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static inline uint32_t rng_below(test_rng *rng, uint32_t bound) {
    return (uint32_t)(rng_uniform(rng) * bound);
}

/* Mixes a run seed with a case's identity so each case draws its own data. */
static inline uint64_t rng_derive(uint64_t seed, const char *name, uint64_t salt) {
    uint64_t hash = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *c = name; *c; ++c)
        hash = (hash ^ (unsigned char)*c) * 0x100000001b3ull;
    test_rng rng = {seed ^ hash ^ (salt * 0x9e3779b97f4a7c15ull)};
    return rng_next(&rng);
}

#endif
