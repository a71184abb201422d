/* The .npy header: a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
#ifndef EFLA_TOOLS_NPY_HEADER_H
#define EFLA_TOOLS_NPY_HEADER_H

#include "npy.h"

#include <stdbool.h>

typedef struct npy_header {
    char descr[16];
    bool fortran_order;
    uint32_t rank;
    int64_t shape[NPY_MAX_RANK];
} npy_header;

/* Parses the header text (not NUL-terminated). On failure writes the
 * problem (without the file name) into err and returns false. */
bool npy_parse_header(const char *text, size_t length, npy_header *out, char *err, size_t err_size);

/* Formats a shape as Python does: "()", "(5,)", "(2, 3)". */
void npy_shape_text(const int64_t *shape, uint32_t rank, char *buf, size_t size);

#endif
