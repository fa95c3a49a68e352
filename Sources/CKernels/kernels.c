// See include/ckernels.h. AVX2 versions carry target attributes and are chosen at run time
// (ck_has_avx2), so the library also runs, slower, on a CPU without AVX2.
#include "ckernels.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---------------------------------------------------------------------------------------------
// float16

float ck_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {                                   // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3FF;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) bits = sign | 0x7F800000 | (man << 13);
    else bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    float f; memcpy(&f, &bits, 4); return f;
}

uint16_t ck_fp32_to_fp16(float f) {            // round to nearest even
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xFF) - 127 + 15;
    uint32_t man = x & 0x7FFFFF;
    if (((x >> 23) & 0xFF) == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7C00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = 1u << (shift - 1), rest = man & ((1u << shift) - 1), q = man >> shift;
        if (rest > half || (rest == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = man >> 13, rest = man & 0x1FFF;
    uint16_t h = (uint16_t)(sign | ((uint32_t)exp << 10) | q);
    if (rest > 0x1000 || (rest == 0x1000 && (q & 1))) h++;
    return h;
}

// ---------------------------------------------------------------------------------------------
// CPU features

// The best instruction set of this CPU: 2 = AVX-512 with VNNI (avx512f/bw/vl/vnni), 1 = AVX2 + FMA
// + F16C, 0 = portable C. Each thread may cap it (ck_set_isa_limit); pool jobs run at their
// caller's level.
static int isa_machine(void) {
#if defined(__x86_64__)
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
        v = avx512 ? 2 : (avx2 ? 1 : 0);
        // INTERNVL_CHAT_ISA=c|avx2 caps the whole process (benchmarks compare the levels).
        const char *e = getenv("INTERNVL_CHAT_ISA");
        if (e && strcmp(e, "c") == 0) v = 0;
        else if (e && strcmp(e, "avx2") == 0 && v > 1) v = 1;
    }
    return v;
#else
    return 0;
#endif
}

static _Thread_local int isa_cap = 2;

int ck_isa(void) { int m = isa_machine(); return m < isa_cap ? m : isa_cap; }
void ck_set_isa_limit(int level) { isa_cap = level < 0 ? 0 : level; }
int ck_has_avx2(void) { return ck_isa() >= 1; }
static int has_avx512(void) { return ck_isa() >= 2; }

// ---------------------------------------------------------------------------------------------
// Quantizers

static void quantize_q8_blocks_c(const float *x, ck_block_q8 *out, int n) {
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
#define Q4_SG 32
static inline int q4_groups(int nb) { return (nb + Q4_SG - 1) / Q4_SG; }
static inline int q4_gsize(int nb, int s) { int left = nb - s * Q4_SG; return left < Q4_SG ? left : Q4_SG; }
static inline const uint8_t *q4_gat(const uint8_t *w, int rows, int nb, int r, int s) {
    return w + (size_t)s * rows * (Q4_SG * 18) + (size_t)r * q4_gsize(nb, s) * 18;
}
static inline const uint8_t *q4_qs_at(const uint8_t *w, int rows, int nb, int r, int b) {
    int s = b / Q4_SG;
    return q4_gat(w, rows, nb, r, s) + 2 * q4_gsize(nb, s) + 16 * (b % Q4_SG);
}
static inline float q4_scale(const uint8_t *w, int rows, int nb, int r, int b) {
    uint16_t d; memcpy(&d, q4_gat(w, rows, nb, r, b / Q4_SG) + 2 * (b % Q4_SG), 2); return ck_fp16_to_fp32(d);
}

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

// 8 x the sum of an activation block's 32 values, as a float (exact): the nibbles' offset.
static inline float q4_c8(const ck_block_q8 *xb) {
    int32_t t = 0;
    for (int i = 0; i < CK_QK; i++) t += xb->qs[i];
    return (float)(8 * t);
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

static float q4_group_ref(const uint8_t *w, int rows, int nb, int r, int s, const ck_block_q8 *xq) {
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

// ---------------------------------------------------------------------------------------------
// Portable kernels

static void matvec_bf16_c(const uint16_t *w, const float *x, float *y, int cols, int r0, int r1) {
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
#define X4_BLOCK 2048
static inline int x4_blocks(int cols) { return (cols + X4_BLOCK - 1) / X4_BLOCK; }
static inline int x4_width(int cols, int b) { int rest = cols - b * X4_BLOCK; return rest < X4_BLOCK ? rest : X4_BLOCK; }
static inline const uint16_t *x4_block(const uint16_t *w, int rows, int b) { return w + (size_t)(rows / 4 * 4) * X4_BLOCK * b; }

// One block of bf16 rows in groups of four (w at the block, cols its width, x its columns),
// r0..<r1 multiples of 4 in the full groups.
static void bf16x4_rows_c(const uint16_t *w, const float *x, float *y, int cols, int r0, int r1) {
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

static void matvec_q8_c(const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int cols, int r0, int r1) {
    for (int r = r0; r < r1; r++) y[r] = ck_dot_q8_ref(w + (size_t)r * cols, ws[r], xq, cols);
}

// ---------------------------------------------------------------------------------------------
// AVX2 kernels

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Columns from..<cols of a bf16 row against x, in scalar code (the vector loops' tails).
static inline float bf16_tail(const uint16_t *a, const float *x, int from, int cols) {
    float s = 0;
    for (int c = from; c < cols; c++) { uint32_t ua = (uint32_t)a[c] << 16; float fa; memcpy(&fa, &ua, 4); s += fa * x[c]; }
    return s;
}

// 16 bf16 weights per 256-bit load: the 32-bit lane j holds elements 2j (low half) and 2j+1
// (high half), so a shift gives the even elements as floats and a mask the odd ones; x comes
// de-interleaved (xe = x[0::2], xo = x[1::2], cols16 / 2 each). One row at a time (a single
// stream suits the prefetcher: 25 GB/s on one core against 17 with four rows interleaved).
AVX2 static void bf16_rows_avx2(const uint16_t *w, const float *xe, const float *xo, const float *x, float *y,
                                int cols, int r0, int r1) {
    int c32 = cols & ~31;
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r++) {
        const uint16_t *a = w + (size_t)r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < c32; c += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(a + c)), u = _mm256_loadu_si256((const __m256i *)(a + c + 16));
            a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(xe + c / 2), a0);
            a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), _mm256_loadu_ps(xo + c / 2), a1);
            a2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)), _mm256_loadu_ps(xe + c / 2 + 8), a2);
            a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(u, hi)), _mm256_loadu_ps(xo + c / 2 + 8), a3);
        }
        float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        y[r] = s + bf16_tail(a, x, c32, cols);
    }
}

// The same with 32 weights per 512-bit load (fewer instructions per byte: this loop is what keeps
// the memory stream busy). Column tails beyond the last 64 in scalar code.
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
AVX512 static void bf16_rows_avx512(const uint16_t *w, const float *xe, const float *xo, const float *x, float *y,
                                    int cols, int r0, int r1) {
    int c64 = cols & ~63;
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r++) {
        const uint16_t *a = w + (size_t)r * cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < c64; c += 64) {
            __m512i v = _mm512_loadu_si512((const void *)(a + c)), u = _mm512_loadu_si512((const void *)(a + c + 32));
            a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(xe + c / 2), a0);
            a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), _mm512_loadu_ps(xo + c / 2), a1);
            a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(u, 16)), _mm512_loadu_ps(xe + c / 2 + 16), a2);
            a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(u, hi)), _mm512_loadu_ps(xo + c / 2 + 16), a3);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        y[r] = s + bf16_tail(a, x, c64, cols);
    }
}

static void bf16_rows(const uint16_t *w, const float *xe, const float *xo, const float *x, float *y, int cols, int r0, int r1) {
    if (has_avx512()) bf16_rows_avx512(w, xe, xo, x, y, cols, r0, r1);
    else bf16_rows_avx2(w, xe, xo, x, y, cols, r0, r1);
}

static void deinterleave(const float *x, int cols, float *xe, float *xo) {
    for (int i = 0; i < (cols & ~31) / 2; i++) { xe[i] = x[2 * i]; xo[i] = x[2 * i + 1]; }
}

