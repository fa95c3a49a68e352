// Quantizers, the dequantizing references, the GEMM packings and dequantization. See include/ckernels.h.
#include "internal.h"

// ---------------------------------------------------------------------------------------------
// Quantizers

void quantize_q8_blocks_c(const float *x, ck_block_q8 *out, int n) {
    for (int b = 0; b < n / CK_QK; b++) {
        const float *v = x + b * CK_QK;
        float amax = 0;
        for (int i = 0; i < CK_QK; i++) { float a = fabsf(v[i]); if (a > amax) amax = a; }
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0;
        out[b].d = d;
        for (int i = 0; i < CK_QK; i++) out[b].qs[i] = (int8_t)lrintf(v[i] * id);
    }
}

void ck_quantize_row_q8(const float *x, int8_t *q, float *scale, int n) {
    float amax = 0;
    for (int i = 0; i < n; i++) { float a = fabsf(x[i]); if (a > amax) amax = a; }
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0;
    *scale = d;
    for (int i = 0; i < n; i++) { long v = lrintf(x[i] * id); q[i] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v)); }
}

// Where block b of row r of a q4 matrix (rows x nb blocks) keeps its scale and its 16 bytes of
// nibbles. The columns go in groups of 32 blocks (1,024 columns; the last group may be narrower),
// and the matrix holds group 0 of every row, then group 1 of every row, ...; one row's group is
// its blocks' float16 scales first, then their nibbles, so a full group is 64 bytes of scales and
// eight 64-byte lines of four blocks' nibbles (576 bytes). A matrix of up to 1,024 columns is one
// group: its rows one after another. The decode kernel reads one line per step with one 512-bit
// load and keeps one group's activations in registers while it runs down the rows: loading them
// from L1 for every line held a fast memory bus at ~0.78 of its read rate, against ~0.94 without
// those loads (docs/benchmarks.md, session 6). Before, with groups of four blocks (72 bytes) and
// unaligned 32-byte loads, one core ran 24-29 GB/s from cache against 33-41 for 576-byte groups.

float ck_q4_block_scale(const uint8_t *w, int rows, int cols, int r, int b) { return q4_scale(w, rows, cols / CK_QK, r, b); }

void ck_quantize_row_q4(const float *x, uint8_t *w, int rows, int r, int n) {
    int nb = n / CK_QK;
    for (int b = 0; b < nb; b++) {
        const float *v = x + b * CK_QK;
        float amax = 0, m = 0;
        for (int i = 0; i < CK_QK; i++) if (fabsf(v[i]) > amax) { amax = fabsf(v[i]); m = v[i]; }
        uint16_t d16 = ck_fp32_to_fp16(m / -8.0f);
        float d = ck_fp16_to_fp32(d16), id = d != 0 ? 1.0f / d : 0;
        memcpy((uint8_t *)q4_gat(w, rows, nb, r, b / Q4_SG) + 2 * (b % Q4_SG), &d16, 2);
        uint8_t q[CK_QK];
        for (int i = 0; i < CK_QK; i++) {
            int t = (int)floorf(v[i] * id + 8.5f);
            q[i] = (uint8_t)(t < 0 ? 0 : (t > 15 ? 15 : t));
        }
        uint8_t *qs = (uint8_t *)q4_qs_at(w, rows, nb, r, b);
        for (int i = 0; i < 16; i++) qs[i] = (uint8_t)(q[i] | (q[i + 16] << 4));
    }
}

static void dequantize_q8_c(const int8_t *w, const float *wscale, int cols, int r0, int r1, float *out) {
    for (int r = r0; r < r1; r++) {
        const int8_t *row = w + (size_t)r * cols;
        float d = wscale[r], *o = out + (size_t)(r - r0) * cols;
        for (int c = 0; c < cols; c++) o[c] = (float)row[c] * d;
    }
}

