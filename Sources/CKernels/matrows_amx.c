// AMX bf16 tiles (ISA level 3): a prompt's rows against bf16 weights in groups of four or in
// rows (internal.h, amx_bf16_*), and one head of the vision encoder's attention (ckernels.h).
#include "internal.h"

#if defined(__x86_64__)
#define AMXBF16 __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

typedef struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } tile_config;

// x as bf16 rounded to nearest even, and what is left of it (x - that, exact in float).
AMXBF16 static inline __m512i bf16_round(__m512 x, __m512 *rest) {
    __m512i u = _mm512_castps_si512(x);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), _mm512_set1_epi32((int)0xffff0000u));
    *rest = _mm512_sub_ps(x, _mm512_castsi512_ps(r));
    return r;
}

// The bf16 halves of 16 rounded values (bf16_round) stored as 16 halfwords.
AMXBF16 static inline void store_bf16(uint16_t *dst, __m512i rounded) {
    _mm256_storeu_si256((__m256i *)dst, _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16)));
}

AMXBF16 size_t amx_bf16_prepared_halfwords(int t, int cols) { return (size_t)(cols / 32) * amx_m_tiles(t) * 2 * 512; }

// r[j][i] -> r[i][j] for 16 x 16 32-bit values (r[j] holds row j).
AMXBF16 static void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {                 // u[4i + q], 128-bit lane L: column 4L + q of rows 4i..4i+3
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int q = 0; q < 4; q++) {
        __m512i a = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x44), b = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x44);
        __m512i c = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xEE), d = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xEE);
        r[q] = _mm512_shuffle_i32x4(a, b, 0x88);
        r[4 + q] = _mm512_shuffle_i32x4(a, b, 0xDD);
        r[8 + q] = _mm512_shuffle_i32x4(c, d, 0x88);
        r[12 + q] = _mm512_shuffle_i32x4(c, d, 0xDD);
    }
}

AMXBF16 void amx_bf16_prepare(const float *x, int t, int cols, uint16_t *xt) { amx_bf16_prepare_ld(x, cols, cols, t, cols, xt); }

AMXBF16 void amx_bf16_prepare_ld(const float *x, size_t ld, int valid, int t, int cols, uint16_t *xt) {
    int nm = amx_m_tiles(t), chunks = cols / 32;
    // The bf16 halves of 32 values in order: the high halfword of each 32-bit lane of a, then of b.
    _Alignas(64) uint16_t pick[32];
    for (int i = 0; i < 32; i++) pick[i] = (uint16_t)(i < 16 ? 2 * i + 1 : 32 + 2 * (i - 16) + 1);
    __m512i sel = _mm512_load_si512((const void *)pick);
    for (int mt = 0; mt < nm; mt++)
        for (int c = 0; c < chunks; c++) {
            __m512i hi[16], lo[16];               // per row of x: its 16 column pairs
            for (int j = 0; j < 16; j++) {
                int m = 16 * mt + j;
                if (m >= t) { hi[j] = lo[j] = _mm512_setzero_si512(); continue; }
                const float *xm = x + (size_t)m * ld + 32 * c;
                int left = valid - 32 * c;
                __mmask16 ka = left >= 16 ? 0xFFFF : (left <= 0 ? 0 : (__mmask16)((1u << left) - 1));
                __mmask16 kb = left >= 32 ? 0xFFFF : (left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1));
                __m512 ra, rb, unused;
                __m512i ha = bf16_round(_mm512_maskz_loadu_ps(ka, xm), &ra), hb = bf16_round(_mm512_maskz_loadu_ps(kb, xm + 16), &rb);
                __m512i la = bf16_round(ra, &unused), lb = bf16_round(rb, &unused);
                hi[j] = _mm512_permutex2var_epi16(ha, sel, hb);
                lo[j] = _mm512_permutex2var_epi16(la, sel, lb);
            }
            transpose16(hi);
            transpose16(lo);
            uint16_t *tile = xt + ((size_t)c * nm + mt) * 2 * 512;
            for (int kp = 0; kp < 16; kp++) {
                _mm512_store_si512((void *)(tile + 32 * kp), hi[kp]);
                _mm512_store_si512((void *)(tile + 512 + 32 * kp), lo[kp]);
            }
        }
}