// bf16 rows in groups of four (ck_pack_bf16_rows4): rows r0..<r1 (multiples of 4, inside the
// full groups). Per chunk of 32 columns the four rows' 64-byte pieces come one after another, so
// one stream feeds four dot products and each activation load serves four rows (one core streams
// ~25% more bytes per second than with the row-by-row loop, which is what the memory bus needs
// from each of two cores). Two accumulators per row.
AVX2 static void bf16x4_rows_avx2(const uint16_t *w, const float *xe, const float *xo, float *y, int cols, int r0, int r1) {
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        __m256 acc[8];
        for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
        for (int c = 0; c < cols; c += 32) {
            const uint16_t *b = a + (size_t)c * 4;
            __m256 e0 = _mm256_loadu_ps(xe + c / 2), o0 = _mm256_loadu_ps(xo + c / 2);
            __m256 e1 = _mm256_loadu_ps(xe + c / 2 + 8), o1 = _mm256_loadu_ps(xo + c / 2 + 8);
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(b + 32 * k)), u = _mm256_loadu_si256((const __m256i *)(b + 32 * k + 16));
                acc[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), e0, acc[2 * k]);
                acc[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), o0, acc[2 * k + 1]);
                acc[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)), e1, acc[2 * k]);
                acc[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(u, hi)), o1, acc[2 * k + 1]);
            }
        }
        for (int k = 0; k < 4; k++) y[r + k] = hsum(_mm256_add_ps(acc[2 * k], acc[2 * k + 1]));
    }
}

AVX512 static void bf16x4_rows_avx512(const uint16_t *w, const float *xe, const float *xo, float *y, int cols, int r0, int r1) {
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        __m512 acc[8];
        for (int k = 0; k < 8; k++) acc[k] = _mm512_setzero_ps();
        for (int c = 0; c < cols; c += 32) {
            const uint16_t *b = a + (size_t)c * 4;
            __m512 e = _mm512_loadu_ps(xe + c / 2), o = _mm512_loadu_ps(xo + c / 2);
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(b + 32 * k));
                acc[2 * k] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), e, acc[2 * k]);
                acc[2 * k + 1] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), o, acc[2 * k + 1]);
            }
        }
        for (int k = 0; k < 4; k++) y[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[2 * k], acc[2 * k + 1]));
    }
}

// Four rows of a group as floats: o0 + k * ld is row k.
AVX2 static void convert_group4_avx2(const uint16_t *a, int cols, float *o0, size_t ld) {
    for (int c = 0; c < cols; c += 32)
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 32; i += 8)
                _mm256_storeu_ps(o0 + k * ld + c + i, _mm256_castsi256_ps(_mm256_slli_epi32(
                    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(a + (size_t)c * 4 + 32 * k + i))), 16)));
}

// Sum of products of 32 signed bytes, as 8 int32 lanes (|x| * sign-adjusted w: maddubs wants one
// unsigned operand; |w|, |x| <= 127 keeps the pairwise sums inside int16).
AVX2 static inline __m256i dot32(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}


// The int32 sums of four blocks' products, as one vector [b0, b1, b2, b3].
AVX2 static inline __m128i sum4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

AVX2 static inline float finish4(__m128 c) {             // (c0 + c2) + (c1 + c3)
    __m128 t = _mm_add_ps(c, _mm_movehl_ps(c, c));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

#define XD4(b) _mm_set_ps(xq[(b) + 3].d, xq[(b) + 2].d, xq[(b) + 1].d, xq[(b)].d)
#define XQ(b) _mm256_loadu_si256((const __m256i *)xq[(b)].qs)

AVX2 static void matvec_q8_avx2(const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int cols, int r0, int r1) {
    int nb = cols / CK_QK;
    if (nb % 4) { matvec_q8_c(w, ws, xq, y, cols, r0, r1); return; }
    for (int r = r0; r < r1; r++) {
        const int8_t *row = w + (size_t)r * cols;
        __m128 c = _mm_setzero_ps();
        for (int b = 0; b < nb; b += 4) {
            const __m256i *q = (const __m256i *)(row + b * CK_QK);
            __m128i s4 = sum4(dot32(_mm256_loadu_si256(q), XQ(b)), dot32(_mm256_loadu_si256(q + 1), XQ(b + 1)),
                              dot32(_mm256_loadu_si256(q + 2), XQ(b + 2)), dot32(_mm256_loadu_si256(q + 3), XQ(b + 3)));
            c = _mm_fmadd_ps(_mm_cvtepi32_ps(s4), XD4(b), c);
        }
        y[r] = finish4(c) * ws[r];
    }
}

// AVX-512 VNNI (256-bit forms): vpdpbusd does maddubs + madd in one instruction without the int16
// step; the integer sums, and so the results, are those of the AVX2 kernels bit for bit.
AVX512 static inline __m256i dot32_vnni(__m256i w, __m256i x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
}

AVX512 static void matvec_q8_vnni(const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int cols, int r0, int r1) {
    int nb = cols / CK_QK;
    for (int r = r0; r < r1; r++) {
        const int8_t *row = w + (size_t)r * cols;
        __m128 c = _mm_setzero_ps();
        for (int b = 0; b < nb; b += 4) {
            const __m256i *q = (const __m256i *)(row + b * CK_QK);
            __m128i s4 = sum4(dot32_vnni(_mm256_loadu_si256(q), XQ(b)), dot32_vnni(_mm256_loadu_si256(q + 1), XQ(b + 1)),
                              dot32_vnni(_mm256_loadu_si256(q + 2), XQ(b + 2)), dot32_vnni(_mm256_loadu_si256(q + 3), XQ(b + 3)));
            c = _mm_fmadd_ps(_mm_cvtepi32_ps(s4), XD4(b), c);
        }
        y[r] = finish4(c) * ws[r];
    }
}

// q4, per product: the activations of each line of a full column group (four blocks) arranged as
// the nibbles come out of the line: `lo` = elements 0..15 of each block in turn (the low nibbles),
// `hi` = elements 16..31 of each. Per block of the full groups: xd, the activation scale, and c8,
// 8 x the sum of its activations (the nibbles' offset). 64-byte aligned, as the loads.
typedef struct q4_xline_s { int8_t lo[64]; int8_t hi[64]; } q4_xline;     // 128 bytes

static void q4_prepare_x(const ck_block_q8 *xq, int full, q4_xline *xl, float *xd, float *c8) {
    for (int l = 0; l < full / 4; l++)
        for (int j = 0; j < 4; j++) {
            memcpy(xl[l].lo + 16 * j, xq[4 * l + j].qs, 16);
            memcpy(xl[l].hi + 16 * j, xq[4 * l + j].qs + 16, 16);
        }
    for (int b = 0; b < full; b++) { xd[b] = xq[b].d; c8[b] = q4_c8(xq + b); }
}

// acc + (unsigned nibbles . signed activations), four products per int32 lane.
AVX2 static inline __m256i dot_u8s8_avx2(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

// One full column group g (its first block b0) of rows r0..<r1 (w: the group, rows of 576 bytes;
// xl, xd, c8 at the group's first line / block), as q4_group_ref. AVX2: each line in two 32-byte
// halves (blocks 4k, 4k+1 into lanes 0-7 of acc0; 4k+2, 4k+3 into those of acc1, the reference's
// lanes 8-15), the line's four scales by one 8-byte load, the activations loaded per line.
AVX2 static void q4_group_avx2(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1) {
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i i01 = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0), i23 = _mm256_set_epi32(3, 3, 3, 3, 2, 2, 2, 2);
    for (int r = r0; r < r1; r++) {
        const uint8_t *g = w + (size_t)r * (Q4_SG * 18), *qs = g + 64;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (int k = 0; k < 8; k++) {
            const q4_xline *x = xl + k;
            __m256 sc = _mm256_castps128_ps256(_mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(g + 8 * k))), _mm_loadu_ps(xd + 4 * k)));
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(qs + 64 * k)), v1 = _mm256_loadu_si256((const __m256i *)(qs + 64 * k + 32));
            __m256i a = dot_u8s8_avx2(dot_u8s8_avx2(_mm256_setzero_si256(), _mm256_and_si256(v0, m), _mm256_loadu_si256((const __m256i *)x->lo)),
                                      _mm256_and_si256(_mm256_srli_epi16(v0, 4), m), _mm256_loadu_si256((const __m256i *)x->hi));
            __m256i c = dot_u8s8_avx2(dot_u8s8_avx2(_mm256_setzero_si256(), _mm256_and_si256(v1, m), _mm256_loadu_si256((const __m256i *)(x->lo + 32))),
                                      _mm256_and_si256(_mm256_srli_epi16(v1, 4), m), _mm256_loadu_si256((const __m256i *)(x->hi + 32)));
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_permutevar8x32_ps(sc, i01), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), _mm256_permutevar8x32_ps(sc, i23), acc1);
        }
        __m256 s0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g)), _mm256_loadu_ps(xd));
        __m256 s0h = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 16))), _mm256_loadu_ps(xd + 8));
        __m256 s1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 32))), _mm256_loadu_ps(xd + 16));
        __m256 s1h = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 48))), _mm256_loadu_ps(xd + 24));
        acc0 = _mm256_sub_ps(acc0, _mm256_fmadd_ps(s1, _mm256_loadu_ps(c8 + 16), _mm256_mul_ps(s0, _mm256_loadu_ps(c8))));
        acc1 = _mm256_sub_ps(acc1, _mm256_fmadd_ps(s1h, _mm256_loadu_ps(c8 + 24), _mm256_mul_ps(s0h, _mm256_loadu_ps(c8 + 8))));
        y[r] = hsum(_mm256_add_ps(acc0, acc1));
    }
}