static void dequantize_q4_c(const uint8_t *w, int rows, int cols, int r0, int r1, float *out) {
    int nb = cols / CK_QK;
    for (int r = r0; r < r1; r++) {
        float *o = out + (size_t)(r - r0) * cols;
        for (int b = 0; b < nb; b++) {
            float d = q4_scale(w, rows, nb, r, b);
            const uint8_t *qs = q4_qs_at(w, rows, nb, r, b);
            for (int i = 0; i < 16; i++) {
                o[b * CK_QK + i] = (float)((int)(qs[i] & 0x0F) - 8) * d;
                o[b * CK_QK + i + 16] = (float)((int)(qs[i] >> 4) - 8) * d;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// References: dequantize, then multiply in float, summing block by block in order.

// Both the kernels and these references sum products exactly in int32 and then do the same float
// operations in the same order, so the kernels equal the references bit for bit. q8: each block's
// sum, accumulated block by block with fmaf into four chains (block index mod 4), combined at the
// end as (c0 + c2) + (c1 + c3). q4: see ck_dot_q4_ref.
static inline int32_t idot_q8(const int8_t *w, const int8_t *x) {
    int32_t acc = 0;
    for (int i = 0; i < CK_QK; i++) acc += (int32_t)w[i] * x[i];
    return acc;
}

// sum over i in lane of (q_i - off) x_i for a q4 block: its elements 4l..4l+3 and
// 16+4l..16+4l+3 (lane l = 0..3), or all 32 (l = -1); off 8 (the value) or 0 (the raw nibble).
static inline int32_t idot_q4(const uint8_t *qs, const int8_t *x, int l, int off) {
    int32_t acc = 0;
    for (int i = 0; i < 16; i++) {
        if (l >= 0 && i / 4 != l) continue;
        acc += ((int32_t)(qs[i] & 0x0F) - off) * x[i];
        acc += ((int32_t)(qs[i] >> 4) - off) * x[i + 16];
    }
    return acc;
}


static inline float hsum8_ref(const float a[8]) {    // the order of the AVX2 hsum
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

float ck_dot_q8_ref(const int8_t *w, float wscale, const ck_block_q8 *xq, int cols) {
    float c[4] = {0, 0, 0, 0};
    for (int b = 0; b < cols / CK_QK; b++) c[b & 3] = fmaf((float)idot_q8(w + b * CK_QK, xq[b].qs), xq[b].d, c[b & 3]);
    return ((c[0] + c[2]) + (c[1] + c[3])) * wscale;
}

// q4, one row's part of column group s (blocks b0 = 32 s ...). A full group: sixteen float lanes;
// each of its eight lines (blocks b0+4k..b0+4k+3) gives, per block, four lane sums of raw nibble x
// activation (lane l: elements 4l..4l+3 and 16+4l..16+4l+3), block b0+4k+j into lanes 4j..4j+3,
// each by fmaf with (block scale x activation scale); then lane i loses
// fmaf(s[16+i], c8[16+i], s[i] x c8[i]) (s: those scale products of the group's blocks, c8: 8 x
// each activation block's sum, the offset of the nibbles); lane i + 8 is added to lane i and the
// eight combined in the order of the AVX2 horizontal sum. A narrower group (a row's last):
// whole-block sums of (nibble - 8) x activation into one scalar chain.
// Blocks b0..<b1 of row r: whole-block sums of (nibble - 8) x activation, fmaf'd in order with
// (block scale x activation scale) into one chain from 0.
static float q4_chain(const uint8_t *w, int rows, int nb, int r, int b0, int b1, const ck_block_q8 *xq) {
    float t = 0;
    for (int b = b0; b < b1; b++)
        t = fmaf((float)idot_q4(q4_qs_at(w, rows, nb, r, b), xq[b].qs, -1, 8), q4_scale(w, rows, nb, r, b) * xq[b].d, t);
    return t;
}

float q4_group_ref(const uint8_t *w, int rows, int nb, int r, int s, const ck_block_q8 *xq) {
    int b0 = s * Q4_SG, n = q4_gsize(nb, s);
    if (n < Q4_SG) return q4_chain(w, rows, nb, r, b0, b0 + n, xq);
    float acc[16] = {0}, h[8];
    for (int k = 0; k < 8; k++)
        for (int lane = 0; lane < 16; lane++) {
            int blk = b0 + 4 * k + lane / 4;
            float sc = q4_scale(w, rows, nb, r, blk) * xq[blk].d;
            acc[lane] = fmaf((float)idot_q4(q4_qs_at(w, rows, nb, r, blk), xq[blk].qs, lane % 4, 0), sc, acc[lane]);
        }
    for (int i = 0; i < 16; i++) {
        float s0 = q4_scale(w, rows, nb, r, b0 + i) * xq[b0 + i].d, s1 = q4_scale(w, rows, nb, r, b0 + 16 + i) * xq[b0 + 16 + i].d;
        acc[i] -= fmaf(s1, q4_c8(xq + b0 + 16 + i), s0 * q4_c8(xq + b0 + i));
    }
    for (int i = 0; i < 8; i++) h[i] = acc[i] + acc[i + 8];
    return hsum8_ref(h);
}

// A q4 row: its groups' parts added in group order (the first as it is).
float ck_dot_q4_ref(const uint8_t *w, int rows, int r, const ck_block_q8 *xq, int cols) {
    int nb = cols / CK_QK;
    float y = q4_group_ref(w, rows, nb, r, 0, xq);
    for (int s = 1; s < q4_groups(nb); s++) y += q4_group_ref(w, rows, nb, r, s, xq);
    return y;
}

// int8 GEMM (prompts with int8 weights): one output is sw x sum over blocks b, in order, of
// fmaf(sum of the block's int8 products, the block's activation scale, acc) -- the integer sums
// and activation blocks of decoding, summed block by block.
float ck_q8_gemm_ref(const int8_t *w, float wscale, const ck_block_q8 *xq, int cols) {
    float acc = 0;
    for (int b = 0; b < cols / CK_QK; b++) acc = fmaf((float)idot_q8(w + b * CK_QK, xq[b].qs), xq[b].d, acc);
    return acc * wscale;
}

size_t ck_q8_gemm_packed_bytes(int rows, int cols) { return (size_t)((rows + 31) / 32) * 32 * (size_t)cols; }

void ck_q8_gemm_pack(const int8_t *w, int rows, int cols, uint8_t *bp) {
    for (int n0 = 0; n0 < rows; n0 += 32) {
        uint8_t *panel = bp + (size_t)n0 * cols;
        for (int j = 0; j < 32; j++) {
            const int8_t *src = w + (size_t)(n0 + j) * cols;
            for (int c = 0; c < cols; c += 4) {
                uint32_t v = 0x80808080u;                          // a zero weight, as u8
                if (n0 + j < rows) { memcpy(&v, src + c, 4); v ^= 0x80808080u; }   // w + 128
                memcpy(panel + (size_t)c * 32 + 4 * j, &v, 4);
            }
        }
    }
}

void q8p_panel_c(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, float *c, int m, int nb, int ldc, int valid) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < valid; j++) {
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *pb = panel + (size_t)b * 1024 + 4 * j;
                const ck_block_q8 *x = xq + (size_t)i * nb + b;
                int32_t s = 0;
                for (int e = 0; e < CK_QK; e++) s += (int8_t)(pb[128 * (e / 4) + e % 4] ^ 0x80) * x->qs[e];
                acc = fmaf((float)s, x->d, acc);
            }
            c[(size_t)i * ldc + j] = acc * sw[j];
        }
}

void ck_dequantize_q8_panels(const uint8_t *packed, const float *wscale, int cols, int r0, int r1, float *out) {
    for (int r = r0; r < r1; r++) {
        const uint8_t *panel = packed + (size_t)(r / 32) * 32 * cols + 4 * (r % 32);
        for (int c = 0; c < cols; c++)
            out[(size_t)(r - r0) * cols + c] = (float)(int8_t)(panel[(size_t)(c / 4) * 128 + c % 4] ^ 0x80) * wscale[r];
    }
}

// q4 weights in the same GEMM: per block, fmaf(sum of (q - 8) x, weight scale x activation scale,
// acc) in order; no row scale.
float ck_q4_gemm_ref(const uint8_t *w, int rows, int r, const ck_block_q8 *xq, int cols) {
    return q4_chain(w, rows, cols / CK_QK, r, 0, cols / CK_QK, xq);
}

size_t ck_q4_gemm_packed_bytes(int rows, int cols) { return (size_t)((rows + 31) / 32) * 32 * (size_t)(cols / CK_QK) * 36; }

// q4 panels of rows r0..<r1: per block of 32 columns, the q8 layout of its values (q - 8 + 128)
// in 1,024 bytes, then the 32 rows' scales as floats (128 bytes); rows past r1 are zero.
void ck_q4_gemm_pack(const uint8_t *w, int rows, int cols, int r0, int r1, uint8_t *bp) {
    int nb = cols / CK_QK;
    for (int n0 = 0; n0 < r1 - r0; n0 += 32) {
        uint8_t *panel = bp + (size_t)n0 * nb * 36;
        for (int j = 0; j < 32; j++) {
            int r = r0 + n0 + j;
            for (int b = 0; b < nb; b++) {
                uint8_t *blk = panel + (size_t)b * 1152;
                uint8_t v[32];
                float d = 0;
                if (r < r1) {
                    const uint8_t *qs = q4_qs_at(w, rows, nb, r, b);
                    for (int i = 0; i < 16; i++) { v[i] = (uint8_t)((qs[i] & 0x0F) + 120); v[i + 16] = (uint8_t)((qs[i] >> 4) + 120); }
                    d = q4_scale(w, rows, nb, r, b);
                } else memset(v, 128, 32);
                for (int s = 0; s < 8; s++) memcpy(blk + 128 * s + 4 * j, v + 4 * s, 4);
                memcpy(blk + 1024 + 4 * j, &d, 4);
            }
        }
    }
}

// Dequantization for GEMM's weight blocks, 8 (q8) or 32 (q4) values per step.
#if defined(__x86_64__)
AVX2 static void dequantize_q8_avx2(const int8_t *w, const float *wscale, int cols, int r0, int r1, float *out) {
    for (int r = r0; r < r1; r++) {
        const int8_t *row = w + (size_t)r * cols;
        float *o = out + (size_t)(r - r0) * cols;
        __m256 d = _mm256_set1_ps(wscale[r]);
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + c)))), d));
        for (; c < cols; c++) o[c] = (float)row[c] * wscale[r];
    }
}

