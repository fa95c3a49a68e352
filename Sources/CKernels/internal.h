// Shared by the CKernels sources: includes, target attributes, the q4 and bf16-rows4 layouts,
// and the kernels one file runs for another. Not part of the public header.
#pragma once
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

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define AVXVNNI __attribute__((target("avxvnni,avx2,fma,f16c")))

// The decode kernels prefetch their weight stream this many bytes ahead into L2 (prefetcht1),
// 0: not at all (INTERNVL_CHAT_PREFETCH=bytes sets it). The hardware prefetchers alone left an
// Intel Xeon (Emerald Rapids class) at 0.55-0.8 of its read rate, its cores waiting on memory
// between bursts of compute; 4 KiB ahead made decode there 1.06-1.62x faster in every format and
// ISA (docs/benchmarks.md, issue 20).
extern int ck_prefetch_ahead;
#define PREFETCH_W(p) do { if (ck_prefetch_ahead) _mm_prefetch((const char *)(p) + ck_prefetch_ahead, _MM_HINT_T1); } while (0)
// The distance of the decode kernels whose plain streams keep the read rate on AMD, the bf16 rows
// and the q4 groups with AVX-512: none there, where the prefetch cost them 7-16% and 9-15% of it
// (a Zen 4, docs/benchmarks.md sessions 25 and 26); elsewhere ck_prefetch_ahead.
// INTERNVL_CHAT_PREFETCH sets both.
extern int ck_prefetch_plain;
#define PREFETCH_PLAIN(p) do { if (ck_prefetch_plain) _mm_prefetch((const char *)(p) + ck_prefetch_plain, _MM_HINT_T1); } while (0)
// The AVX2 bf16 rows of one sequence on AMD instead fetch their stream this many bytes ahead into
// L1 (prefetcht0): on a Zen 3, 1 KiB took the two-core stream from 0.82-0.91 to 0.92-0.99 of the
// read loop's rate, where 32 KiB into L2 and 2-4 KiB into L1 did not help (docs/benchmarks.md
// session 28); 0 elsewhere. INTERNVL_CHAT_PREFETCH_NEAR sets it (not INTERNVL_CHAT_PREFETCH).
extern int ck_prefetch_near;
#define PREFETCH_NEAR(p) do { if (ck_prefetch_near) _mm_prefetch((const char *)(p) + ck_prefetch_near, _MM_HINT_T0); } while (0)

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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

// exp8's steps on 16 floats (the same results, lane for lane).
AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-87.3365447504f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500E-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507E-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073E-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894E-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459E-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201E-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}
#endif

static inline int has_avx512(void) { return ck_isa() >= 2; }

// `buf` if its *cap bytes hold `need`, else a new 64-byte aligned buffer of at least `need` bytes
// (buf freed, *cap updated; its contents are not kept); out of memory ends the process with a
// message naming `what`. Every buffer kept between jobs grows through it.
void *grow_buffer(void *buf, size_t *cap, size_t need, const char *what);

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