// AVX-512 VNNI: the group's activations (16 registers) loaded once for all the rows; per row, the
// 32 scales x activation scales by two conversions, then per line one 512-bit load, two
// vpdpbusd, each line's four scales spread over its 16 lanes by a permutation.
AVX512 static void q4_group_avx512(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1) {
    const __m512i m = _mm512_set1_epi8(0x0F);
    const __m512i sp0 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),    // lanes 4j..4j+3 <- scale 4q + j
                  sp1 = _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4),
                  sp2 = _mm512_set_epi32(11, 11, 11, 11, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8),
                  sp3 = _mm512_set_epi32(15, 15, 15, 15, 14, 14, 14, 14, 13, 13, 13, 13, 12, 12, 12, 12);
    const __m512i l0 = _mm512_load_si512(xl[0].lo), h0 = _mm512_load_si512(xl[0].hi), l1 = _mm512_load_si512(xl[1].lo), h1 = _mm512_load_si512(xl[1].hi),
                  l2 = _mm512_load_si512(xl[2].lo), h2 = _mm512_load_si512(xl[2].hi), l3 = _mm512_load_si512(xl[3].lo), h3 = _mm512_load_si512(xl[3].hi),
                  l4 = _mm512_load_si512(xl[4].lo), h4 = _mm512_load_si512(xl[4].hi), l5 = _mm512_load_si512(xl[5].lo), h5 = _mm512_load_si512(xl[5].hi),
                  l6 = _mm512_load_si512(xl[6].lo), h6 = _mm512_load_si512(xl[6].hi), l7 = _mm512_load_si512(xl[7].lo), h7 = _mm512_load_si512(xl[7].hi);
#define Q4_LINE(K, LO, HI, SP, S)                                                                          \
    {   __m512i v = _mm512_loadu_si512((const void *)(qs + 64 * (K)));                                     \
        __m512i a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, m), LO);               \
        a = _mm512_dpbusd_epi32(a, _mm512_and_si512(_mm512_srli_epi16(v, 4), m), HI);                      \
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_permutexvar_ps(SP, S), acc); }
    for (int r = r0; r < r1; r++) {
        const uint8_t *g = w + (size_t)r * (Q4_SG * 18), *qs = g + 64;
        __m512 s0 = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g)), _mm512_loadu_ps(xd));
        __m512 s1 = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + 32))), _mm512_loadu_ps(xd + 16));
        __m512 acc = _mm512_setzero_ps();
        Q4_LINE(0, l0, h0, sp0, s0) Q4_LINE(1, l1, h1, sp1, s0) Q4_LINE(2, l2, h2, sp2, s0) Q4_LINE(3, l3, h3, sp3, s0)
        Q4_LINE(4, l4, h4, sp0, s1) Q4_LINE(5, l5, h5, sp1, s1) Q4_LINE(6, l6, h6, sp2, s1) Q4_LINE(7, l7, h7, sp3, s1)
        acc = _mm512_sub_ps(acc, _mm512_fmadd_ps(s1, _mm512_loadu_ps(c8 + 16), _mm512_mul_ps(s0, _mm512_loadu_ps(c8))));
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
        y[r] = hsum(h);
    }
#undef Q4_LINE
}

AVX2 static uint64_t read_avx2(const uint8_t *buf, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(buf + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(buf + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(buf + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(buf + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t out[4]; _mm256_storeu_si256((__m256i *)out, s);
    uint64_t t = out[0] + out[1] + out[2] + out[3];
    for (; i < n; i++) t += buf[i];
    return t;
}
#endif

#if defined(__x86_64__)
// The same operations as quantize_q8_blocks_c, eight lanes at a time (max |x|, one division, one
// multiplication, rounding to nearest even as lrintf does), so the blocks are the same bytes.
AVX2 static void quantize_q8_blocks_avx2(const float *x, ck_block_q8 *out, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int b = 0; b < n / CK_QK; b++) {
        const float *v = x + b * CK_QK;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h), d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0;
        out[b].d = d;
        __m256 s = _mm256_set1_ps(id);
        __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s)), q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s));
        __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s)), q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
        // packs work per 128-bit lane: 0 1 | 2 3 -> int16 [q0lo q1lo q0hi q1hi], then int8; fix the order.
        __m256i w01 = _mm256_packs_epi32(q0, q1), w23 = _mm256_packs_epi32(q2, q3);
        __m256i b8 = _mm256_packs_epi16(w01, w23);
        b8 = _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].qs, b8);
    }
}
#endif

void ck_quantize_q8_blocks(const float *x, ck_block_q8 *out, int n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { quantize_q8_blocks_avx2(x, out, n); return; }
#endif
    quantize_q8_blocks_c(x, out, n);
}

void ck_matvec_q8(const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int cols, int r0, int r1) {
#if defined(__x86_64__)
    if (cols % (4 * CK_QK) == 0 && has_avx512()) { matvec_q8_vnni(w, ws, xq, y, cols, r0, r1); return; }
    if (ck_has_avx2()) { matvec_q8_avx2(w, ws, xq, y, cols, r0, r1); return; }
#endif
    matvec_q8_c(w, ws, xq, y, cols, r0, r1);
}

static uint64_t read_part(const uint8_t *buf, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2() && ((uintptr_t)buf % 32) == 0) return read_avx2(buf, n);
#endif
    uint64_t t = 0;
    const uint64_t *p = (const uint64_t *)buf;
    size_t i = 0;
    for (; i < n / 8; i++) t += p[i];
    for (i *= 8; i < n; i++) t += buf[i];
    return t;
}

// ---------------------------------------------------------------------------------------------
// Softmax and conversion

#if defined(__x86_64__)
// exp(x) for 8 floats: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial (Cephes
// expf coefficients), 2^n through the exponent bits. Relative error about 2e-7.
AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-87.3365447504f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

AVX2 static void softmax_avx2(float *x, int n) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float m = -INFINITY;
    { float t[8]; _mm256_storeu_ps(t, vm); for (int k = 0; k < 8; k++) if (t[k] > m) m = t[k]; }
    for (int j = i; j < n; j++) if (x[j] > m) m = x[j];
    __m256 mm = _mm256_set1_ps(m), vs = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) { __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mm)); _mm256_storeu_ps(x + i, e); vs = _mm256_add_ps(vs, e); }
    float s = hsum(vs);
    for (int j = i; j < n; j++) { x[j] = expf(x[j] - m); s += x[j]; }
    __m256 inv = _mm256_set1_ps(1.0f / s);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (int j = i; j < n; j++) x[j] *= 1.0f / s;
}

