// The thread pool and the jobs it runs (products, int8 GEMM, reads; decode attention from attention.c). See include/ckernels.h.
#include "internal.h"
#include <sched.h>
#include <stdio.h>

// ---------------------------------------------------------------------------------------------
// The pool

enum { JOB_BF16, JOB_BF16X4, JOB_Q8, JOB_Q4, JOB_READ, JOB_ATTN, JOB_ATTN_ROWS, JOB_Q8GEMM };

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
    int kind, rows, cols, isa, avx_vnni;    // the caller's instruction-set level and AVX-VNNI cap, used by every thread
    const void *w; const float *ws; const void *x; float *y;
    const uint8_t *buf; size_t n; int prefetch; uint64_t partial[64];
    int t; size_t ldy;            // activation rows of a product (1 for decoding); y's row stride
    // Buffers kept between jobs, grown by grow_buffer (each *cap in bytes).
    float *xe, *xo; size_t xecap, xocap;  // x de-interleaved once per bf16 job, cols / 2 floats per row
    int amx_wanted, amx; void *amxx; size_t amxcap;   // a prompt's bf16 rows on AMX tiles: x arranged once (amx_bf16_prepare)
    struct q4_xline_s *q4xl; float *q4xd, *q4c8; size_t q4xlcap, q4xdcap, q4c8cap;   // x arranged once per q4 job (q4_prepare_x), per row
    // A product's rows in chunks; each thread's share is chunks [lo, hi), packed as lo | hi << 32.
    int chunk_rows, chunks_per_block;
    // int8 rows by q8_rows_avx2 (q8mode 1; 0: the portable row kernel): per activation row its
    // bytes' |x| and the block scales.
    int q8mode; uint8_t *q8x; float *q8xd; size_t q8xcap, q8xdcap;
    float *ypart; size_t ypcap;   // rows in fours wider than X4_BLOCK, q4 groups: each column block's partial sums, per row
    struct { _Alignas(64) _Atomic uint64_t span; } share[64];
    // int8 GEMM: packed weights, activation blocks and their sums x 128, gm x gn outputs (ldc gldc)
    const uint8_t *gpack; const ck_block_q8 *gxq; const int32_t *gcorr; int gm, gn, gldc;
    const uint8_t *gq4;       // a q4 matrix (gn rows) whose panels each thread packs as it goes
    const int8_t *gi8;        // int8 weights in rows (gn of them), packed the same way
    igemm_avx2_job ga;        // the same product for the AVX2 tiles
    ck_attention attn;        // decode attention
    ck_attention_rows arows;  // a short prompt's attention
};

static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#endif
}

#if defined(__x86_64__)
// acc + w (unsigned bytes) . four signed bytes at x broadcast to every lane, the broadcast folded
// into the instruction's memory operand: the compiler, given _mm512_set1_epi32 of the bytes,
// hoisted 48 broadcasts a block out of general registers (vector-port work beside the 96
// products) and spilled them.
AVX512 static inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t *x) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)x));
    return acc;
}

// int8 GEMM tiles: MR activation rows x one panel of 32 weight rows (two 16-lane vectors), over
// all blocks of 32 columns. Per block: the int32 sums start at -128 x the block's activation sum,
// then eight vpdpbusd steps of four columns (packed w + 128 as the unsigned operand, four
// activation bytes broadcast as the signed one), then one FMA with the block's scale into float
// (the reference's order, so the results are its bits). Q4: the panel is a packed q4 one (each
// block's 32 weight scales after it, multiplied into the scale per block) instead of int8 with one
// scale per weight row (applied at the end). One function per format, so that no branch on it
// sits in the loop and the 4 x MR accumulators stay in registers. Columns past `valid` are not
// stored.
#define Q8_TILE(NAME, MR, Q4)                                                                              \
    AVX512 static void NAME(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, const int32_t *corr, \
                            float *c, int nb, int ldc, int valid) {                                        \
        __m512 f[MR][2];                                                                                   \
        for (int i = 0; i < MR; i++) { f[i][0] = _mm512_setzero_ps(); f[i][1] = f[i][0]; }                  \
        const size_t stride = Q4 ? 1152 : 1024;                                                            \
        for (int b = 0; b < nb; b++) {                                                                     \
            __m512i acc[MR][2];                                                                            \
            for (int i = 0; i < MR; i++) { acc[i][0] = _mm512_set1_epi32(-corr[(size_t)i * nb + b]); acc[i][1] = acc[i][0]; } \
            const uint8_t *pb = panel + (size_t)b * stride;                                                \
            for (int s = 0; s < 8; s++) {                                                                  \
                __m512i w0 = _mm512_loadu_si512((const void *)(pb + 128 * s)), w1 = _mm512_loadu_si512((const void *)(pb + 128 * s + 64)); \
                PREFETCH_W(pb + 128 * s); PREFETCH_W(pb + 128 * s + 64);                                   \
                for (int i = 0; i < MR; i++) {                                                             \
                    const int8_t *a = xq[(size_t)i * nb + b].qs + 4 * s;                                   \
                    acc[i][0] = dpbusd_bcast(acc[i][0], w0, a);                                            \
                    acc[i][1] = dpbusd_bcast(acc[i][1], w1, a);                                            \
                }                                                                                          \
            }                                                                                              \
            if (Q4) {                                                                                      \
                __m512 ws0 = _mm512_loadu_ps((const float *)(pb + 1024)), ws1 = _mm512_loadu_ps((const float *)(pb + 1088)); \
                for (int i = 0; i < MR; i++) {                                                             \
                    __m512 d = _mm512_set1_ps(xq[(size_t)i * nb + b].d);                                   \
                    f[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), _mm512_mul_ps(ws0, d), f[i][0]); \
                    f[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), _mm512_mul_ps(ws1, d), f[i][1]); \
                }                                                                                          \
            } else                                                                                         \
                for (int i = 0; i < MR; i++) {                                                             \
                    __m512 d = _mm512_set1_ps(xq[(size_t)i * nb + b].d);                                   \
                    f[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), d, f[i][0]);                  \
                    f[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), d, f[i][1]);                  \
                }                                                                                          \
        }                                                                                                  \
        __mmask16 m0 = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);                              \
        __mmask16 m1 = valid >= 32 ? 0xFFFF : (valid <= 16 ? 0 : (__mmask16)((1u << (valid - 16)) - 1));   \
        if (Q4)                                                                                            \
            for (int i = 0; i < MR; i++) {                                                                 \
                _mm512_mask_storeu_ps(c + (size_t)i * ldc, m0, f[i][0]);                                   \
                _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16, m1, f[i][1]);                              \
            }                                                                                              \
        else {                                                                                             \
            __m512 s0 = _mm512_maskz_loadu_ps(m0, sw), s1 = _mm512_maskz_loadu_ps(m1, sw + 16);           \
            for (int i = 0; i < MR; i++) {                                                                 \
                _mm512_mask_storeu_ps(c + (size_t)i * ldc, m0, _mm512_mul_ps(f[i][0], s0));                \
                _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16, m1, _mm512_mul_ps(f[i][1], s1));           \
            }                                                                                              \
        }                                                                                                  \
    }