// 64 weight rows against the prepared x: four A tiles per 32 columns, tile k's row i at
// base + c * cstep + k * kstep (rows rstride bytes apart), its products going to output
// n0 + i * istep + k * kout of the t rows of y.
AMXBF16 static void rows64(const char *base, size_t cstep, size_t kstep, size_t rstride, int chunks, const uint16_t *xt,
                           int t, float *y, size_t ldy, int n0, int istep, int kout) {
    _Alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) { cfg.rows[i] = 16; cfg.colsb[i] = 64; }
    _tile_loadconfig(&cfg);
    int nm = amx_m_tiles(t);
    _Alignas(64) float out[4][16][16];
    for (int mt = 0; mt < nm; mt++) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int c = 0; c < chunks; c++) {
            const char *a = base + (size_t)c * cstep;
            const uint16_t *b = xt + ((size_t)c * nm + mt) * 2 * 512;
            _tile_loadd(5, b, 64);
            _tile_loadd(6, b + 512, 64);
            _tile_loadd(4, a, rstride);
            _tile_dpbf16ps(0, 4, 5);
            _tile_dpbf16ps(0, 4, 6);
            _tile_loadd(7, a + kstep, rstride);
            _tile_dpbf16ps(1, 7, 5);
            _tile_dpbf16ps(1, 7, 6);
            _tile_loadd(4, a + 2 * kstep, rstride);
            _tile_dpbf16ps(2, 4, 5);
            _tile_dpbf16ps(2, 4, 6);
            _tile_loadd(7, a + 3 * kstep, rstride);
            _tile_dpbf16ps(3, 7, 5);
            _tile_dpbf16ps(3, 7, 6);
        }
        _tile_stored(0, out[0], 64); _tile_stored(1, out[1], 64); _tile_stored(2, out[2], 64); _tile_stored(3, out[3], 64);
        int n = t - 16 * mt < 16 ? t - 16 * mt : 16;
        if (istep == 1) {
            // Rows of weights in order: tile k transposed is x's rows' outputs n0 + 16 k ..< + 16.
            for (int k = 0; k < 4; k++) {
                __m512i r[16];
                for (int i = 0; i < 16; i++) r[i] = _mm512_load_si512((const void *)out[k][i]);
                transpose16(r);
                for (int j = 0; j < n; j++) _mm512_storeu_si512((void *)(y + (size_t)(16 * mt + j) * ldy + n0 + 16 * k), r[j]);
            }
            continue;
        }
        for (int j = 0; j < n; j++) {
            float *ym = y + (size_t)(16 * mt + j) * ldy + n0;
            for (int k = 0; k < 4; k++)
                for (int i = 0; i < 16; i++) ym[i * istep + k * kout] = out[k][i][j];
        }
    }
    _tile_release();
}

AMXBF16 void amx_bf16x4_rows64(const uint16_t *wb, int width, int g0, const uint16_t *xt, int t, float *y, size_t ldy) {
    // Tile k holds row k of each of the 16 groups: rows 4 (g0 + i) + k.
    rows64((const char *)(wb + (size_t)g0 * 4 * width), 256, 64, (size_t)width * 8, width / 32, xt, t, y, ldy, 4 * g0, 4, 1);
}

AMXBF16 void amx_bf16_rows64(const uint16_t *w, int cols, int r0, const uint16_t *xt, int t, float *y, size_t ldy) {
    // Tile k holds rows r0 + 16 k + i.
    rows64((const char *)(w + (size_t)r0 * cols), 64, (size_t)cols * 32, (size_t)cols * 2, cols / 32, xt, t, y, ldy, r0, 1, 16);
}

#define AMX_QB 64          // query rows per block of ck_attention_head_amx

// Per thread, grown as needed and kept: the queries, keys, values, arranged rows and outputs.
static _Thread_local struct { void *p[5]; size_t cap[5]; } scratch;
static void *scratch_at(int i, size_t bytes) { return scratch.p[i] = grow_buffer(scratch.p[i], &scratch.cap[i], bytes, "attention on tiles"); }