AVX2 static void convert_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i))), 16)));
    for (; i < n; i++) { uint32_t b = (uint32_t)src[i] << 16; memcpy(dst + i, &b, 4); }
}
#endif

void ck_softmax_row(float *x, int n) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (ck_has_avx2()) { softmax_avx2(x, n); return; }
#endif
    float m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) if (x[i] > m) m = x[i];
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= s;
}

// ---------------------------------------------------------------------------------------------
// GELU and LayerNorm (the vision encoder's element-wise steps)

// erfc(z) for z >= 0 with relative error below about 1e-6 in float: t = 1 / (1 + z/2),
// erfc = t exp(-z^2 + P(t)) (the Chebyshev fit of Numerical Recipes' erfcc, 1.2e-7 in exact
// arithmetic). GELU(x) = x/2 (1 + erf(x/sqrt2)) = x/2 (2 - erfc(z)) for x >= 0 and x/2 erfc(z)
// for x < 0, z = |x|/sqrt2: the tail stays accurate in relative terms.
static inline float erfc_nr(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = -0.82215223f + t * 0.17087277f;
    p = 1.48851587f + t * p; p = -1.13520398f + t * p; p = 0.27886807f + t * p; p = -0.18628806f + t * p;
    p = 0.09678418f + t * p; p = 0.37409196f + t * p; p = 1.00002368f + t * p; p = -1.26551223f + t * p;
    return t * expf(-z * z + p);
}

static void gelu_c(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], e = erfc_nr(fabsf(v) * 0.70710678118654752f);
        x[i] = v >= 0 ? 0.5f * v * (2.0f - e) : 0.5f * v * e;
    }
}

#if defined(__x86_64__)
AVX2 static void gelu_avx2(float *x, size_t n) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f), r2 = _mm256_set1_ps(0.70710678118654752f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, v), r2);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
        __m256 p = _mm256_fmadd_ps(t, _mm256_set1_ps(0.17087277f), _mm256_set1_ps(-0.82215223f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(1.48851587f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(-1.13520398f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(0.27886807f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(-0.18628806f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(0.09678418f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(0.37409196f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(1.00002368f));
        p = _mm256_fmadd_ps(t, p, _mm256_set1_ps(-1.26551223f));
        __m256 e = _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, p)));
        __m256 pos = _mm256_sub_ps(two, e);
        __m256 f = _mm256_blendv_ps(pos, e, v);          // sign bit of v set: x < 0 takes erfc
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), f));
    }
    gelu_c(x + i, n - i);
}

// Mean and variance in Double-free float with eight lanes, then the affine map.
AVX2 static void layer_norm_avx2(const float *x, const float *w, const float *b, float *out, int n, int t, float eps) {
    for (int r = 0; r < t; r++) {
        const float *xr = x + (size_t)r * n;
        float *o = out + (size_t)r * n;
        __m256 s = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xr + i));
        float mean = hsum(s);
        for (; i < n; i++) mean += xr[i];
        mean /= (float)n;
        __m256 m = _mm256_set1_ps(mean), v = _mm256_setzero_ps();
        for (i = 0; i + 8 <= n; i += 8) { __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + i), m); v = _mm256_fmadd_ps(d, d, v); }
        float var = hsum(v);
        for (; i < n; i++) { float d = xr[i] - mean; var += d * d; }
        float inv = 1.0f / sqrtf(var / (float)n + eps);
        __m256 vi = _mm256_set1_ps(inv);
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), m), vi);
            _mm256_storeu_ps(o + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
        }
        for (; i < n; i++) o[i] = (xr[i] - mean) * inv * w[i] + b[i];
    }
}
#endif

// Row-wise element steps of the vision encoder, fused so that each is one pass over memory.
static void bias_gelu_c(float *x, const float *bias, int n, int t) {
    for (int r = 0; r < t; r++) { float *row = x + (size_t)r * n; for (int i = 0; i < n; i++) row[i] += bias[i]; gelu_c(row, (size_t)n); }
}
static void scaled_residual_c(float *x, const float *o, const float *bias, const float *ls, int n, int t) {
    for (int r = 0; r < t; r++)
        for (int i = 0; i < n; i++) x[(size_t)r * n + i] += ls[i] * (o[(size_t)r * n + i] + bias[i]);
}

#if defined(__x86_64__)
AVX2 static void bias_gelu_avx2(float *x, const float *bias, int n, int t) {
    for (int r = 0; r < t; r++) {
        float *row = x + (size_t)r * n;
        int i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(bias + i)));
        for (; i < n; i++) row[i] += bias[i];
        gelu_avx2(row, (size_t)n);
    }
}
AVX2 static void scaled_residual_avx2(float *x, const float *o, const float *bias, const float *ls, int n, int t) {
    for (int r = 0; r < t; r++) {
        float *xr = x + (size_t)r * n; const float *orow = o + (size_t)r * n;
        int i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(xr + i, _mm256_fmadd_ps(_mm256_loadu_ps(ls + i), _mm256_add_ps(_mm256_loadu_ps(orow + i), _mm256_loadu_ps(bias + i)),
                                                     _mm256_loadu_ps(xr + i)));
        for (; i < n; i++) xr[i] += ls[i] * (orow[i] + bias[i]);
    }
}
#endif

void ck_bias_gelu(float *x, const float *bias, int n, int t) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { bias_gelu_avx2(x, bias, n, t); return; }
#endif
    bias_gelu_c(x, bias, n, t);
}

// The language model's MLP gate: a[i] = silu(a[i]) * b[i], silu(g) = g / (1 + exp(-g)). In AVX2
// with exp8 (relative error ~2e-7) and an exact division; portable with expf.
#if defined(__x86_64__)
AVX2 static void silu_mul_avx2(float *a, const float *b, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(a + i);
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_xor_ps(g, sign))));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(s, _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}
#endif