Q8_TILE(q8_tile1, 1, 0) Q8_TILE(q8_tile2, 2, 0) Q8_TILE(q8_tile3, 3, 0) Q8_TILE(q8_tile4, 4, 0) Q8_TILE(q8_tile5, 5, 0) Q8_TILE(q8_tile6, 6, 0)
Q8_TILE(q4_tile1, 1, 1) Q8_TILE(q4_tile2, 2, 1) Q8_TILE(q4_tile3, 3, 1) Q8_TILE(q4_tile4, 4, 1) Q8_TILE(q4_tile5, 5, 1) Q8_TILE(q4_tile6, 6, 1)

// The int8 tiles with AVX-VNNI (256 bits, no AVX-512): MR activation rows x the panel's 32 weight
// rows in passes of V 8-lane vectors (one pass of four for one or two rows; for three to six two
// passes of two, so that V x MR accumulators, V weight vectors and a broadcast fit the 16
// registers), each pass over all blocks as Q8_TILE does: the sums start at -128 x the block's
// activation sum, eight vpdpbusd steps of four columns, one FMA with the block's scale, the row
// scale at the end; the reference's bits. Decoding (one row) streams each panel in one pass: in
// two, the memory would idle while the second ran from L2 (int8 decode 0.75-0.78 of the read
// rate against 0.85 for the AVX2 rows).
#define Q8V_TILE(NAME, MR, V)                                                                              \
    AVXVNNI static void NAME(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, const int32_t *corr, \
                             float *c, int nb, int ldc, int valid) {                                       \
        for (int h = 0; h < 4 / (V); h++) {                                                                \
            int n = valid - 8 * (V) * h;                                                                   \
            if (n <= 0) break;                                                                             \
            __m256 f[MR][V];                                                                               \
            for (int i = 0; i < MR; i++) for (int v = 0; v < (V); v++) f[i][v] = _mm256_setzero_ps();      \
            for (int b = 0; b < nb; b++) {                                                                 \
                __m256i acc[MR][V];                                                                        \
                for (int i = 0; i < MR; i++) for (int v = 0; v < (V); v++) acc[i][v] = _mm256_set1_epi32(-corr[(size_t)i * nb + b]); \
                const uint8_t *pb = panel + (size_t)b * 1024 + 32 * (V) * h;                               \
                for (int s = 0; s < 8; s++) {                                                              \
                    __m256i w[V];                                                                          \
                    for (int v = 0; v < (V); v++) w[v] = _mm256_loadu_si256((const __m256i *)(pb + 128 * s + 32 * v)); \
                    if (h == 0) { PREFETCH_W(pb + 128 * s); PREFETCH_W(pb + 128 * s + 64); }             \
                    for (int i = 0; i < MR; i++) {                                                         \
                        int32_t four; memcpy(&four, xq[(size_t)i * nb + b].qs + 4 * s, 4);                 \
                        __m256i a = _mm256_set1_epi32(four);                                               \
                        for (int v = 0; v < (V); v++) acc[i][v] = _mm256_dpbusd_avx_epi32(acc[i][v], w[v], a); \
                    }                                                                                      \
                }                                                                                          \
                for (int i = 0; i < MR; i++) {                                                             \
                    __m256 d = _mm256_set1_ps(xq[(size_t)i * nb + b].d);                                   \
                    for (int v = 0; v < (V); v++) f[i][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][v]), d, f[i][v]); \
                }                                                                                          \
            }                                                                                              \
            const float *sh = sw + 8 * (V) * h;                                                            \
            for (int i = 0; i < MR; i++) {                                                                 \
                float out[32], *row = c + (size_t)i * ldc + 8 * (V) * h;                                   \
                for (int v = 0; v < (V); v++) _mm256_storeu_ps(out + 8 * v, f[i][v]);                      \
                for (int j = 0; j < (n < 8 * (V) ? n : 8 * (V)); j++) row[j] = out[j] * sh[j];              \
            }                                                                                              \
        }                                                                                                  \
    }
Q8V_TILE(q8v_tile1, 1, 4) Q8V_TILE(q8v_tile2, 2, 4) Q8V_TILE(q8v_tile3, 3, 2) Q8V_TILE(q8v_tile4, 4, 2) Q8V_TILE(q8v_tile5, 5, 2) Q8V_TILE(q8v_tile6, 6, 2)
static void (*const q8v_tiles[6])(const uint8_t *, const float *, const ck_block_q8 *, const int32_t *, float *, int, int, int) = {
    q8v_tile1, q8v_tile2, q8v_tile3, q8v_tile4, q8v_tile5, q8v_tile6};

// [q4 panels][activation rows - 1]
static void (*const q8_tiles[2][6])(const uint8_t *, const float *, const ck_block_q8 *, const int32_t *, float *, int, int, int) = {
    {q8_tile1, q8_tile2, q8_tile3, q8_tile4, q8_tile5, q8_tile6}, {q4_tile1, q4_tile2, q4_tile3, q4_tile4, q4_tile5, q4_tile6}};

#endif

