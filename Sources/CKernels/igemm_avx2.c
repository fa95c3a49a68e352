// The integer GEMM of prompts on AVX2 (no VNNI): int8 weights in rows and q4 weights, packed 32
// rows at a time by the thread that runs them into two panels of 16 rows (each weight read from
// memory once per product), then tiles of three activation rows x 16 weight rows over all column
// blocks. Every output is the bits of ck_q8_gemm_ref / ck_q4_gemm_ref: exact integer block sums,
// then the reference's float steps in its order.
//
// int8: weights and activations widened to int16 (vpmaddwd: 16 products per instruction, no
// overflow); per block 16 steps of two columns, each a 256-bit vector of the 16 rows' pairs.
// q4: the nibbles stay bytes 0..15 (vpmaddubsw's unsigned operand; activations |x| <= 127 the
// signed one: pair sums |.| <= 3,810), per block 8 steps of four columns summed as int16, which
// start at -8 x the activations of their columns (the nibbles' offset), so every partial sum is
// a sum of (q - 8) x a over at most 16 columns: |.| <= 16 x 8 x 127, inside int16.
#include "internal.h"

#define I8_BLOCK 1024           // int8 panel: bytes per block of 32 columns (16 steps x 16 rows x 2 x int16)
#define Q4_BLOCK 576            // q4 panel: 8 steps x 16 rows x 4 bytes, then the 16 rows' scales

size_t igemm_avx2_buffer_bytes(int cols, int q4) { return (size_t)2 * (cols / CK_QK) * (q4 ? Q4_BLOCK : I8_BLOCK); }

#if defined(__x86_64__)

// Eight rows of eight dwords into eight columns of eight (v[k] becomes dword k of rows 0..7).
AVX2 static inline void transpose8(__m256i v[8]) {
    __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    v[0] = _mm256_permute2x128_si256(u0, u4, 0x20); v[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    v[1] = _mm256_permute2x128_si256(u1, u5, 0x20); v[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    v[2] = _mm256_permute2x128_si256(u2, u6, 0x20); v[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    v[3] = _mm256_permute2x128_si256(u3, u7, 0x20); v[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// int8 rows r0..r0+15 (past `rows`: zero weights) as a panel: block b, step k (columns 2k, 2k+1)
// at out + b * 512 + k * 32 int16, rows 0-7 then 8-15, each row's pair as one dword.
AVX2 static void pack_i8_panel(const int8_t *w, int rows, int cols, int r0, int16_t *out) {
    int nb = cols / CK_QK;
    for (int b = 0; b < nb; b++)
        for (int h = 0; h < 2; h++) {
            __m256i lo[8], hi[8];
            for (int j = 0; j < 8; j++) {
                int r = r0 + 8 * h + j;
                if (r < rows) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(w + (size_t)r * cols + (size_t)b * CK_QK));
                    lo[j] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v));
                    hi[j] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1));
                } else lo[j] = hi[j] = _mm256_setzero_si256();
            }
            transpose8(lo); transpose8(hi);
            int16_t *o = out + (size_t)b * (I8_BLOCK / 2) + 16 * h;
            for (int k = 0; k < 8; k++) {
                _mm256_storeu_si256((__m256i *)(o + 32 * k), lo[k]);
                _mm256_storeu_si256((__m256i *)(o + 32 * (k + 8)), hi[k]);
            }
        }
}

// q4 rows r0..r0+15 of a q4 matrix (past `rows`: nibbles 8 and scale 0, weight 0) as a panel:
// block b at out + b * Q4_BLOCK, step s (columns 4s..4s+3) at + 64 s, rows 0-7 then 8-15, four
// nibble values per row; then the 16 rows' scales as floats. Per column group each row's part is
// found once (its scales, then its nibbles).
AVX2 static void pack_q4_panel(const uint8_t *w, int rows, int cols, int r0, uint8_t *out) {
    static const uint8_t empty[Q4_SG * 18] = { [0 ... Q4_SG * 18 - 1] = 0x88 };    // nibbles 8
    static const uint16_t nscale[Q4_SG] = { 0 };
    int nb = cols / CK_QK;
    const __m256i m = _mm256_set1_epi8(0x0F);
    for (int g = 0; g < q4_groups(nb); g++) {
        int n = q4_gsize(nb, g);
        const uint16_t *sc[16]; const uint8_t *qs[16];
        for (int j = 0; j < 16; j++) {
            const uint8_t *part = r0 + j < rows ? q4_gat(w, rows, nb, r0 + j, g) : NULL;
            sc[j] = part ? (const uint16_t *)(const void *)part : nscale;
            qs[j] = part ? part + 2 * n : empty;
        }
        for (int bb = 0; bb < n; bb++) {
            uint8_t *o = out + (size_t)(g * Q4_SG + bb) * Q4_BLOCK;
            for (int h = 0; h < 2; h++) {
                __m256i v[8];
                for (int j = 0; j < 8; j++) {
                    __m128i q = _mm_loadu_si128((const __m128i *)(qs[8 * h + j] + 16 * bb));
                    v[j] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m);   // elements 0..15, then 16..31
                }
                transpose8(v);
                for (int s = 0; s < 8; s++) _mm256_storeu_si256((__m256i *)(o + 64 * s + 32 * h), v[s]);
            }
            _Alignas(16) uint16_t h16[16];
            for (int j = 0; j < 16; j++) h16[j] = sc[j][bb];
            _mm256_storeu_ps((float *)(void *)(o + 512), _mm256_cvtph_ps(_mm_load_si128((const __m128i *)h16)));
            _mm256_storeu_ps((float *)(void *)(o + 544), _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(h16 + 8))));
        }
    }
}