void ck_silu_mul(float *a, const float *b, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { silu_mul_avx2(a, b, n); return; }
#endif
    for (size_t i = 0; i < n; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

void ck_scaled_residual(float *x, const float *o, const float *bias, const float *ls, int n, int t) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { scaled_residual_avx2(x, o, bias, ls, n, t); return; }
#endif
    scaled_residual_c(x, o, bias, ls, n, t);
}

void ck_gelu(float *x, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { gelu_avx2(x, n); return; }
#endif
    gelu_c(x, n);
}

void ck_layer_norm(const float *x, const float *w, const float *b, float *out, int n, int t, float eps) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { layer_norm_avx2(x, w, b, out, n, t, eps); return; }
#endif
    for (int r = 0; r < t; r++) {
        const float *xr = x + (size_t)r * n;
        float *o = out + (size_t)r * n, mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += xr[i];
        mean /= (float)n;
        for (int i = 0; i < n; i++) { float d = xr[i] - mean; var += d * d; }
        float inv = 1.0f / sqrtf(var / (float)n + eps);
        for (int i = 0; i < n; i++) o[i] = (xr[i] - mean) * inv * w[i] + b[i];
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

static void convert_part(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { convert_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) { uint32_t b = (uint32_t)src[i] << 16; memcpy(dst + i, &b, 4); }
}

// ---------------------------------------------------------------------------------------------
// The pool

enum { JOB_BF16, JOB_BF16X4, JOB_Q8, JOB_Q4, JOB_READ, JOB_ATTN, JOB_Q8GEMM };

struct ck_pool {
    int threads, spin_us;
    pthread_t *tids;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t job;      // one caller at a time (tests run concurrently)
    atomic_uint gen;          // bumped for every job
    atomic_int done;          // workers finished with this job
    atomic_int stop;
    int sleepers;
    // the job
    int kind, rows, cols, isa;    // isa: the caller's instruction-set level, used by every thread
    const void *w; const float *ws; const void *x; float *y;
    const uint8_t *buf; size_t n; uint64_t partial[64];
    float *xe, *xo; int xcap;     // x de-interleaved once per bf16 job
    struct q4_xline_s *q4xl; float *q4xd, *q4c8; int q4cap;      // x arranged once per q4 job (q4_prepare_x)
    // A product's rows in chunks; each thread's share is chunks [lo, hi), packed as lo | hi << 32.
    int chunk_rows, chunks_per_block;
    float *ypart; size_t ypcap;   // rows in fours wider than X4_BLOCK: each column block's partial sums
    struct { _Alignas(64) _Atomic uint64_t span; } share[64];
    // int8 GEMM: packed weights, activation blocks and their sums x 128, gm x gn outputs (ldc gldc)
    const uint8_t *gpack; const ck_block_q8 *gxq; const int32_t *gcorr; int gm, gn, gldc;
    const float *aq; const void *ak, *av; float *aout; int atotal, aheads, akv, adim, af16; size_t apos, ahead; float ascale;   // decode attention
};

static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#endif
}

// K/V element j of a cached row: float32 or float16 storage.
static inline float kv_at(const void *base, int f16, size_t i) {
    return f16 ? ck_fp16_to_fp32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static void attention_heads_c(const ck_pool *p, int h0, int h1, float *sc) {
    int groups = p->aheads / p->akv, dim = p->adim, f16 = p->af16;
    for (int h = h0; h < h1; h++) {
        const float *q = p->aq + (size_t)h * dim;
        int g = h / groups;
        for (int j = 0; j < p->atotal; j++) {
            size_t base = (size_t)j * p->apos + (size_t)g * p->ahead;
            float s = 0;
            for (int d = 0; d < dim; d++) s += q[d] * kv_at(p->ak, f16, base + d);
            sc[j] = s * p->ascale;
        }
        ck_softmax_row(sc, p->atotal);
        float *o = p->aout + (size_t)h * dim;
        for (int d = 0; d < dim; d++) o[d] = 0;
        for (int j = 0; j < p->atotal; j++) {
            size_t base = (size_t)j * p->apos + (size_t)g * p->ahead;
            for (int d = 0; d < dim; d++) o[d] += sc[j] * kv_at(p->av, f16, base + d);
        }
    }
}

#if defined(__x86_64__)
// 8 cached values from float32 or float16 storage.
AVX2 static inline __m256 kv8(const void *base, int f16, size_t i) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)))
               : _mm256_loadu_ps((const float *)base + i);
}

// dim a multiple of 8. Scores: four keys at a time (four independent sums); output: 32 columns
// at a time held in registers over all keys.
AVX2 static void attention_heads_avx2(const ck_pool *p, int h0, int h1, float *sc) {
    int groups = p->aheads / p->akv, dim = p->adim, f16 = p->af16, total = p->atotal;
    size_t stride = p->apos;
    for (int h = h0; h < h1; h++) {
        const float *q = p->aq + (size_t)h * dim;
        size_t g0 = (size_t)(h / groups) * p->ahead;
        int j = 0;
        for (; j + 4 <= total; j += 4) {
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int d = 0; d < dim; d += 8) {
                __m256 qd = _mm256_loadu_ps(q + d);
                s0 = _mm256_fmadd_ps(qd, kv8(p->ak, f16, (j + 0) * stride + g0 + d), s0);
                s1 = _mm256_fmadd_ps(qd, kv8(p->ak, f16, (j + 1) * stride + g0 + d), s1);
                s2 = _mm256_fmadd_ps(qd, kv8(p->ak, f16, (j + 2) * stride + g0 + d), s2);
                s3 = _mm256_fmadd_ps(qd, kv8(p->ak, f16, (j + 3) * stride + g0 + d), s3);
            }
            sc[j] = hsum(s0) * p->ascale; sc[j + 1] = hsum(s1) * p->ascale;
            sc[j + 2] = hsum(s2) * p->ascale; sc[j + 3] = hsum(s3) * p->ascale;
        }
        for (; j < total; j++) {
            __m256 s0 = _mm256_setzero_ps();
            for (int d = 0; d < dim; d += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), kv8(p->ak, f16, j * stride + g0 + d), s0);
            sc[j] = hsum(s0) * p->ascale;
        }
        ck_softmax_row(sc, total);
        float *o = p->aout + (size_t)h * dim;
        int d = 0;
        for (; d + 32 <= dim; d += 32) {
            __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
            for (int k = 0; k < total; k++) {
                __m256 w = _mm256_broadcast_ss(sc + k);
                size_t b = k * stride + g0 + d;
                o0 = _mm256_fmadd_ps(w, kv8(p->av, f16, b), o0);
                o1 = _mm256_fmadd_ps(w, kv8(p->av, f16, b + 8), o1);
                o2 = _mm256_fmadd_ps(w, kv8(p->av, f16, b + 16), o2);
                o3 = _mm256_fmadd_ps(w, kv8(p->av, f16, b + 24), o3);
            }
            _mm256_storeu_ps(o + d, o0); _mm256_storeu_ps(o + d + 8, o1);
            _mm256_storeu_ps(o + d + 16, o2); _mm256_storeu_ps(o + d + 24, o3);
        }
        for (; d < dim; d += 8) {
            __m256 o0 = _mm256_setzero_ps();
            for (int k = 0; k < total; k++) o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + k), kv8(p->av, f16, k * stride + g0 + d), o0);
            _mm256_storeu_ps(o + d, o0);
        }
    }
}
#endif

static void attention_heads(const ck_pool *p, int h0, int h1) {
    float *sc = malloc((size_t)(p->atotal > 0 ? p->atotal : 1) * sizeof(float));
#if defined(__x86_64__)
    if (ck_has_avx2() && p->adim % 8 == 0) attention_heads_avx2(p, h0, h1, sc);
    else
#endif
    attention_heads_c(p, h0, h1, sc);
    free(sc);
}

#if defined(__x86_64__)
// AVX-512, head dims of NC x 16 (64 and 128): the query heads of one kv head two at a time, so
// that each cached key and value row is read and widened once for both (the real model has two
// query heads per kv head; per query head the cache was read twice): both heads' scores per key,
// a softmax each, then both outputs accumulated in registers over all values. With the cache
// stored head by head (KVCache) each pass is one contiguous stream.
AVX512 static inline __attribute__((always_inline)) __m512 kv16(const void *base, int f16, size_t i) {
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)))
               : _mm512_loadu_ps((const float *)base + i);
}

#define ATTN_GROUP(NAME, NC)                                                                               \
    AVX512 static void NAME(const ck_pool *p, int g, float *sc) {                                          \
        int groups = p->aheads / p->akv, f16 = p->af16, total = p->atotal;                                  \
        size_t stride = p->apos, g0 = (size_t)g * p->ahead;                                    \
        for (int h = g * groups; h < (g + 1) * groups; h += 2) {                                           \
            int two = h + 1 < (g + 1) * groups;                                                            \
            const float *q0 = p->aq + (size_t)h * (NC * 16), *q1 = two ? q0 + NC * 16 : q0;                \
            float *s0 = sc, *s1 = sc + total;                                                              \
            __m512 qa[NC], qb[NC];                                                                         \
            for (int c = 0; c < NC; c++) { qa[c] = _mm512_loadu_ps(q0 + 16 * c); qb[c] = _mm512_loadu_ps(q1 + 16 * c); } \
            for (int j = 0; j < total; j++) {                                                              \
                __m512 a = _mm512_setzero_ps(), b = a;                                                     \
                for (int c = 0; c < NC; c++) {                                                             \
                    __m512 k = kv16(p->ak, f16, j * stride + g0 + 16 * c);                                 \
                    a = _mm512_fmadd_ps(qa[c], k, a); b = _mm512_fmadd_ps(qb[c], k, b);                   \
                }                                                                                          \
                s0[j] = _mm512_reduce_add_ps(a) * p->ascale; s1[j] = _mm512_reduce_add_ps(b) * p->ascale;  \
            }                                                                                              \
            ck_softmax_row(s0, total);                                                                     \
            if (two) ck_softmax_row(s1, total);                                                            \
            __m512 oa[NC], ob[NC];                                                                         \
            for (int c = 0; c < NC; c++) { oa[c] = _mm512_setzero_ps(); ob[c] = oa[c]; }                    \
            for (int j = 0; j < total; j++) {                                                              \
                __m512 wa = _mm512_set1_ps(s0[j]), wb = _mm512_set1_ps(s1[j]);                             \
                for (int c = 0; c < NC; c++) {                                                             \
                    __m512 v = kv16(p->av, f16, j * stride + g0 + 16 * c);                                 \
                    oa[c] = _mm512_fmadd_ps(wa, v, oa[c]); ob[c] = _mm512_fmadd_ps(wb, v, ob[c]);          \
                }                                                                                          \
            }                                                                                              \
            float *o = p->aout + (size_t)h * (NC * 16);                                                    \
            for (int c = 0; c < NC; c++) _mm512_storeu_ps(o + 16 * c, oa[c]);                              \
            if (two) for (int c = 0; c < NC; c++) _mm512_storeu_ps(o + NC * 16 + 16 * c, ob[c]);           \
        }                                                                                                  \
    }
