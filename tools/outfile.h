/* Output files that appear only when everything succeeded: each is
 * written to a unique temporary file in its target's directory and renamed
 * into place at the end; on failure the temporaries are removed and the
 * targets are left as they were. */
#ifndef EFLA_TOOLS_OUTFILE_H
#define EFLA_TOOLS_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct staged_output {
    const char *path; /* the target */
    char *temp_path;  /* the written temporary; NULL when none */
} staged_output;

/* True when the two paths name the same directory entry (after resolving
 * the directories), so writing both would lose one. */
bool same_output_path(const char *a, const char *b);

/* Writes a '<f4' .npy to a temporary next to `path`. Returns a CLI exit
 * code, printing the problem on failure. */
int staged_write_npy(staged_output *out, const char *path, const float *data, uint32_t rank,
                     const int64_t *shape);
/* Renames every staged temporary onto its target. */
int staged_commit(staged_output *outputs, size_t count);
/* Removes the temporaries that were not committed. */
void staged_discard(staged_output *outputs, size_t count);

#endif