#if defined(__x86_64__)
// Panel pn of a q4 matrix (rows r0 = 32 pn ..< r0 + 32, past `rows` zero weights and scales) in
// ck_q4_gemm_pack's layout, for full column groups (nb a multiple of 32). Per line of four
// blocks, four rows' lines are transposed by 128-bit lanes into each block's four rows, the nibbles
// split and offset, and each 4-column slice of the block gathered from the rows by dword
// permutes; the 32 rows' scales of a block by one masked gather each half.
AVX512 static void q4_pack_panel_avx512(const uint8_t *w, int rows, int nb, int r0, uint8_t *out) {
    static const uint8_t empty[64] = { [0 ... 63] = 0x88 };   // nibbles 8: weight 0
    int valid = rows - r0 < 32 ? rows - r0 : 32;
    const __m512i m = _mm512_set1_epi8(0x0F), off = _mm512_set1_epi8(120);
    const __m512i join = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    __m512i sel[4];
    for (int s = 0; s < 4; s++) sel[s] = _mm512_setr_epi32(s, 4 + s, 8 + s, 12 + s, 16 + s, 20 + s, 24 + s, 28 + s, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i rowoff = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(Q4_SG * 18));
    __mmask16 v0 = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);
    __mmask16 v1 = valid >= 32 ? 0xFFFF : (valid <= 16 ? 0 : (__mmask16)((1u << (valid - 16)) - 1));
    _Alignas(64) uint8_t q[4][8][64];        // per block of a line, per 4 rows: the four rows' 16 bytes
    for (int g = 0; g < nb / Q4_SG; g++) {
        const uint8_t *gb = w + (size_t)g * rows * (Q4_SG * 18) + (size_t)r0 * (Q4_SG * 18);
        for (int l = 0; l < 8; l++) {
            for (int k = 0; k < 8; k++) {
                __m512i L[4];
                for (int i = 0; i < 4; i++) {
                    int r = 4 * k + i;
                    L[i] = _mm512_loadu_si512((const void *)(r < valid ? gb + (size_t)r * (Q4_SG * 18) + 64 + 64 * l : empty));
                }
                __m512i t0 = _mm512_shuffle_i32x4(L[0], L[1], 0x44), t1 = _mm512_shuffle_i32x4(L[0], L[1], 0xEE);
                __m512i t2 = _mm512_shuffle_i32x4(L[2], L[3], 0x44), t3 = _mm512_shuffle_i32x4(L[2], L[3], 0xEE);
                _mm512_store_si512((void *)q[0][k], _mm512_shuffle_i32x4(t0, t2, 0x88));
                _mm512_store_si512((void *)q[1][k], _mm512_shuffle_i32x4(t0, t2, 0xDD));
                _mm512_store_si512((void *)q[2][k], _mm512_shuffle_i32x4(t1, t3, 0x88));
                _mm512_store_si512((void *)q[3][k], _mm512_shuffle_i32x4(t1, t3, 0xDD));
            }
            for (int c = 0; c < 4; c++) {
                int b = Q4_SG * g + 4 * l + c;
                uint8_t *ob = out + (size_t)b * 1152;
                __m512i lo[8], hi[8];
                for (int k = 0; k < 8; k++) {
                    __m512i v = _mm512_load_si512((const void *)q[c][k]);
                    lo[k] = _mm512_add_epi8(_mm512_and_si512(v, m), off);
                    hi[k] = _mm512_add_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m), off);
                }
                for (int s = 0; s < 4; s++) {
                    __m512i a = _mm512_permutex2var_epi32(lo[0], sel[s], lo[1]), bb = _mm512_permutex2var_epi32(lo[2], sel[s], lo[3]);
                    __m512i cc = _mm512_permutex2var_epi32(lo[4], sel[s], lo[5]), d = _mm512_permutex2var_epi32(lo[6], sel[s], lo[7]);
                    _mm512_storeu_si512((void *)(ob + 128 * s), _mm512_permutex2var_epi32(a, join, bb));
                    _mm512_storeu_si512((void *)(ob + 128 * s + 64), _mm512_permutex2var_epi32(cc, join, d));
                    a = _mm512_permutex2var_epi32(hi[0], sel[s], hi[1]); bb = _mm512_permutex2var_epi32(hi[2], sel[s], hi[3]);
                    cc = _mm512_permutex2var_epi32(hi[4], sel[s], hi[5]); d = _mm512_permutex2var_epi32(hi[6], sel[s], hi[7]);
                    _mm512_storeu_si512((void *)(ob + 128 * (s + 4)), _mm512_permutex2var_epi32(a, join, bb));
                    _mm512_storeu_si512((void *)(ob + 128 * (s + 4) + 64), _mm512_permutex2var_epi32(cc, join, d));
                }
                const uint8_t *sc = gb + 2 * (4 * l + c);
                __m512i h0 = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), v0, rowoff, sc, 1);
                __m512i h1 = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), v1, rowoff, sc + (size_t)16 * (Q4_SG * 18), 1);
                _mm512_storeu_ps(ob + 1024, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h0)));
                _mm512_storeu_ps(ob + 1088, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h1)));
            }
        }
    }
}
#endif

// Panels p0..<p1 of the current int8 GEMM job, all activation rows: with VNNI six at a time
// (int8 and q4 panels), else int8 panels by the AVX2 or portable kernel. Weights not packed
// already (q4, int8 in rows) are packed panel by panel into a buffer of the thread's, so they come
// from memory once; with AVX2 (no VNNI) those go through its integer GEMM's own panels.
static void q8_gemm_panels(const ck_pool *p, int p0, int p1) {
    int nb = p->cols / CK_QK, isa = ck_isa();
    int avx2 = isa == 1 && !p->gpack;
    static _Thread_local void *panels; static _Thread_local size_t cap;
    size_t need = avx2 ? igemm_avx2_buffer_bytes(p->cols, p->gq4 != NULL) : (p->gq4 ? (size_t)nb * 1152 : (p->gi8 ? (size_t)32 * p->cols : 0));
    uint8_t *buf = panels = grow_buffer(panels, &cap, need, "a GEMM panel");
    for (int pn = p0; pn < p1; pn++) {
        int n0 = 32 * pn, valid = p->gn - n0 < 32 ? p->gn - n0 : 32;
#if defined(__x86_64__)
        if (avx2) { igemm_avx2_rows32(&p->ga, n0, buf); continue; }
#endif
        const uint8_t *panel;
        if (p->gq4) {
#if defined(__x86_64__)
            if (nb % Q4_SG == 0) q4_pack_panel_avx512(p->gq4, p->gn, nb, n0, buf);
            else
#endif
            ck_q4_gemm_pack(p->gq4, p->gn, p->cols, n0, n0 + valid, buf);
            panel = buf;
        } else if (p->gi8) {
            ck_q8_gemm_pack(p->gi8 + (size_t)n0 * p->cols, valid, p->cols, buf);
            panel = buf;
        } else panel = p->gpack + (size_t)pn * 32 * (p->ws ? (size_t)p->cols : (size_t)nb * 36);
        float *c0 = p->y + n0;
        if (isa < 2 && !p->gcorr) {
#if defined(__x86_64__)
            if (isa == 1) { q8p_panel_avx2(panel, p->ws + n0, p->gxq, c0, p->gm, nb, p->gldc, valid); continue; }
#endif
            q8p_panel_c(panel, p->ws + n0, p->gxq, c0, p->gm, nb, p->gldc, valid);
            continue;
        }
#if defined(__x86_64__)
        for (int m0 = 0; m0 < p->gm; m0 += 6) {
            int mr = p->gm - m0 < 6 ? p->gm - m0 : 6;
            const ck_block_q8 *xq = p->gxq + (size_t)m0 * nb;
            const int32_t *corr = p->gcorr + (size_t)m0 * nb;
            float *c = p->y + (size_t)m0 * p->gldc + n0;
            const float *sw = p->ws ? p->ws + n0 : NULL;
            if (isa == 1) q8v_tiles[mr - 1](panel, sw, xq, corr, c, nb, p->gldc, valid);
            else q8_tiles[sw == NULL][mr - 1](panel, sw, xq, corr, c, nb, p->gldc, valid);
        }
#endif
    }
}