// One dword of memory in every lane (vbroadcastss: a load, no shuffle).
AVX2 static inline __m256i bcast32(const void *p) { return _mm256_castps_si256(_mm256_broadcast_ss((const float *)p)); }

// MR activation rows x one int8 panel: f[i][0..15] = sum over blocks, in order, of
// fmaf(block sum, activation scale, .) (xw: the rows' activations as int16, nb x 32 per row).
#define I8_TILE(NAME, MR)                                                                                  \
    AVX2 static void NAME(const int16_t *panel, const int16_t *xw, const ck_block_q8 *xq, int nb, float f[][16]) { \
        __m256 acc[MR][2];                                                                                 \
        for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();                           \
        for (int b = 0; b < nb; b++) {                                                                     \
            const int16_t *pb = panel + (size_t)b * (I8_BLOCK / 2);                                        \
            __m256i s[MR][2];                                                                              \
            for (int i = 0; i < MR; i++) s[i][0] = s[i][1] = _mm256_setzero_si256();                         \
            for (int k = 0; k < 16; k++) {                                                                 \
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(pb + 32 * k));                           \
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(pb + 32 * k + 16));                      \
                for (int i = 0; i < MR; i++) {                                                             \
                    __m256i a = bcast32(xw + ((size_t)i * nb + b) * CK_QK + 2 * k);                        \
                    s[i][0] = _mm256_add_epi32(s[i][0], _mm256_madd_epi16(w0, a));                         \
                    s[i][1] = _mm256_add_epi32(s[i][1], _mm256_madd_epi16(w1, a));                         \
                }                                                                                          \
            }                                                                                              \
            for (int i = 0; i < MR; i++) {                                                                 \
                __m256 d = _mm256_set1_ps(xq[(size_t)i * nb + b].d);                                       \
                acc[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i][0]), d, acc[i][0]);                     \
                acc[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i][1]), d, acc[i][1]);                     \
            }                                                                                              \
        }                                                                                                  \
        for (int i = 0; i < MR; i++) { _mm256_storeu_ps(f[i], acc[i][0]); _mm256_storeu_ps(f[i] + 8, acc[i][1]); } \
    }

// MR activation rows x one q4 panel: f[i][0..15] = sum over blocks, in order, of
// fmaf(block sum, weight scale x activation scale, .) (init: per row and block the int16 pair
// -8 x the sums of the activations at columns 0,1 and 2,3 mod 4, where the pairs of vpmaddubsw go).
#define Q4_TILE(NAME, MR)                                                                                  \
    AVX2 static void NAME(const uint8_t *panel, const int32_t *init, const ck_block_q8 *xq, int nb, float f[][16]) { \
        const __m256i ones = _mm256_set1_epi16(1);                                                         \
        __m256 acc[MR][2];                                                                                 \
        for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();                           \
        for (int b = 0; b < nb; b++) {                                                                     \
            const uint8_t *pb = panel + (size_t)b * Q4_BLOCK;                                              \
            __m256i s[MR][2];                                                                              \
            for (int i = 0; i < MR; i++) s[i][0] = s[i][1] = bcast32(init + (size_t)i * nb + b);            \
            _Pragma("clang loop unroll(disable)")                                                          \
            for (int k = 0; k < 8; k++) {                                                                  \
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(pb + 64 * k));                           \
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(pb + 64 * k + 32));                      \
                for (int i = 0; i < MR; i++) {                                                             \
                    __m256i a = bcast32(xq[(size_t)i * nb + b].qs + 4 * k);                                \
                    s[i][0] = _mm256_add_epi16(s[i][0], _mm256_maddubs_epi16(w0, a));                      \
                    s[i][1] = _mm256_add_epi16(s[i][1], _mm256_maddubs_epi16(w1, a));                      \
                }                                                                                          \
            }                                                                                              \
            __m256 ws0 = _mm256_loadu_ps((const float *)(pb + 512)), ws1 = _mm256_loadu_ps((const float *)(pb + 544)); \
            for (int i = 0; i < MR; i++) {                                                                 \
                __m256 d = _mm256_set1_ps(xq[(size_t)i * nb + b].d);                                       \
                acc[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s[i][0], ones)), _mm256_mul_ps(ws0, d), acc[i][0]); \
                acc[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s[i][1], ones)), _mm256_mul_ps(ws1, d), acc[i][1]); \
            }                                                                                              \
        }                                                                                                  \
        for (int i = 0; i < MR; i++) { _mm256_storeu_ps(f[i], acc[i][0]); _mm256_storeu_ps(f[i] + 8, acc[i][1]); } \
    }

