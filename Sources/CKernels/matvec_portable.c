// Portable matrix-vector kernels and the bf16 rows-in-fours layout. See include/ckernels.h.
#include "internal.h"

// ---------------------------------------------------------------------------------------------
// Portable kernels

void matvec_bf16_c(const uint16_t *w, const float *x, float *y, int cols, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *row = w + (size_t)r * cols;
        float s = 0;
        for (int c = 0; c < cols; c++) { uint32_t b = (uint32_t)row[c] << 16; float f; memcpy(&f, &b, 4); s += f * x[c]; }
        y[r] = s;
    }
}

// bf16 rows in groups of four, in blocks of X4_BLOCK columns: block b holds the full groups'
// columns [b * X4_BLOCK, b * X4_BLOCK + x4_width(cols, b)), at w + full * X4_BLOCK * b (full = rows
// rounded down to a multiple of 4); the rows after the last full group follow whole, row by row, at
// w + full * cols. A matrix of up to X4_BLOCK columns is one block. The blocks keep a product's
// activations (xe and xo: 8 bytes per column) within L1 while the weights stream: with all 8,192
// columns in one run, one core streamed w2 at 21-24 GB/s against 30-34 for the 2,048-column
// matrices, and 31-32 once w2 was cut into 2,048-column blocks (session 5 microbenchmark).

// One block of bf16 rows in groups of four (w at the block, cols its width, x its columns),
// r0..<r1 multiples of 4 in the full groups.
void bf16x4_rows_c(const uint16_t *w, const float *x, float *y, int cols, int r0, int r1) {
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        float s[4] = {0, 0, 0, 0};
        for (int c = 0; c < cols; c += 32)
            for (int k = 0; k < 4; k++)
                for (int i = 0; i < 32; i++) {
                    uint32_t b = (uint32_t)a[(size_t)c * 4 + 32 * k + i] << 16; float f; memcpy(&f, &b, 4);
                    s[k] += f * x[c + i];
                }
        for (int k = 0; k < 4; k++) y[r + k] = s[k];
    }
}

void matvec_q8_c(const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int cols, int r0, int r1) {
    for (int r = r0; r < r1; r++) y[r] = ck_dot_q8_ref(w + (size_t)r * cols, ws[r], xq, cols);
}


// ---------------------------------------------------------------------------------------------
// bf16 rows in groups of four

void ck_pack_bf16_rows4(const uint16_t *src, uint16_t *dst, int rows, int cols) {
    int full = rows / 4 * 4;
    for (int b = 0; b < x4_blocks(cols); b++) {
        int c0 = b * X4_BLOCK, width = x4_width(cols, b);
        uint16_t *db = dst + (size_t)full * X4_BLOCK * b;
        for (int g = 0; g < full; g += 4)
            for (int c = 0; c < width; c += 32)
                for (int k = 0; k < 4; k++)
                    memcpy(db + (size_t)g * width + (size_t)c * 4 + 32 * k, src + (size_t)(g + k) * cols + c0 + c, 64);
    }
    memcpy(dst + (size_t)full * cols, src + (size_t)full * cols, (size_t)(rows - full) * cols * 2);
}

void ck_convert_bf16_rows4(const uint16_t *w, int rows, int cols, int r0, int r1, float *out) {
    int full = rows / 4 * 4;
    for (int r = r0; r < r1;) {
        float *o = out + (size_t)(r - r0) * cols;
        if (r >= full) { convert_part(w + (size_t)r * cols, o, (size_t)cols); r++; continue; }
        int whole = r % 4 == 0 && r + 4 <= r1;    // the group's four rows at once
        for (int bl = 0; bl < x4_blocks(cols); bl++) {
            int c0 = bl * X4_BLOCK, width = x4_width(cols, bl);
            const uint16_t *g = x4_block(w, rows, bl) + (size_t)(r & ~3) * width;
#if defined(__x86_64__)
            if (whole && ck_has_avx2()) { convert_group4_avx2(g, width, o + c0, (size_t)cols); continue; }
#endif
            for (int k = whole ? 0 : r & 3; k < (whole ? 4 : (r & 3) + 1); k++)
                for (int c = 0; c < width; c += 32) convert_part(g + (size_t)c * 4 + 32 * k, o + (size_t)(k - (r & 3)) * cols + c0 + c, 32);
        }
        r += whole ? 4 : 1;
    }
}