// How many column blocks a job's rows run through: bf16 rows in fours wider than X4_BLOCK, and
// q4 matrices of more than one column group; 1 for the rest.
static int job_blocks(int kind, int cols) {
    return kind == JOB_BF16X4 ? x4_blocks(cols) : (kind == JOB_Q4 ? q4_groups(cols / CK_QK) : 1);
}

// What a range function needs of activation row m of the current product: its input (floats
// or int8 blocks), its arranged forms, its output row and its partial sums.
typedef struct {
    const void *x; const float *xe, *xo;
    const q4_xline *xl; const float *xd, *c8;
    float *y, *ypart;
} ck_vec;

static ck_vec vec_of(const ck_pool *p, int m) {
    ck_vec v = { 0 };
    int nb = p->cols / CK_QK, full = nb / Q4_SG * Q4_SG;
    int quant = p->kind == JOB_Q8 || p->kind == JOB_Q4;
    v.x = quant ? (const void *)((const ck_block_q8 *)p->x + (size_t)m * nb) : (const void *)((const float *)p->x + (size_t)m * p->cols);
    if (p->kind == JOB_BF16 || p->kind == JOB_BF16X4) { v.xe = p->xe + (size_t)m * (p->cols / 2); v.xo = p->xo + (size_t)m * (p->cols / 2); }
    if (p->kind == JOB_Q4 && full > 0) {
        v.xl = p->q4xl + (size_t)m * (full / 4); v.xd = p->q4xd + (size_t)m * full; v.c8 = p->q4c8 + (size_t)m * full;
    }
    v.y = p->y + (size_t)m * p->ldy;
    int blocks = job_blocks(p->kind, p->cols);
    if (blocks > 1) v.ypart = p->ypart + (size_t)m * blocks * p->rows;
    return v;
}

// Rows r0..<r1 of column block b of a product of rows in groups of four: the full groups in the
// range, then (block 0) any of the rows after them, stored whole. With more than one block each
// block writes its own partial sums (ypart, summed in block order by matvec_job).
static void bf16x4_range(const ck_pool *p, const ck_vec *v, int b, int r0, int r1) {
    int full = p->rows / 4 * 4, g1 = r1 < full ? r1 : full, c0 = b * X4_BLOCK, width = x4_width(p->cols, b);
    const uint16_t *w = (const uint16_t *)p->w, *wb = x4_block(w, p->rows, b);
    float *y = x4_blocks(p->cols) > 1 ? v->ypart + (size_t)b * p->rows : v->y;
    if (r0 < g1) {
#if defined(__x86_64__)
        if (has_avx512()) bf16x4_rows_avx512(wb, v->xe + c0 / 2, v->xo + c0 / 2, y, width, r0, g1);
        else if (ck_has_avx2()) bf16x4_rows_avx2(wb, v->xe + c0 / 2, v->xo + c0 / 2, y, width, r0, g1);
        else
#endif
        bf16x4_rows_c(wb, (const float *)v->x + c0, y, width, r0, g1);
    }
    if (r1 > full) {
        int t0 = r0 > full ? r0 : full;
        if (b > 0) { for (int r = t0; r < r1; r++) y[r] = 0; return; }
#if defined(__x86_64__)
        if (ck_has_avx2()) { bf16_rows(w, v->xe, v->xo, (const float *)v->x, y, p->cols, t0, r1); return; }
#endif
        matvec_bf16_c(w, (const float *)v->x, y, p->cols, t0, r1);
    }
}

// Whether a bf16 prompt's rows go in fours with AVX-512 (INTERNVL_CHAT_PROMPT_FOURS=0: in threes,
// the one-row bits, for comparisons).
static int prompt_fours = 1;
__attribute__((constructor)) static void prompt_fours_from_env(void) {
    const char *e = getenv("INTERNVL_CHAT_PROMPT_FOURS");
    if (e && strcmp(e, "0") == 0) prompt_fours = 0;
}
int ck_prompt_rows_in_fours(void) { return prompt_fours; }

#if defined(__x86_64__)
// The weights of the chunk after chunk c of a bf16 product in fours (the next one a thread takes
// from its own share), or NULL past the last full group.
static const char *next_chunk(const ck_pool *p, int c) {
    int n = c + 1, b = n / p->chunks_per_block, r0 = (n % p->chunks_per_block) * p->chunk_rows;
    if (b >= x4_blocks(p->cols) || r0 >= p->rows / 4 * 4) return NULL;
    return (const char *)(x4_block((const uint16_t *)p->w, p->rows, b) + (size_t)r0 * x4_width(p->cols, b));
}

// bf16x4_range for n (2, 3 or, a prompt's, 4) activation rows: their full groups together
// (bf16x4_rows2_avx512 or _avx2, bf16x4_rows3_avx512, bf16x4_rows4p_avx512), the rows after them
// one activation row at a time.
static void bf16x4_rows_n(const ck_pool *p, const ck_vec *v, int n, int b, int r0, int r1, const char *pf, int pfstep) {
    int full = p->rows / 4 * 4, g1 = r1 < full ? r1 : full, c0 = b * X4_BLOCK, width = x4_width(p->cols, b);
    if (r0 < g1) {
        const uint16_t *wb = x4_block((const uint16_t *)p->w, p->rows, b);
        int parts = x4_blocks(p->cols) > 1;
        const float *xe[4], *xo[4]; float *y[4];
        for (int i = 0; i < n; i++) {
            xe[i] = v[i].xe + c0 / 2; xo[i] = v[i].xo + c0 / 2;
            y[i] = parts ? v[i].ypart + (size_t)b * p->rows : v[i].y;
        }
        if (n == 4) bf16x4_rows4p_avx512(wb, xe, xo, y, width, r0, g1, pf, pfstep);
        else if (n == 3) bf16x4_rows3_avx512(wb, xe, xo, y, width, r0, g1, pf, pfstep);
        else if (has_avx512()) bf16x4_rows2_avx512(wb, xe[0], xo[0], xe[1], xo[1], y[0], y[1], width, r0, g1, pf, pfstep);
        else bf16x4_rows2_avx2(wb, xe[0], xo[0], xe[1], xo[1], y[0], y[1], width, r0, g1, pf, pfstep);
    }
    if (r1 > full) {
        int t0 = r0 > full ? r0 : full;
        for (int i = 0; i < n; i++) bf16x4_range(p, v + i, b, t0, r1);
    }
}
#endif