AVX2 static void dequantize_q4_avx2(const uint8_t *w, int rows, int cols, int r0, int r1, float *out) {
    int nb = cols / CK_QK;
    const __m128i m = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int r = r0; r < r1; r++) {
        float *o = out + (size_t)(r - r0) * cols;
        for (int b = 0; b < nb; b++) {
            __m256 d = _mm256_set1_ps(q4_scale(w, rows, nb, r, b));
            __m128i q = _mm_loadu_si128((const __m128i *)q4_qs_at(w, rows, nb, r, b));
            __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m), eight), hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m), eight);
            float *ob = o + b * CK_QK;
            _mm256_storeu_ps(ob, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
            _mm256_storeu_ps(ob + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
            _mm256_storeu_ps(ob + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
            _mm256_storeu_ps(ob + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
        }
    }
}
#endif

void ck_dequantize_q8(const int8_t *w, const float *wscale, int cols, int r0, int r1, float *out) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { dequantize_q8_avx2(w, wscale, cols, r0, r1, out); return; }
#endif
    dequantize_q8_c(w, wscale, cols, r0, r1, out);
}

void ck_dequantize_q4(const uint8_t *w, int rows, int cols, int r0, int r1, float *out) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { dequantize_q4_avx2(w, rows, cols, r0, r1, out); return; }
#endif
    dequantize_q4_c(w, rows, cols, r0, r1, out);
}
