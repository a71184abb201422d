// Writing output rows staged in shared memory. The including shader declares
// `shared float o_stage[]` holding `rows` rows of BV columns, or defines
// O_STAGE(i) as element i of its own stage. Kernels whose
// outputs are not always staged stage them only when STAGED_OUT (16-bit
// values in the word build); the output kernels stage every build.

#ifndef O_STAGE
#define O_STAGE(i) o_stage[i]
#endif

#ifdef EFLA_STORAGE16
// 16-bit storage: every element is stored by itself.
void store_output_rows(uint b, uint tok0, uint hv, uint col0, uint rows, uint ncol) {
    for (uint e = gl_LocalInvocationIndex; e < rows * BV; e += WG) {
        uint r = e / BV, j = e % BV;
        if (j < ncol) store_out(vidx(P.o, b, tok0 + r, hv, col0 + j), O_STAGE(e));
    }
}
#else
// Output row r of the stage goes to out[b, tok0 + r, hv, col0 .. col0 + ncol).
void store_output_rows(uint b, uint tok0, uint hv, uint col0, uint rows, uint ncol) {
    uint t = gl_LocalInvocationIndex;
    if (DTYPE == 0u) {
        for (uint e = t; e < rows * BV; e += WG) {
            uint r = e / BV, j = e % BV;
            if (j < ncol) store_out(vidx(P.o, b, tok0 + r, hv, col0 + j), O_STAGE(e));
        }
        return;
    }
    // 16-bit: slot s of a row covers the word holding columns 2s - odd and
    // 2s - odd + 1 (odd: the row starts in the upper half of a word). A word
    // whose two halves are both this row's columns is written whole.
    uint slots = (ncol + 2u) / 2u;
    for (uint e = t; e < rows * slots; e += WG) {
        uint r = e / slots, s = e % slots;
        uint idx0 = vidx(P.o, b, tok0 + r, hv, col0);
        if (P.o.s3 == 1u) {
            uint odd = idx0 & 1u;
            int ja = int(2u * s) - int(odd);
            int jb = ja + 1;
            bool va = ja >= 0 && ja < int(ncol);
            bool vb = jb < int(ncol);
            if (va && vb) {
                uint lo = encode16(O_STAGE(r * BV + uint(ja)));
                uint hi = encode16(O_STAGE(r * BV + uint(jb)));
                o_w[(idx0 + uint(ja)) >> 1] = lo | (hi << 16);
            } else if (va) {
                store_half_merge(idx0 + uint(ja), encode16(O_STAGE(r * BV + uint(ja))));
            } else if (vb) {
                store_half_merge(idx0 + uint(jb), encode16(O_STAGE(r * BV + uint(jb))));
            }
        } else {
            for (uint j = 2u * s; j < min(2u * s + 2u, ncol); ++j)
                store_half_merge(idx0 + j * P.o.s3, encode16(O_STAGE(r * BV + j)));
        }
    }
}
#endif