ATTN_GROUP(attention_group64_avx512, 4)
ATTN_GROUP(attention_group128_avx512, 8)

// int8 GEMM tiles: MR activation rows x one panel of 32 weight rows (two 16-lane vectors), over
// all blocks of 32 columns. Per block: eight vpdpbusd steps of four columns (packed w + 128 as
// the unsigned operand, four activation bytes broadcast as the signed one) into int32, minus
// 128 x the block's activation sum, then one FMA with the block's scale into float (the
// reference's order, so the results are its bits). Columns past `valid` are not stored.
#define Q8_TILE(NAME, MR)                                                                                  \
    AVX512 static void NAME(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, const int32_t *corr, \
                            float *c, int nb, int ldc, int valid) {                                        \
        __m512 f[MR][2];                                                                                   \
        for (int i = 0; i < MR; i++) { f[i][0] = _mm512_setzero_ps(); f[i][1] = f[i][0]; }                  \
        size_t stride = sw ? 1024 : 1152;         /* q4 panels: each block's 32 weight scales after it */ \
        for (int b = 0; b < nb; b++) {                                                                     \
            __m512i acc[MR][2];                                                                            \
            for (int i = 0; i < MR; i++) { acc[i][0] = _mm512_setzero_si512(); acc[i][1] = acc[i][0]; }     \
            const uint8_t *pb = panel + (size_t)b * stride;                                                \
            for (int s = 0; s < 8; s++) {                                                                  \
                __m512i w0 = _mm512_loadu_si512((const void *)(pb + 128 * s)), w1 = _mm512_loadu_si512((const void *)(pb + 128 * s + 64)); \
                for (int i = 0; i < MR; i++) {                                                             \
                    int32_t four; memcpy(&four, xq[(size_t)i * nb + b].qs + 4 * s, 4);                     \
                    __m512i a = _mm512_set1_epi32(four);                                                   \
                    acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], w0, a);                                     \
                    acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], w1, a);                                     \
                }                                                                                          \
            }                                                                                              \
            __m512 ws0 = _mm512_set1_ps(1), ws1 = ws0;                                                     \
            if (!sw) { ws0 = _mm512_loadu_ps((const float *)(pb + 1024)); ws1 = _mm512_loadu_ps((const float *)(pb + 1088)); } \
            for (int i = 0; i < MR; i++) {                                                                 \
                __m512i cr = _mm512_set1_epi32(corr[(size_t)i * nb + b]);                                   \
                __m512 d = _mm512_set1_ps(xq[(size_t)i * nb + b].d), d0 = d, d1 = d;                        \
                if (!sw) { d0 = _mm512_mul_ps(ws0, d); d1 = _mm512_mul_ps(ws1, d); }                       \
                f[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][0], cr)), d0, f[i][0]); \
                f[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][1], cr)), d1, f[i][1]); \
            }                                                                                              \
        }                                                                                                  \
        __mmask16 m0 = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);                              \
        __mmask16 m1 = valid >= 32 ? 0xFFFF : (valid <= 16 ? 0 : (__mmask16)((1u << (valid - 16)) - 1));   \
        __m512 s0 = _mm512_set1_ps(1), s1 = s0;                                                            \
        if (sw) { s0 = _mm512_maskz_loadu_ps(m0, sw); s1 = _mm512_maskz_loadu_ps(m1, sw + 16); }           \
        for (int i = 0; i < MR; i++) {                                                                     \
            _mm512_mask_storeu_ps(c + (size_t)i * ldc, m0, sw ? _mm512_mul_ps(f[i][0], s0) : f[i][0]);     \
            _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16, m1, sw ? _mm512_mul_ps(f[i][1], s1) : f[i][1]); \
        }                                                                                                  \
    }
Q8_TILE(q8_tile1, 1) Q8_TILE(q8_tile2, 2) Q8_TILE(q8_tile3, 3) Q8_TILE(q8_tile4, 4) Q8_TILE(q8_tile5, 5) Q8_TILE(q8_tile6, 6)

// Panels p0..<p1 of the current int8 GEMM job, all activation rows, six at a time.
static void q8_gemm_panels(const ck_pool *p, int p0, int p1) {
    int nb = p->cols / CK_QK;
    for (int pn = p0; pn < p1; pn++) {
        int n0 = 32 * pn, valid = p->gn - n0 < 32 ? p->gn - n0 : 32;
        const uint8_t *panel = p->gpack + (size_t)pn * 32 * (p->ws ? (size_t)p->cols : (size_t)nb * 36);
        for (int m0 = 0; m0 < p->gm; m0 += 6) {
            int mr = p->gm - m0 < 6 ? p->gm - m0 : 6;
            const ck_block_q8 *xq = p->gxq + (size_t)m0 * nb;
            const int32_t *corr = p->gcorr + (size_t)m0 * nb;
            float *c = p->y + (size_t)m0 * p->gldc + n0;
            const float *sw = p->ws ? p->ws + n0 : NULL;
            switch (mr) {
            case 6: q8_tile6(panel, sw, xq, corr, c, nb, p->gldc, valid); break;
            case 5: q8_tile5(panel, sw, xq, corr, c, nb, p->gldc, valid); break;
            case 4: q8_tile4(panel, sw, xq, corr, c, nb, p->gldc, valid); break;
            case 3: q8_tile3(panel, sw, xq, corr, c, nb, p->gldc, valid); break;
            case 2: q8_tile2(panel, sw, xq, corr, c, nb, p->gldc, valid); break;
            default: q8_tile1(panel, sw, xq, corr, c, nb, p->gldc, valid); break;
            }
        }
    }
}
#endif

// Part `part` of `parts` of the decode attention: kv heads (with all their query heads) where the
// AVX-512 group kernels apply, else query heads.
static void attention_part(const ck_pool *p, int part, int parts) {
#if defined(__x86_64__)
    if (has_avx512() && (p->adim == 64 || p->adim == 128)) {
        float *sc = malloc((size_t)(p->atotal > 0 ? 2 * p->atotal : 2) * sizeof(float));
        for (int g = p->akv * part / parts; g < p->akv * (part + 1) / parts; g++) {
            if (p->adim == 64) attention_group64_avx512(p, g, sc);
            else attention_group128_avx512(p, g, sc);
        }
        free(sc);
        return;
    }
#endif
    attention_heads(p, p->aheads * part / parts, p->aheads * (part + 1) / parts);
}