// 8 x the sum of an activation block's 32 values, as a float (exact): the nibbles' offset.
static inline float q4_c8(const ck_block_q8 *xb) {
    int32_t t = 0;
    for (int i = 0; i < CK_QK; i++) t += xb->qs[i];
    return (float)(8 * t);
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

// AMX tiles for a prompt's rows against bf16 weights in groups of four (ISA level 3). Each
// activation value is split into two bf16 (x = hi + lo + a rest of at most 2^-18 |x|), so the
// tiles' exact bf16 products summed in float give the product to about float rounding (not the
// one-row kernels' bits: the order of the sums differs). amx_bf16_prepare arranges t rows of x
// (cols a multiple of 32) as the tiles' second operand: per 32 columns, per 16 rows of x, the hi
// tile then the lo tile, each 16 column pairs x 16 rows x 2 halfwords (rows past t zero).
// amx_bf16x4_rows64 multiplies the 64 rows of groups g0..<g0 + 16 of one column block (wb, width)
// by them: y[m * ldy + 4 * g0 + i] for the t rows m.
static inline int amx_m_tiles(int t) { return (t + 15) / 16; }
size_t amx_bf16_prepared_halfwords(int t, int cols);
void amx_bf16_prepare(const float *x, int t, int cols, uint16_t *xt);
// The same from rows ld floats apart of which the first `valid` are x's (the rest taken as 0).
void amx_bf16_prepare_ld(const float *x, size_t ld, int valid, int t, int cols, uint16_t *xt);
void amx_bf16x4_rows64(const uint16_t *wb, int width, int g0, const uint16_t *xt, int t, float *y, size_t ldy);
// The same for rows r0..<r0 + 64 of bf16 weights in rows (cols a multiple of 32).
void amx_bf16_rows64(const uint16_t *w, int cols, int r0, const uint16_t *xt, int t, float *y, size_t ldy);

// Activation rows an int8 product runs at once over each weight row (q8_rows_*).
#define Q8_ROWS 4
// One int8 panel for m activation rows, portable C (ck_q8_gemm_ref's steps).
void q8p_panel_c(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, float *c, int m, int nb, int ldc, int valid);

typedef struct q4_xline_s { int8_t lo[64]; int8_t hi[64]; } q4_xline;     // 128 bytes

// One decode attention job (attention.c): query heads q, the cache's keys and values (float16
// when f16) for `total` positions, pos_stride / head_stride elements apart.
typedef struct {
    const float *q; const void *k, *v; int f16; float *out;
    int total, heads, kv_heads, dim; size_t pos_stride, head_stride; float scale;
} ck_attention;
void attention_part(const ck_attention *a, int part, int parts);

// A short prompt's attention job (attention.c): t new positions after `past` cached ones.
typedef struct {
    const float *q; const void *k, *v; int f16; float *out;
    int t, past, heads, kv_heads, dim; size_t pos_stride, head_stride; float scale;
} ck_attention_rows;
void attention_rows_part(const ck_attention_rows *a, int part, int parts);

// The AVX2 integer GEMM (igemm_avx2.c): one product's weights (int8 rows with their scales, or a
// q4 matrix), activations (blocks; xw: as int16 for int8, init: per block the q4 tiles' starting
// sums, igemm_avx2_prepare) and output.
typedef struct {
    const int8_t *i8; const uint8_t *q4; const float *wscale;
    const ck_block_q8 *xq; const int16_t *xw; const int32_t *init;
    float *c; int m, rows, cols, ldc;
} igemm_avx2_job;

// Kernels one file runs for another.
extern _Thread_local int isa_cap, avx_vnni_cap;
void quantize_q8_blocks_c(const float *x, ck_block_q8 *out, int n);
float q4_group_ref(const uint8_t *w, int rows, int nb, int r, int s, const ck_block_q8 *xq);
void matvec_bf16_c(const uint16_t *w, const float *x, float *y, int cols, int r0, int r1);
void bf16x4_rows_c(const uint16_t *w, const float *x, float *y, int cols, int r0, int r1);
void matvec_q8_c(const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int cols, int r0, int r1);
void convert_part(const uint16_t *src, float *dst, size_t n);
uint64_t read_part(const uint8_t *buf, size_t n, int prefetch);
void q4_prepare_x(const ck_block_q8 *xq, int full, q4_xline *xl, float *xd, float *c8);
#if defined(__x86_64__)
void bf16_rows(const uint16_t *w, const float *xe, const float *xo, const float *x, float *y, int cols, int r0, int r1);
void deinterleave(const float *x, int cols, float *xe, float *xo);
AVX2 void bf16x4_rows_avx2(const uint16_t *w, const float *xe, const float *xo, float *y, int cols, int r0, int r1);
AVX512 void bf16x4_rows_avx512(const uint16_t *w, const float *xe, const float *xo, float *y, int cols, int r0, int r1);
AVX512 void bf16x4_rows2_avx512(const uint16_t *w, const float *xe0, const float *xo0, const float *xe1, const float *xo1,
                                float *y0, float *y1, int cols, int r0, int r1, const char *pf, int pfstep);
AVX512 void bf16x4_rows3_avx512(const uint16_t *w, const float *const *xe, const float *const *xo, float *const *y,
                                int cols, int r0, int r1, const char *pf, int pfstep);
AVX512 void bf16x4_rows4p_avx512(const uint16_t *w, const float *const *xe, const float *const *xo, float *const *y,
                                 int cols, int r0, int r1, const char *pf, int pfstep);
AVX2 void bf16x4_rows2_avx2(const uint16_t *w, const float *xe0, const float *xo0, const float *xe1, const float *xo1,
                            float *y0, float *y1, int cols, int r0, int r1, const char *pf, int pfstep);
AVX2 void convert_group4_avx2(const uint16_t *a, int cols, float *o0, size_t ld);
AVX2 void q8p_panel_avx2(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, float *c, int m, int nb, int ldc, int valid);
AVX2 void q4_group_avx2(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1);
AVXVNNI void q4_group_avxvnni(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1);
AVX2 void q8_rows_avx2(const int8_t *w, const float *ws, const uint8_t *const *ax, const ck_block_q8 *const *xq,
                       const float *const *xd, float *const *y, int n, int cols, int r0, int r1);
AVXVNNI void q8_rows_avxvnni(const int8_t *w, const float *ws, const uint8_t *const *ax, const ck_block_q8 *const *xq,
                             const float *const *xd, float *const *y, int n, int cols, int r0, int r1);
size_t igemm_avx2_buffer_bytes(int cols, int q4);
AVX2 void igemm_avx2_rows32(const igemm_avx2_job *g, int n0, uint8_t *buf);
AVX2 void igemm_avx2_prepare(const ck_block_q8 *xq, size_t blocks, int q4, int16_t *xw, int32_t *init);
AVX512 void q4_group_avx512(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1);
#endif