// Column group s of rows r0..<r1 of a q4 product: its part of each row, into y (one group) or
// the group's partial sums (several). Full groups by the SIMD kernels, from the activations
// matvec_job arranged; a narrower last group, and every group without AVX2, by the reference.
static void q4_range(const ck_pool *p, const ck_vec *v, int s, int r0, int r1) {
    int nb = p->cols / CK_QK, groups = q4_groups(nb);
    float *y = groups > 1 ? v->ypart + (size_t)s * p->rows : v->y;
#if defined(__x86_64__)
    if (q4_gsize(nb, s) == Q4_SG && ck_has_avx2()) {
        const uint8_t *g = (const uint8_t *)p->w + (size_t)s * p->rows * (Q4_SG * 18);
        const q4_xline *xl = v->xl + 8 * s;
        const float *xd = v->xd + Q4_SG * s, *c8 = v->c8 + Q4_SG * s;
        if (has_avx512()) q4_group_avx512(g, xl, xd, c8, y, r0, r1);
        else if (ck_avx_vnni()) q4_group_avxvnni(g, xl, xd, c8, y, r0, r1);
        else q4_group_avx2(g, xl, xd, c8, y, r0, r1);
        return;
    }
#endif
    for (int r = r0; r < r1; r++) y[r] = q4_group_ref((const uint8_t *)p->w, p->rows, nb, r, s, (const ck_block_q8 *)v->x);
}


// Column block b of rows r0..<r1 of a job with blocks (job_blocks).
static void block_range(const ck_pool *p, const ck_vec *v, int b, int r0, int r1) {
    if (p->kind == JOB_BF16X4) bf16x4_range(p, v, b, r0, r1); else q4_range(p, v, b, r0, r1);
}

// Rows r0..<r1 of the current matrix-vector job (bf16 uses the job's de-interleaved x).
static void matvec_range(const ck_pool *p, const ck_vec *v, int r0, int r1) {
    switch (p->kind) {
    case JOB_BF16:
#if defined(__x86_64__)
        if (ck_has_avx2()) { bf16_rows((const uint16_t *)p->w, v->xe, v->xo, (const float *)v->x, v->y, p->cols, r0, r1); break; }
#endif
        matvec_bf16_c((const uint16_t *)p->w, (const float *)v->x, v->y, p->cols, r0, r1); break;
    case JOB_BF16X4: case JOB_Q4:
        for (int b = 0; b < job_blocks(p->kind, p->cols); b++) block_range(p, v, b, r0, r1);
        break;
    case JOB_Q8GEMM: q8_gemm_panels(p, r0, r1); break;
    case JOB_Q8: ck_matvec_q8((const int8_t *)p->w, p->ws, (const ck_block_q8 *)v->x, v->y, p->cols, r0, r1); break;
    }
}

// Rows r0..<r1 of an int8 product for all its activation rows, Q8_ROWS at a time (q8mode set).
static void q8_rows_range(const ck_pool *p, int r0, int r1) {
#if defined(__x86_64__)
    int nb = p->cols / CK_QK;
    for (int m = 0; m < p->t; m += Q8_ROWS) {
        int n = p->t - m < Q8_ROWS ? p->t - m : Q8_ROWS;
        const uint8_t *xu[Q8_ROWS]; const float *xd[Q8_ROWS]; const ck_block_q8 *xq[Q8_ROWS]; float *y[Q8_ROWS];
        for (int i = 0; i < n; i++) {
            xu[i] = p->q8x + (size_t)(m + i) * p->cols; xd[i] = p->q8xd + (size_t)(m + i) * nb;
            xq[i] = (const ck_block_q8 *)p->x + (size_t)(m + i) * nb; y[i] = p->y + (size_t)(m + i) * p->ldy;
        }
        if (ck_avx_vnni()) q8_rows_avxvnni((const int8_t *)p->w, p->ws, xu, xq, xd, y, n, p->cols, r0, r1);
        else q8_rows_avx2((const int8_t *)p->w, p->ws, xu, xq, xd, y, n, p->cols, r0, r1);
    }
#else
    (void)p; (void)r0; (void)r1;
#endif
}