// Rows r0..<r1 of column block b of a product of rows in groups of four: the full groups in the
// range, then (block 0) any of the rows after them, stored whole. With more than one block each
// block writes its own partial sums (ypart, summed in block order by matvec_job).
static void bf16x4_range(const ck_pool *p, int b, int r0, int r1) {
    int full = p->rows / 4 * 4, g1 = r1 < full ? r1 : full, c0 = b * X4_BLOCK, width = x4_width(p->cols, b);
    const uint16_t *w = (const uint16_t *)p->w, *wb = x4_block(w, p->rows, b);
    float *y = x4_blocks(p->cols) > 1 ? p->ypart + (size_t)b * p->rows : p->y;
    if (r0 < g1) {
#if defined(__x86_64__)
        if (has_avx512()) bf16x4_rows_avx512(wb, p->xe + c0 / 2, p->xo + c0 / 2, y, width, r0, g1);
        else if (ck_has_avx2()) bf16x4_rows_avx2(wb, p->xe + c0 / 2, p->xo + c0 / 2, y, width, r0, g1);
        else
#endif
        bf16x4_rows_c(wb, (const float *)p->x + c0, y, width, r0, g1);
    }
    if (r1 > full) {
        int t0 = r0 > full ? r0 : full;
        if (b > 0) { for (int r = t0; r < r1; r++) y[r] = 0; return; }
#if defined(__x86_64__)
        if (ck_has_avx2()) { bf16_rows(w, p->xe, p->xo, (const float *)p->x, y, p->cols, t0, r1); return; }
#endif
        matvec_bf16_c(w, (const float *)p->x, y, p->cols, t0, r1);
    }
}

// Column group s of rows r0..<r1 of a q4 product: its part of each row, into y (one group) or
// the group's partial sums (several). Full groups by the SIMD kernels, from the activations
// matvec_job arranged; a narrower last group, and every group without AVX2, by the reference.
static void q4_range(const ck_pool *p, int s, int r0, int r1) {
    int nb = p->cols / CK_QK, groups = q4_groups(nb);
    float *y = groups > 1 ? p->ypart + (size_t)s * p->rows : p->y;
#if defined(__x86_64__)
    if (q4_gsize(nb, s) == Q4_SG && ck_has_avx2()) {
        const uint8_t *g = (const uint8_t *)p->w + (size_t)s * p->rows * (Q4_SG * 18);
        const q4_xline *xl = p->q4xl + 8 * s;
        const float *xd = p->q4xd + Q4_SG * s, *c8 = p->q4c8 + Q4_SG * s;
        if (has_avx512()) q4_group_avx512(g, xl, xd, c8, y, r0, r1);
        else q4_group_avx2(g, xl, xd, c8, y, r0, r1);
        return;
    }
#endif
    for (int r = r0; r < r1; r++) y[r] = q4_group_ref((const uint8_t *)p->w, p->rows, nb, r, s, (const ck_block_q8 *)p->x);
}

// How many column blocks a job's rows run through: bf16 rows in fours wider than X4_BLOCK, and
// q4 matrices of more than one column group; 1 for the rest.
static int job_blocks(int kind, int cols) {
    return kind == JOB_BF16X4 ? x4_blocks(cols) : (kind == JOB_Q4 ? q4_groups(cols / CK_QK) : 1);
}

// Column block b of rows r0..<r1 of a job with blocks (job_blocks).
static void block_range(const ck_pool *p, int b, int r0, int r1) {
    if (p->kind == JOB_BF16X4) bf16x4_range(p, b, r0, r1); else q4_range(p, b, r0, r1);
}

// Rows r0..<r1 of the current matrix-vector job (bf16 uses the job's de-interleaved x).
static void matvec_range(const ck_pool *p, int r0, int r1) {
    switch (p->kind) {
    case JOB_BF16:
#if defined(__x86_64__)
        if (ck_has_avx2()) { bf16_rows((const uint16_t *)p->w, p->xe, p->xo, (const float *)p->x, p->y, p->cols, r0, r1); break; }
#endif
        matvec_bf16_c((const uint16_t *)p->w, (const float *)p->x, p->y, p->cols, r0, r1); break;
    case JOB_BF16X4: case JOB_Q4:
        for (int b = 0; b < job_blocks(p->kind, p->cols); b++) block_range(p, b, r0, r1);
        break;
    case JOB_Q8GEMM:
#if defined(__x86_64__)
        q8_gemm_panels(p, r0, r1);
#endif
        break;
    case JOB_Q8: ck_matvec_q8((const int8_t *)p->w, p->ws, (const ck_block_q8 *)p->x, p->y, p->cols, r0, r1); break;
    }
}

static void run_share(ck_pool *p, int self) {
    if (p->kind == JOB_ATTN) {
        attention_part(p, self, p->threads);
        return;
    }
    if (p->kind == JOB_READ) {
        size_t per = (p->n / p->threads) & ~(size_t)127, start = per * (size_t)self;
        size_t len = self == p->threads - 1 ? p->n - start : per;
        p->partial[self] = read_part(p->buf + start, len);
        return;
    }
    // Each thread takes the chunks of its own contiguous share from the front (one long stream
    // suits the prefetchers: chunks dealt out in turn halved the rate of two threads), then takes
    // what is left of the others' shares from their backs, so that a thread slowed by the other
    // work of the machine does not keep the rest waiting (waiting was ~14% of a bf16 decode).
    for (int k = 0; k < p->threads; k++) {
        int v = (self + k) % p->threads;
        for (;;) {
            uint64_t span = atomic_load_explicit(&p->share[v].span, memory_order_relaxed), next;
            uint32_t lo = (uint32_t)span, hi = (uint32_t)(span >> 32), c;
            if (lo >= hi) break;
            if (k == 0) { c = lo; next = (uint64_t)(lo + 1) | ((uint64_t)hi << 32); }
            else { c = hi - 1; next = (uint64_t)lo | ((uint64_t)(hi - 1) << 32); }
            if (!atomic_compare_exchange_weak_explicit(&p->share[v].span, &span, next, memory_order_relaxed, memory_order_relaxed)) continue;
            // Chunks run through each column block's rows in turn (job_blocks: often one).
            int b = (int)c / p->chunks_per_block, r0 = ((int)c % p->chunks_per_block) * p->chunk_rows, r1 = r0 + p->chunk_rows;
            if (r1 > p->rows) r1 = p->rows;
            if (p->kind == JOB_BF16X4 || p->kind == JOB_Q4) block_range(p, b, r0, r1); else matvec_range(p, r0, r1);
        }
    }
}

typedef struct { ck_pool *p; int index; } worker_arg;

static void *worker(void *a) {
    worker_arg wa = *(worker_arg *)a;
    free(a);
    ck_pool *p = wa.p;
    unsigned seen = 0;        // the pool's generation at creation: a job may come before this thread runs
    for (;;) {
        // Hot: spin for a while, so that the next product of the same step starts at once.
        double until = now_us() + p->spin_us;
        int k = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load(&p->stop)) {
            cpu_relax();
            if (++k == 256) { k = 0; if (now_us() > until) break; }
        }
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);             // cold: park until the next job
            p->sleepers++;
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        isa_cap = p->isa;
        run_share(p, wa.index);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

ck_pool *ck_pool_create(int threads, int spin_us) {
    ck_pool *p = calloc(1, sizeof *p);
    p->threads = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
    p->spin_us = spin_us;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->job, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->tids = calloc((size_t)p->threads, sizeof(pthread_t));
    for (int i = 1; i < p->threads; i++) {
        worker_arg *a = malloc(sizeof *a); a->p = p; a->index = i;
        pthread_create(&p->tids[i], NULL, worker, a);
    }
    return p;
}

void ck_pool_destroy(ck_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->mu); pthread_cond_broadcast(&p->cv); pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++) pthread_join(p->tids[i], NULL);
    free(p->tids);
    free(p->xe); free(p->xo); free(p->ypart); free(p->q4xl); free(p->q4xd); free(p->q4c8);
    free(p);
}

int ck_pool_threads(const ck_pool *p) { return p->threads; }

static void dispatch(ck_pool *p) {
    p->isa = ck_isa();
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->threads > 1) {
        pthread_mutex_lock(&p->mu);
        if (p->sleepers > 0) pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    run_share(p, 0);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->threads - 1) cpu_relax();
}