I8_TILE(i8_tile1, 1) I8_TILE(i8_tile2, 2) I8_TILE(i8_tile3, 3)
Q4_TILE(q4a_tile1, 1) Q4_TILE(q4a_tile2, 2) Q4_TILE(q4a_tile3, 3)
static void (*const i8_tiles[3])(const int16_t *, const int16_t *, const ck_block_q8 *, int, float[][16]) = {i8_tile1, i8_tile2, i8_tile3};
static void (*const q4a_tiles[3])(const uint8_t *, const int32_t *, const ck_block_q8 *, int, float[][16]) = {q4a_tile1, q4a_tile2, q4a_tile3};

// Rows n0..n0+31 of the product (all m activation rows): both panels packed into buf
// (igemm_avx2_buffer_bytes), then per three activation rows each panel in turn.
AVX2 void igemm_avx2_rows32(const igemm_avx2_job *g, int n0, uint8_t *buf) {
    int nb = g->cols / CK_QK, halves = g->rows - n0 > 16 ? 2 : 1;
    size_t half = (size_t)nb * (g->q4 ? Q4_BLOCK : I8_BLOCK);
    for (int h = 0; h < halves; h++) {
        if (g->q4) pack_q4_panel(g->q4, g->rows, g->cols, n0 + 16 * h, buf + h * half);
        else pack_i8_panel(g->i8, g->rows, g->cols, n0 + 16 * h, (int16_t *)(void *)(buf + h * half));
    }
    for (int m0 = 0; m0 < g->m; m0 += 3) {
        int mr = g->m - m0 < 3 ? g->m - m0 : 3;
        const ck_block_q8 *xq = g->xq + (size_t)m0 * nb;
        for (int h = 0; h < halves; h++) {
            float f[3][16];
            const uint8_t *panel = buf + h * half;
            if (g->q4) q4a_tiles[mr - 1](panel, g->init + (size_t)m0 * nb, xq, nb, f);
            else i8_tiles[mr - 1]((const int16_t *)(const void *)panel, g->xw + (size_t)m0 * nb * CK_QK, xq, nb, f);
            int j0 = n0 + 16 * h, valid = g->rows - j0 < 16 ? g->rows - j0 : 16;
            for (int i = 0; i < mr; i++) {
                float *row = g->c + (size_t)(m0 + i) * g->ldc + j0;
                if (g->q4) memcpy(row, f[i], (size_t)valid * sizeof(float));
                else for (int j = 0; j < valid; j++) row[j] = f[i][j] * g->wscale[j0 + j];
            }
        }
    }
}

// The activations as the tiles take them: int8 widened to int16; for q4 per block the int16
// pair -8 x (sum at columns 0,1 mod 4, sum at columns 2,3 mod 4).
AVX2 void igemm_avx2_prepare(const ck_block_q8 *xq, size_t blocks, int q4, int16_t *xw, int32_t *init) {
    for (size_t i = 0; i < blocks; i++) {
        if (q4) {
            int32_t e = 0, o = 0;
            for (int c = 0; c < CK_QK; c++) { if (c % 4 < 2) e += xq[i].qs[c]; else o += xq[i].qs[c]; }
            init[i] = (int32_t)((uint32_t)(uint16_t)(int16_t)(-8 * e) | (uint32_t)(uint16_t)(int16_t)(-8 * o) << 16);
        } else {
            __m256i v = _mm256_loadu_si256((const __m256i *)xq[i].qs);
            _mm256_storeu_si256((__m256i *)(xw + i * CK_QK), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)));
            _mm256_storeu_si256((__m256i *)(xw + i * CK_QK + 16), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)));
        }
    }
}

#endif