static void run_share(ck_pool *p, int self) {
    if (p->kind == JOB_ATTN) {
        attention_part(&p->attn, self, p->threads);
        return;
    }
    if (p->kind == JOB_ATTN_ROWS) {
        attention_rows_part(&p->arows, self, p->threads);
        return;
    }
    if (p->kind == JOB_READ) {
        size_t per = (p->n / p->threads) & ~(size_t)127, start = per * (size_t)self;
        size_t len = self == p->threads - 1 ? p->n - start : per;
        p->partial[self] = read_part(p->buf + start, len, p->prefetch);
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
            // Chunks run through each column block's rows in turn (job_blocks: often one); every
            // activation row runs over a chunk before the next chunk, whose weights then come
            // from memory once for all of them (the chunk stays in the core's L2).
            int b = (int)c / p->chunks_per_block, r0 = ((int)c % p->chunks_per_block) * p->chunk_rows, r1 = r0 + p->chunk_rows;
            if (r1 > p->rows) r1 = p->rows;
            if (p->kind == JOB_Q8GEMM) { matvec_range(p, NULL, r0, r1); continue; }
            if (p->kind == JOB_Q8 && p->q8mode) { q8_rows_range(p, r0, r1); continue; }
            int m = 0;
#if defined(__x86_64__)
            if (p->amx && p->kind == JOB_BF16) {
                int a1 = r0 + (r1 - r0) / 64 * 64;                 // whole runs of 64 rows on the tiles
                for (int r = r0; r < a1; r += 64) amx_bf16_rows64((const uint16_t *)p->w, p->cols, r, (const uint16_t *)p->amxx, p->t, p->y, p->ldy);
                r0 = a1;
                if (r0 >= r1) continue;
            }
            if (p->amx && p->kind == JOB_BF16X4) {
                // Whole runs of 64 rows (16 groups) on the tiles; any rows after them below.
                int full = p->rows / 4 * 4, g1 = r1 < full ? r1 : full, a1 = g1 > r0 ? r0 + (g1 - r0) / 64 * 64 : r0;
                int blocks = x4_blocks(p->cols);
                const uint16_t *wb = x4_block((const uint16_t *)p->w, p->rows, b);
                const uint16_t *xt = (const uint16_t *)p->amxx + (size_t)b * (X4_BLOCK / 32) * amx_m_tiles(p->t) * 1024;
                float *y = blocks > 1 ? p->ypart + (size_t)b * p->rows : p->y;
                size_t ldy = blocks > 1 ? (size_t)blocks * p->rows : p->ldy;
                for (int r = r0; r < a1; r += 64) amx_bf16x4_rows64(wb, x4_width(p->cols, b), r / 4, xt, p->t, y, ldy);
                r0 = a1;
                if (r0 >= r1) continue;
            }
            if (p->kind == JOB_BF16X4 && ck_has_avx2() && p->t >= 2) {
                // A prompt's rows in fours (AVX-512, not the one-row bits), then rows in threes
                // (AVX-512) and pairs: each weight widened once for all of them, no row left
                // alone (4 = 2 + 2) but the last of a prompt of 4k + 1 rows. The next chunk is
                // fetched into L2 while this one is multiplied, a part during each of the first
                // (up to four) passes: the passes after the first hit only L2, and the hardware
                // prefetchers, which follow misses, would leave the memory idle through them.
                int fours = has_avx512() && p->amx_wanted && prompt_fours ? p->t / 4 : 0, rest = p->t - 4 * fours;
                int threes = has_avx512() ? rest / 3 : 0;
                if (threes > 0 && rest % 3 == 1) threes--;
                int calls = fours + threes + (rest - 3 * threes) / 2;
                int passes = calls < 4 ? calls : 4, step = (256 / passes + 63) & ~63;
                const char *next = next_chunk(p, (int)c);
                size_t part = (size_t)(r1 - r0) * x4_width(p->cols, b) * 2 / passes;
                for (int j = 0; m + 1 < p->t; j++) {
                    int n = j < fours ? 4 : (j < fours + threes ? 3 : 2);
                    ck_vec v[4];
                    for (int i = 0; i < n; i++) v[i] = vec_of(p, m + i);
                    bf16x4_rows_n(p, v, n, b, r0, r1, next && j < passes ? next + part * j : NULL, step);
                    m += n;
                }
            }
#endif
            for (; m < p->t; m++) {
                ck_vec v = vec_of(p, m);
                if (p->kind == JOB_BF16X4 || p->kind == JOB_Q4) block_range(p, &v, b, r0, r1); else matvec_range(p, &v, r0, r1);
            }
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
            // Every ~256 pauses the core is offered to any other runnable thread (a server's
            // network and stream threads): a spinning thread that the kernel preempts instead
            // holds up the product it is part of for a whole time slice.
            if (++k == 256) { k = 0; if (now_us() > until) break; sched_yield(); }
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
        isa_cap = p->isa; avx_vnni_cap = p->avx_vnni;
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
    free(p->q8x); free(p->q8xd); free(p->amxx);
    free(p);
}

int ck_pool_threads(const ck_pool *p) { return p->threads; }

void *grow_buffer(void *buf, size_t *cap, size_t need, const char *what) {
    if (*cap >= need) return buf;
    free(buf);
    *cap = (need + 63) / 64 * 64;
    buf = aligned_alloc(64, *cap);
    if (!buf) { fprintf(stderr, "internvl-chat: out of memory for %s (%zu bytes)\n", what, *cap); abort(); }
    return buf;
}

static void dispatch(ck_pool *p) {
    p->isa = ck_isa(); p->avx_vnni = avx_vnni_cap;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->threads > 1) {
        pthread_mutex_lock(&p->mu);
        if (p->sleepers > 0) pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    run_share(p, 0);
    // Waiting for a worker the kernel has not run yet: after a short spin, give it this core.
    for (int k = 1; atomic_load_explicit(&p->done, memory_order_acquire) < p->threads - 1; k++) {
        cpu_relax();
        if (k % 256 == 0) sched_yield();
    }
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

static void matvec_job(ck_pool *p, int kind, const void *w, const float *ws, const void *x, float *y, int rows, int cols,
                       int t, size_t ldy) {
    p->kind = kind; p->w = w; p->ws = ws; p->x = x; p->y = y; p->rows = rows; p->cols = cols; p->t = t; p->ldy = ldy;
    int nb = cols / CK_QK;
    // q4: the full column groups' activations arranged once per row for all threads and chunks.
    int full = kind == JOB_Q4 ? nb / Q4_SG * Q4_SG : 0;
    if (full > 0) {
        p->q4xl = grow_buffer(p->q4xl, &p->q4xlcap, (size_t)t * (full / 4) * sizeof(q4_xline), "a q4 product's activations");
        p->q4xd = grow_buffer(p->q4xd, &p->q4xdcap, (size_t)t * full * sizeof(float), "a q4 product's activations");
        p->q4c8 = grow_buffer(p->q4c8, &p->q4c8cap, (size_t)t * full * sizeof(float), "a q4 product's activations");
        for (int m = 0; m < t; m++)
            q4_prepare_x((const ck_block_q8 *)x + (size_t)m * nb, full, p->q4xl + (size_t)m * (full / 4),
                         p->q4xd + (size_t)m * full, p->q4c8 + (size_t)m * full);
    }
    // int8 rows: every activation row through q8_rows_avx2 (one row too).
    p->q8mode = 0;
#if defined(__x86_64__)
    if (kind == JOB_Q8 && ck_has_avx2() && nb % 4 == 0) p->q8mode = 1;
    if (p->q8mode) {
        p->q8x = grow_buffer(p->q8x, &p->q8xcap, (size_t)t * cols, "an int8 product's activations");
        p->q8xd = grow_buffer(p->q8xd, &p->q8xdcap, (size_t)t * nb * sizeof(float), "an int8 product's activations");
        const ck_block_q8 *xq = (const ck_block_q8 *)x;
        for (size_t b = 0; b < (size_t)t * nb; b++) {
            uint8_t *o = p->q8x + b * CK_QK;
            for (int j = 0; j < CK_QK; j++) {
                int v = xq[b].qs[j];
                o[j] = (uint8_t)(v < 0 ? -v : v);
            }
            p->q8xd[b] = xq[b].d;
        }
    }
#endif
    p->amx = 0;
#if defined(__x86_64__)
    if ((kind == JOB_BF16X4 || kind == JOB_BF16) && p->amx_wanted && t >= 2 && ck_prompt_on_tiles(rows, cols)) {
        size_t need = amx_bf16_prepared_halfwords(t, cols);
        p->amxx = grow_buffer(p->amxx, &p->amxcap, need * 2, "a prompt's tiles");
        amx_bf16_prepare((const float *)x, t, cols, p->amxx);
        p->amx = 1;
    }
#endif
    int bf16 = kind == JOB_BF16 || kind == JOB_BF16X4;
    if (bf16 && !(p->amx && rows % 64 == 0)) {          // (rows in runs of 64 all go through the tiles)
        size_t need = (size_t)t * (cols / 2);
        p->xe = grow_buffer(p->xe, &p->xecap, need * 4 + 4, "a bf16 product's activations");
        p->xo = grow_buffer(p->xo, &p->xocap, need * 4 + 4, "a bf16 product's activations");
        for (int m = 0; m < t; m++)
            deinterleave((const float *)x + (size_t)m * cols, cols, p->xe + (size_t)m * (cols / 2), p->xo + (size_t)m * (cols / 2));
    }
    int blocks = job_blocks(kind, cols);
    if (blocks > 1) p->ypart = grow_buffer(p->ypart, &p->ypcap, (size_t)t * blocks * rows * sizeof(float), "a product's partial sums");
    matvec_dispatch(p, kind, rows, cols, blocks);
    // The column blocks' partial sums, added in block order (the same result on any number of threads).
    if (blocks > 1)
        for (int m = 0; m < t; m++) {
            float *yp = p->ypart + (size_t)m * blocks * rows;
            for (int b = 1; b < blocks; b++)
                for (int r = 0; r < rows; r++) yp[r] += yp[(size_t)b * rows + r];
            memcpy(y + (size_t)m * ldy, yp, (size_t)rows * sizeof(float));
        }
}

static void matvec_dispatch(ck_pool *p, int kind, int rows, int cols, int blocks) {
    // Under ~32 KB of weights (at least 8 rows) waking the workers costs more than it saves.
    int bytes_per_row = kind == JOB_BF16 || kind == JOB_BF16X4 ? cols * 2 : (kind == JOB_Q8 ? cols : cols / CK_QK * 18);
    int small = 32768 / (bytes_per_row > 0 ? bytes_per_row : 1);
    if (!p->amx && (p->threads == 1 || rows < (small < 8 ? 8 : small))) {
        if (kind == JOB_Q8 && p->q8mode) { q8_rows_range(p, 0, rows); return; }
        for (int m = 0; m < p->t; m++) {
            ck_vec v = vec_of(p, m);
            if (blocks > 1) for (int b = 0; b < blocks; b++) block_range(p, &v, b, 0, rows);
            else matvec_range(p, &v, 0, rows);
        }
        return;
    }
    // Chunks of ~64 KiB of weights (whole groups of four rows), shares of whole chunks. A thread
    // takes its own chunks in order, so its stream stays contiguous; smaller chunks only shorten
    // the wait at the end of a product. In q4 decode profiles the spinning (worker, dispatch and
    // the chunk claims) came to 11% of the kernels' time with 192 KiB chunks, 6% with 64 KiB and
    // 9% with 32 KiB (more claims).
    // A wide matrix's chunks are ~64 KiB of one column block (the chunks of block 0, then of 1, ...).
    // Several bf16 activation rows take chunks of ~128 KiB: their passes after the first run from
    // L2 while the next chunk is fetched, and longer chunks gave four rows of the model's matrices
    // ~10% more (fast memory state: 88-99 ms against 98-112 ms with 64 KiB).
    int chunk_kib = p->amx ? 256 : (kind == JOB_BF16X4 && p->t >= 2 ? 128 : 64);
    int cr = (chunk_kib << 10) / (bytes_per_row / blocks > 0 ? bytes_per_row / blocks : 1);
    if (p->amx) cr = cr < 64 ? 64 : cr & ~63;           // whole runs of the tiles' 64 rows
    else cr = cr < 4 ? 4 : cr & ~3;
    int chunks = (rows + cr - 1) / cr;
    split_shares(p, cr, chunks, blocks);
    dispatch(p);
}

static void locked_matvec(ck_pool *p, int kind, const void *w, const float *ws, const void *x, float *y, int rows, int cols,
                          int t) {
    if (t < 1) return;
    pthread_mutex_lock(&p->job);
    matvec_job(p, kind, w, ws, x, y, rows, cols, t, (size_t)rows);
    pthread_mutex_unlock(&p->job);
}

void ck_pool_matvec_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int rows, int cols) { locked_matvec(p, JOB_BF16, w, NULL, x, y, rows, cols, 1); }
void ck_pool_matvec_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int rows, int cols) { locked_matvec(p, JOB_BF16X4, w, NULL, x, y, rows, cols, 1); }
void ck_pool_matvec_q8(ck_pool *p, const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int rows, int cols) { locked_matvec(p, JOB_Q8, w, ws, xq, y, rows, cols, 1); }
void ck_pool_matvec_q4(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *y, int rows, int cols) { locked_matvec(p, JOB_Q4, w, NULL, xq, y, rows, cols, 1); }