AMXBF16 void ck_attention_head_amx(const float *q, const float *k, const float *v, size_t stride, float *out, size_t ldo,
                                   int n, int dim, float scale, float *scores) {
    int d2 = 2 * dim, npad = (n + 31) / 32 * 32, full = n / 64 * 64;
    // Scores: the queries (scaled) twice, against each key's hi then lo halves.
    float *qs = scratch_at(0, (size_t)n * d2 * sizeof(float));
    uint16_t *kb = scratch_at(1, (size_t)n * d2 * 2);
    __m512 sc = _mm512_set1_ps(scale);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d += 16) {
            __m512 qv = _mm512_mul_ps(_mm512_loadu_ps(q + (size_t)i * stride + d), sc), rest, unused;
            _mm512_storeu_ps(qs + (size_t)i * d2 + d, qv);
            _mm512_storeu_ps(qs + (size_t)i * d2 + dim + d, qv);
            __m512i hi = bf16_round(_mm512_loadu_ps(k + (size_t)i * stride + d), &rest), lo = bf16_round(rest, &unused);
            store_bf16(kb + (size_t)i * d2 + d, hi);
            store_bf16(kb + (size_t)i * d2 + dim + d, lo);
        }
    // Values: rows d of V's transpose in hi halves, then in lo halves, the columns past n zero.
    uint16_t *vb = scratch_at(3, (size_t)d2 * npad * 2);
    for (int d = 0; d < d2; d++) memset(vb + (size_t)d * npad + n / 16 * 16, 0, (size_t)(npad - n / 16 * 16) * 2);
    for (int j0 = 0; j0 < n; j0 += 16)
        for (int d0 = 0; d0 < dim; d0 += 16) {
            __m512i hi[16], lo[16];                   // 16 rows of V (j), 16 columns (d) each
            for (int j = 0; j < 16; j++) {
                __m512 rest, unused;
                __m512 x = j0 + j < n ? _mm512_loadu_ps(v + (size_t)(j0 + j) * stride + d0) : _mm512_setzero_ps();
                hi[j] = bf16_round(x, &rest);
                lo[j] = bf16_round(rest, &unused);
            }
            transpose16(hi);
            transpose16(lo);
            for (int d = 0; d < 16; d++) {
                store_bf16(vb + (size_t)(d0 + d) * npad + j0, hi[d]);
                store_bf16(vb + (size_t)(dim + d0 + d) * npad + j0, lo[d]);
            }
        }
    // Queries in blocks of AMX_QB rows: a block's scores, its softmax's weights and their
    // arranged tiles stay in L2 with the keys and values.
    size_t xtq = amx_bf16_prepared_halfwords(AMX_QB, d2), xtp = amx_bf16_prepared_halfwords(AMX_QB, npad);
    uint16_t *xt = scratch_at(2, (xtq > xtp ? xtq : xtp) * 2);
    float *y = scratch_at(4, (size_t)AMX_QB * d2 * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += AMX_QB) {
        int nb = n - i0 < AMX_QB ? n - i0 : AMX_QB;
        const float *qb = qs + (size_t)i0 * d2;
        amx_bf16_prepare(qb, nb, d2, xt);
        for (int r = 0; r < full; r += 64) amx_bf16_rows64(kb, d2, r, xt, nb, scores, (size_t)n);
        for (int i = 0; i < nb; i++)
            for (int j = full; j < n; j++) {
                float s = 0;
                for (int d = 0; d < dim; d++) s += qb[(size_t)i * d2 + d] * k[(size_t)j * stride + d];
                scores[(size_t)i * n + j] = s;
            }
        ck_softmax_rows(scores, nb, n, n, -1);
        amx_bf16_prepare_ld(scores, (size_t)n, n, nb, npad, xt);
        for (int r = 0; r < d2; r += 64) amx_bf16_rows64(vb, npad, r, xt, nb, y, (size_t)d2);
        for (int i = 0; i < nb; i++)
            for (int d = 0; d < dim; d += 16)
                _mm512_storeu_ps(out + (size_t)(i0 + i) * ldo + d, _mm512_add_ps(_mm512_loadu_ps(y + (size_t)i * d2 + d), _mm512_loadu_ps(y + (size_t)i * d2 + dim + d)));
    }
}
#endif