// A job of `chunks` chunks of `chunk_rows` rows in each of `blocks` column blocks (job_blocks): each thread's share is a contiguous run of whole chunks (run_share takes its own
// from the front and steals the others' from their backs).
static void split_shares(ck_pool *p, int chunk_rows, int chunks, int blocks) {
    p->chunk_rows = chunk_rows; p->chunks_per_block = chunks;
    uint64_t all = (uint64_t)chunks * blocks;
    for (int t = 0; t < p->threads; t++) {
        uint64_t lo = all * t / p->threads, hi = all * (t + 1) / p->threads;
        atomic_store_explicit(&p->share[t].span, lo | hi << 32, memory_order_relaxed);
    }
}

static void matvec_dispatch(ck_pool *p, int kind, int rows, int cols, int blocks);

static void matvec_job(ck_pool *p, int kind, const void *w, const float *ws, const void *x, float *y, int rows, int cols) {
    p->kind = kind; p->w = w; p->ws = ws; p->x = x; p->y = y; p->rows = rows; p->cols = cols;
    // q4: the full column groups' activations arranged once for all threads and chunks.
    if (kind == JOB_Q4 && cols >= Q4_SG * CK_QK) {
        int full = cols / CK_QK / Q4_SG * Q4_SG;
        if (p->q4cap < full) {
            free(p->q4xl); free(p->q4xd); free(p->q4c8);
            p->q4xl = aligned_alloc(64, (size_t)(full / 4) * sizeof(q4_xline));
            p->q4xd = aligned_alloc(64, (size_t)full * sizeof(float)); p->q4c8 = aligned_alloc(64, (size_t)full * sizeof(float));
            p->q4cap = full;
        }
        q4_prepare_x((const ck_block_q8 *)x, full, p->q4xl, p->q4xd, p->q4c8);
    }
    if (kind == JOB_BF16 || kind == JOB_BF16X4) {
        if (p->xcap < cols) { free(p->xe); free(p->xo); p->xe = malloc((size_t)cols * 4); p->xo = malloc((size_t)cols * 4); p->xcap = cols; }
        deinterleave(x, cols, p->xe, p->xo);
    }
    int blocks = job_blocks(kind, cols);
    if (blocks > 1 && p->ypcap < (size_t)blocks * rows) {
        free(p->ypart); p->ypart = malloc((size_t)blocks * rows * sizeof(float)); p->ypcap = (size_t)blocks * rows;
    }
    matvec_dispatch(p, kind, rows, cols, blocks);
    // The column blocks' partial sums, added in block order (the same result on any number of threads).
    for (int b = 1; b < blocks; b++)
        for (int r = 0; r < rows; r++) p->ypart[r] += p->ypart[(size_t)b * rows + r];
    if (blocks > 1) memcpy(y, p->ypart, (size_t)rows * sizeof(float));
}

static void matvec_dispatch(ck_pool *p, int kind, int rows, int cols, int blocks) {
    // Under ~32 KB of weights (at least 8 rows) waking the workers costs more than it saves.
    int bytes_per_row = kind == JOB_BF16 || kind == JOB_BF16X4 ? cols * 2 : (kind == JOB_Q8 ? cols : cols / CK_QK * 18);
    int small = 32768 / (bytes_per_row > 0 ? bytes_per_row : 1);
    if (p->threads == 1 || rows < (small < 8 ? 8 : small)) { matvec_range(p, 0, rows); return; }
    // Chunks of ~64 KiB of weights (whole groups of four rows), shares of whole chunks. A thread
    // takes its own chunks in order, so its stream stays contiguous; smaller chunks only shorten
    // the wait at the end of a product. In q4 decode profiles the spinning (worker, dispatch and
    // the chunk claims) came to 11% of the kernels' time with 192 KiB chunks, 6% with 64 KiB and
    // 9% with 32 KiB (more claims).
    // A wide matrix's chunks are ~64 KiB of one column block (the chunks of block 0, then of 1, ...).
    int cr = (64 << 10) / (bytes_per_row / blocks > 0 ? bytes_per_row / blocks : 1);
    cr = cr < 4 ? 4 : cr & ~3;
    int chunks = (rows + cr - 1) / cr;
    split_shares(p, cr, chunks, blocks);
    dispatch(p);
}

static void locked_matvec(ck_pool *p, int kind, const void *w, const float *ws, const void *x, float *y, int rows, int cols) {
    pthread_mutex_lock(&p->job);
    matvec_job(p, kind, w, ws, x, y, rows, cols);
    pthread_mutex_unlock(&p->job);
}

void ck_pool_matvec_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int rows, int cols) { locked_matvec(p, JOB_BF16, w, NULL, x, y, rows, cols); }
void ck_pool_matvec_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int rows, int cols) { locked_matvec(p, JOB_BF16X4, w, NULL, x, y, rows, cols); }
void ck_pool_matvec_q8(ck_pool *p, const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int rows, int cols) { locked_matvec(p, JOB_Q8, w, ws, xq, y, rows, cols); }
void ck_pool_matvec_q4(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *y, int rows, int cols) { locked_matvec(p, JOB_Q4, w, NULL, xq, y, rows, cols); }

int ck_q8_gemm_available(void) { return has_avx512(); }

void ck_pool_q8_gemm(ck_pool *p, const uint8_t *packed, const float *wscale, const ck_block_q8 *xq, float *c,
                     int m, int n, int k, int ldc) {
    int nb = k / CK_QK, panels = (n + 31) / 32;
    int32_t *corr = malloc((size_t)m * nb * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)m * nb; i++) {          // 128 x each block's activation sum
        int32_t t = 0;
        for (int e = 0; e < CK_QK; e++) t += xq[i].qs[e];
        corr[i] = 128 * t;
    }
    pthread_mutex_lock(&p->job);
    p->kind = JOB_Q8GEMM; p->gpack = packed; p->ws = wscale; p->gxq = xq; p->gcorr = corr; p->y = c;
    p->gm = m; p->gn = n; p->gldc = ldc; p->cols = k; p->rows = panels;
    // One panel per chunk, shares of whole panels (the stealing split of the products).
    split_shares(p, 1, panels, 1);
    if (p->threads == 1) matvec_range(p, 0, panels); else dispatch(p);
    pthread_mutex_unlock(&p->job);
    free(corr);
}

uint64_t ck_pool_read(ck_pool *p, const uint8_t *buf, size_t n) {
    if (p->threads == 1) return read_part(buf, n);
    pthread_mutex_lock(&p->job);
    p->kind = JOB_READ; p->buf = buf; p->n = n;
    dispatch(p);
    uint64_t t = 0;
    for (int i = 0; i < p->threads; i++) t += p->partial[i];
    pthread_mutex_unlock(&p->job);
    return t;
}


void ck_softmax_rows(float *s, int rows, int n, int ld, int causal_base) {
    for (int i = 0; i < rows; i++) {
        float *row = s + (size_t)i * ld;
        int visible = causal_base >= 0 ? (causal_base + i + 1 < n ? causal_base + i + 1 : n) : n;
        ck_softmax_row(row, visible);
        for (int j = visible; j < n; j++) row[j] = 0;
    }
}

void ck_convert_bf16(const uint16_t *src, float *dst, size_t n) { convert_part(src, dst, n); }

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


void ck_pool_attention_decode(ck_pool *p, const float *q, const void *k, const void *v, int kv_f16, float *out,
                              int total, int heads, int kv_heads, int dim, size_t pos_stride, size_t head_stride, float scale) {
    pthread_mutex_lock(&p->job);
    p->kind = JOB_ATTN; p->aq = q; p->ak = k; p->av = v; p->af16 = kv_f16; p->aout = out; p->atotal = total; p->aheads = heads;
    p->akv = kv_heads; p->adim = dim; p->apos = pos_stride; p->ahead = head_stride; p->ascale = scale;
    if (p->threads == 1 || kv_heads < 2) attention_part(p, 0, 1); else dispatch(p);
    pthread_mutex_unlock(&p->job);
}

#if defined(__x86_64__)
AVX2 static void f32_to_f16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = ck_fp32_to_fp16(src[i]);
}

AVX2 static void f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = ck_fp16_to_fp32(src[i]);
}
#endif

void ck_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { f32_to_f16_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = ck_fp32_to_fp16(src[i]);
}

void ck_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { f16_to_f32_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = ck_fp16_to_fp32(src[i]);
}