void ck_pool_matrows_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols) { locked_matvec(p, JOB_BF16, w, NULL, x, y, rows, cols, t); }
void ck_pool_matrows_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols) { locked_matvec(p, JOB_BF16X4, w, NULL, x, y, rows, cols, t); }
int ck_prompt_on_tiles(int rows, int cols) { return ck_isa() >= 3 && cols % 32 == 0 && rows >= 64; }

static void prompt_job(ck_pool *p, int kind, const uint16_t *w, const float *x, float *y, int t, int rows, int cols) {
    if (t < 1) return;
    pthread_mutex_lock(&p->job);
    p->amx_wanted = 1;
    matvec_job(p, kind, w, NULL, x, y, rows, cols, t, (size_t)rows);
    p->amx_wanted = 0;
    pthread_mutex_unlock(&p->job);
}

void ck_pool_prompt_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols) { prompt_job(p, JOB_BF16, w, x, y, t, rows, cols); }
void ck_pool_prompt_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols) { prompt_job(p, JOB_BF16X4, w, x, y, t, rows, cols); }
void ck_pool_matrows_q8(ck_pool *p, const int8_t *w, const float *ws, const ck_block_q8 *xq, float *y, int t, int rows, int cols) { locked_matvec(p, JOB_Q8, w, ws, xq, y, rows, cols, t); }
void ck_pool_matrows_q4(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *y, int t, int rows, int cols) { locked_matvec(p, JOB_Q4, w, NULL, xq, y, rows, cols, t); }

int ck_q8_gemm_available(void) { return has_avx512() || ck_avx_vnni(); }

static void q8_gemm_job(ck_pool *p, const uint8_t *packed, const uint8_t *q4, const int8_t *i8, const float *wscale,
                        const ck_block_q8 *xq, float *c, int m, int n, int k, int ldc);

void ck_pool_q8_gemm(ck_pool *p, const uint8_t *packed, const float *wscale, const ck_block_q8 *xq, float *c,
                     int m, int n, int k, int ldc) {
    if (!wscale && ck_isa() < 2) {       // q4 panels have tiles with AVX-512 VNNI only
        fprintf(stderr, "internvl-chat: q4 GEMM panels need AVX-512 VNNI\n");
        abort();
    }
    q8_gemm_job(p, packed, NULL, NULL, wscale, xq, c, m, n, k, ldc);
}

void ck_pool_q8_gemm_rows(ck_pool *p, const int8_t *w, const float *wscale, const ck_block_q8 *xq, float *c,
                          int m, int rows, int k, int ldc) {
    q8_gemm_job(p, NULL, NULL, w, wscale, xq, c, m, rows, k, ldc);
}

void ck_pool_q4_gemm(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *c, int m, int rows, int k, int ldc) {
    if (ck_isa() < 1) {          // the tiles need AVX2: the reference, output by output
        for (int i = 0; i < m; i++)
            for (int j = 0; j < rows; j++) c[(size_t)i * ldc + j] = ck_q4_gemm_ref(w, rows, j, xq + (size_t)i * (k / CK_QK), k);
        return;
    }
    q8_gemm_job(p, NULL, w, NULL, NULL, xq, c, m, rows, k, ldc);
}

static void *job_alloc(size_t bytes) {
    void *v = malloc(bytes ? bytes : 1);
    if (!v) { fprintf(stderr, "internvl-chat: out of memory for a GEMM's activations (%zu bytes)\n", bytes); abort(); }
    return v;
}

// The activations as the tiles of this ISA take them: with VNNI each block's sum x 128 (the
// unsigned operand's offset); with AVX2 and weights it packs itself, int8 as int16 or the q4
// tiles' starting sums.
static void q8_gemm_job(ck_pool *p, const uint8_t *packed, const uint8_t *q4, const int8_t *i8, const float *wscale,
                        const ck_block_q8 *xq, float *c, int m, int n, int k, int ldc) {
    int nb = k / CK_QK, panels = (n + 31) / 32, isa = ck_isa();
    size_t blocks = (size_t)m * nb;
    int32_t *corr = NULL, *init = NULL; int16_t *xw = NULL;
    // The VNNI tiles: AVX-512, or AVX-VNNI for int8 panels (q4 and int8 rows at level 1 take the
    // AVX2 integer GEMM's own panels).
    if (isa >= 2 || (isa == 1 && packed && wscale && ck_avx_vnni())) {
        corr = job_alloc(blocks * sizeof(int32_t));
        for (size_t i = 0; i < blocks; i++) {
            int32_t t = 0;
            for (int e = 0; e < CK_QK; e++) t += xq[i].qs[e];
            corr[i] = 128 * t;
        }
    }
#if defined(__x86_64__)
    if (isa == 1 && !packed) {
        if (q4) init = job_alloc(blocks * sizeof(int32_t)); else xw = job_alloc(blocks * CK_QK * sizeof(int16_t));
        igemm_avx2_prepare(xq, blocks, q4 != NULL, xw, init);
    }
#endif
    pthread_mutex_lock(&p->job);
    p->kind = JOB_Q8GEMM; p->gpack = packed; p->gq4 = q4; p->gi8 = i8; p->ws = wscale; p->gxq = xq; p->gcorr = corr; p->y = c;
    p->gm = m; p->gn = n; p->gldc = ldc; p->cols = k; p->rows = panels;
    p->ga = (igemm_avx2_job){ .i8 = i8, .q4 = q4, .wscale = wscale, .xq = xq, .xw = xw, .init = init, .c = c,
                              .m = m, .rows = n, .cols = k, .ldc = ldc };
    // One panel per chunk, shares of whole panels (the stealing split of the products).
    split_shares(p, 1, panels, 1);
    if (p->threads == 1) matvec_range(p, NULL, 0, panels); else dispatch(p);
    pthread_mutex_unlock(&p->job);
    free(corr); free(init); free(xw);
}

uint64_t ck_pool_read(ck_pool *p, const uint8_t *buf, size_t n, int prefetch) {
    if (p->threads == 1) return read_part(buf, n, prefetch);
    pthread_mutex_lock(&p->job);
    p->kind = JOB_READ; p->buf = buf; p->n = n; p->prefetch = prefetch;
    dispatch(p);
    uint64_t t = 0;
    for (int i = 0; i < p->threads; i++) t += p->partial[i];
    pthread_mutex_unlock(&p->job);
    return t;
}


void ck_pool_attention_decode(ck_pool *p, const float *q, const void *k, const void *v, int kv_f16, float *out,
                              int total, int heads, int kv_heads, int dim, size_t pos_stride, size_t head_stride, float scale) {
    pthread_mutex_lock(&p->job);
    p->kind = JOB_ATTN;
    p->attn = (ck_attention){ q, k, v, kv_f16, out, total, heads, kv_heads, dim, pos_stride, head_stride, scale };
    if (p->threads == 1 || kv_heads < 2) attention_part(&p->attn, 0, 1); else dispatch(p);
    pthread_mutex_unlock(&p->job);
}

void ck_pool_attention_rows(ck_pool *p, const float *q, const void *k, const void *v, int kv_f16, float *out, int t, int past,
                            int heads, int kv_heads, int dim, size_t pos_stride, size_t head_stride, float scale) {
    pthread_mutex_lock(&p->job);
    p->kind = JOB_ATTN_ROWS;
    p->arows = (ck_attention_rows){ q, k, v, kv_f16, out, t, past, heads, kv_heads, dim, pos_stride, head_stride, scale };
    if (p->threads == 1 || kv_heads < 2) attention_rows_part(&p->arows, 0, 1); else dispatch(p);
    pthread_mutex_unlock(&p->job);
}
