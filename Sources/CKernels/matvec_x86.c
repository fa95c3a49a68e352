// AVX2 and AVX-512 matrix-vector kernels. See include/ckernels.h.
#include "internal.h"

// ---------------------------------------------------------------------------------------------
// AVX2 kernels

#if defined(__x86_64__)


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
            PREFETCH_PLAIN(a + c); PREFETCH_NEAR(a + c);
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
AVX512 static void bf16_rows_avx512(const uint16_t *w, const float *xe, const float *xo, const float *x, float *y,
                                    int cols, int r0, int r1) {
    int c64 = cols & ~63;
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r++) {
        const uint16_t *a = w + (size_t)r * cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < c64; c += 64) {
            __m512i v = _mm512_loadu_si512((const void *)(a + c)), u = _mm512_loadu_si512((const void *)(a + c + 32));
            PREFETCH_PLAIN(a + c); PREFETCH_PLAIN(a + c + 32);
            a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(xe + c / 2), a0);
            a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), _mm512_loadu_ps(xo + c / 2), a1);
            a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(u, 16)), _mm512_loadu_ps(xe + c / 2 + 16), a2);
            a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(u, hi)), _mm512_loadu_ps(xo + c / 2 + 16), a3);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        y[r] = s + bf16_tail(a, x, c64, cols);
    }
}

void bf16_rows(const uint16_t *w, const float *xe, const float *xo, const float *x, float *y, int cols, int r0, int r1) {
    if (has_avx512()) bf16_rows_avx512(w, xe, xo, x, y, cols, r0, r1);
    else bf16_rows_avx2(w, xe, xo, x, y, cols, r0, r1);
}

void deinterleave(const float *x, int cols, float *xe, float *xo) {
    for (int i = 0; i < (cols & ~31) / 2; i++) { xe[i] = x[2 * i]; xo[i] = x[2 * i + 1]; }
}

// bf16 rows in groups of four (ck_pack_bf16_rows4): rows r0..<r1 (multiples of 4, inside the
// full groups). Per chunk of 32 columns the four rows' 64-byte pieces come one after another, so
// one stream feeds four dot products and each activation load serves four rows (one core streams
// ~25% more bytes per second than with the row-by-row loop, which is what the memory bus needs
// from each of two cores). Two accumulators per row.
AVX2 void bf16x4_rows_avx2(const uint16_t *w, const float *xe, const float *xo, float *y, int cols, int r0, int r1) {
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
                PREFETCH_PLAIN(b + 32 * k); PREFETCH_NEAR(b + 32 * k);
                acc[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), e0, acc[2 * k]);
                acc[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), o0, acc[2 * k + 1]);
                acc[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)), e1, acc[2 * k]);
                acc[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(u, hi)), o1, acc[2 * k + 1]);
            }
        }
        for (int k = 0; k < 4; k++) y[r + k] = hsum(_mm256_add_ps(acc[2 * k], acc[2 * k + 1]));
    }
}

AVX512 void bf16x4_rows_avx512(const uint16_t *w, const float *xe, const float *xo, float *y, int cols, int r0, int r1) {
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
                PREFETCH_PLAIN(b + 32 * k);
                acc[2 * k] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), e, acc[2 * k]);
                acc[2 * k + 1] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), o, acc[2 * k + 1]);
            }
        }
        for (int k = 0; k < 4; k++) y[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[2 * k], acc[2 * k + 1]));
    }
}

// bf16x4_rows_avx512 for three activation rows at once (24 accumulators): each weight widened
// once for three rows, a third fewer passes over the chunk than in pairs. Same bits per row.
AVX512 void bf16x4_rows3_avx512(const uint16_t *w, const float *const *xe, const float *const *xo, float *const *y,
                                int cols, int r0, int r1, const char *pf, int pfstep) {
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000);
    const float *e0 = xe[0], *e1 = xe[1], *e2 = xe[2], *o0 = xo[0], *o1 = xo[1], *o2 = xo[2];
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        __m512 p[8], q[8], s[8];
        for (int k = 0; k < 8; k++) { p[k] = _mm512_setzero_ps(); q[k] = p[k]; s[k] = p[k]; }
        for (int c = 0; c < cols; c += 32) {
            const uint16_t *b = a + (size_t)c * 4;
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(b + 32 * k));
                if (pf && 64 * k < pfstep) _mm_prefetch(pf + 64 * k, _MM_HINT_T1);
                __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
                p[2 * k] = _mm512_fmadd_ps(we, _mm512_loadu_ps(e0 + c / 2), p[2 * k]);
                p[2 * k + 1] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(o0 + c / 2), p[2 * k + 1]);
                q[2 * k] = _mm512_fmadd_ps(we, _mm512_loadu_ps(e1 + c / 2), q[2 * k]);
                q[2 * k + 1] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(o1 + c / 2), q[2 * k + 1]);
                s[2 * k] = _mm512_fmadd_ps(we, _mm512_loadu_ps(e2 + c / 2), s[2 * k]);
                s[2 * k + 1] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(o2 + c / 2), s[2 * k + 1]);
            }
            if (pf) pf += pfstep;
        }
        for (int k = 0; k < 4; k++) {
            y[0][r + k] = _mm512_reduce_add_ps(_mm512_add_ps(p[2 * k], p[2 * k + 1]));
            y[1][r + k] = _mm512_reduce_add_ps(_mm512_add_ps(q[2 * k], q[2 * k + 1]));
            y[2][r + k] = _mm512_reduce_add_ps(_mm512_add_ps(s[2 * k], s[2 * k + 1]));
        }
    }
}

// A prompt's rows in fours (not the one-row kernel's bits: a prompt needs only the product, as
// on the AMX tiles): one accumulator per weight row and activation row, even and odd columns
// summed into it, and the four rows' activations held in registers for each chunk of 32 columns.
// Each widened weight feeds eight multiply-adds instead of six (rows in threes), and the
// activations are loaded once per chunk instead of once per weight row: on a Zen 5 1.03-1.68x the
// rate of the threes on the model's shapes, mostly 1.3-1.5x (docs/benchmarks.md, session 29).
AVX512 void bf16x4_rows4p_avx512(const uint16_t *w, const float *const *xe, const float *const *xo, float *const *y,
                                 int cols, int r0, int r1, const char *pf, int pfstep) {
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        __m512 acc[4][4];
        for (int k = 0; k < 4; k++) for (int i = 0; i < 4; i++) acc[k][i] = _mm512_setzero_ps();
        for (int c = 0; c < cols; c += 32) {
            const uint16_t *b = a + (size_t)c * 4;
            __m512 e[4], o[4];
            for (int i = 0; i < 4; i++) { e[i] = _mm512_loadu_ps(xe[i] + c / 2); o[i] = _mm512_loadu_ps(xo[i] + c / 2); }
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(b + 32 * k));
                if (pf && 64 * k < pfstep) _mm_prefetch(pf + 64 * k, _MM_HINT_T1);
                __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
                for (int i = 0; i < 4; i++) acc[k][i] = _mm512_fmadd_ps(wo, o[i], _mm512_fmadd_ps(we, e[i], acc[k][i]));
            }
            if (pf) pf += pfstep;
        }
        for (int k = 0; k < 4; k++) for (int i = 0; i < 4; i++) y[i][r + k] = _mm512_reduce_add_ps(acc[k][i]);
    }
}

// bf16x4_rows_avx512 for two activation rows at once (batched decoding, short prompts): each
// weight vector is loaded and widened once for both, and each row keeps the single-row kernel's
// accumulators and order, so its results are that kernel's bits.
AVX512 void bf16x4_rows2_avx512(const uint16_t *w, const float *xe0, const float *xo0, const float *xe1, const float *xo1,
                                float *y0, float *y1, int cols, int r0, int r1, const char *pf, int pfstep) {
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        __m512 p[8], q[8];
        for (int k = 0; k < 8; k++) { p[k] = _mm512_setzero_ps(); q[k] = p[k]; }
        for (int c = 0; c < cols; c += 32) {
            const uint16_t *b = a + (size_t)c * 4;
            __m512 e0 = _mm512_loadu_ps(xe0 + c / 2), o0 = _mm512_loadu_ps(xo0 + c / 2);
            __m512 e1 = _mm512_loadu_ps(xe1 + c / 2), o1 = _mm512_loadu_ps(xo1 + c / 2);
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(b + 32 * k));
                if (pf && 64 * k < pfstep) _mm_prefetch(pf + 64 * k, _MM_HINT_T1);
                __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
                p[2 * k] = _mm512_fmadd_ps(we, e0, p[2 * k]);
                p[2 * k + 1] = _mm512_fmadd_ps(wo, o0, p[2 * k + 1]);
                q[2 * k] = _mm512_fmadd_ps(we, e1, q[2 * k]);
                q[2 * k + 1] = _mm512_fmadd_ps(wo, o1, q[2 * k + 1]);
            }
            if (pf) pf += pfstep;
        }
        for (int k = 0; k < 4; k++) {
            y0[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(p[2 * k], p[2 * k + 1]));
            y1[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(q[2 * k], q[2 * k + 1]));
        }
    }
}

// bf16x4_rows_avx2 for two activation rows at once (short prompts, batched decoding): each weight
// vector loaded and widened once for both. Sixteen registers hold the accumulators of two rows
// of a group for two activation rows, so a group goes in two halves (rows 0-1, then 2-3; the
// second half finds its bytes in L1). Each row keeps the one-row kernel's accumulators and order
// (its bits). pf: the next chunk, pfstep bytes of it prefetched per 32 columns of the first half.
AVX2 void bf16x4_rows2_avx2(const uint16_t *w, const float *xe0, const float *xo0, const float *xe1, const float *xo1,
                            float *y0, float *y1, int cols, int r0, int r1, const char *pf, int pfstep) {
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000);
    for (int r = r0; r < r1; r += 4) {
        const uint16_t *a = w + (size_t)r * cols;
        for (int k0 = 0; k0 < 4; k0 += 2) {
            __m256 p[4], q[4];      // [2j], [2j + 1]: row k0 + j's even and odd sums, for x0 (p) and x1 (q)
            for (int j = 0; j < 4; j++) { p[j] = _mm256_setzero_ps(); q[j] = p[j]; }
            for (int c = 0; c < cols; c += 32) {
                const uint16_t *b = a + (size_t)c * 4;
                if (pf && k0 == 0) { for (int i = 0; i < pfstep; i += 64) _mm_prefetch(pf + i, _MM_HINT_T1); pf += pfstep; }
                for (int j = 0; j < 2; j++) {
                    const uint16_t *bk = b + 32 * (k0 + j);
                    __m256i v = _mm256_loadu_si256((const __m256i *)bk), u = _mm256_loadu_si256((const __m256i *)(bk + 16));
                    __m256 ve = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), vo = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
                    __m256 ue = _mm256_castsi256_ps(_mm256_slli_epi32(u, 16)), uo = _mm256_castsi256_ps(_mm256_and_si256(u, hi));
                    p[2 * j] = _mm256_fmadd_ps(ve, _mm256_loadu_ps(xe0 + c / 2), p[2 * j]);
                    p[2 * j + 1] = _mm256_fmadd_ps(vo, _mm256_loadu_ps(xo0 + c / 2), p[2 * j + 1]);
                    p[2 * j] = _mm256_fmadd_ps(ue, _mm256_loadu_ps(xe0 + c / 2 + 8), p[2 * j]);
                    p[2 * j + 1] = _mm256_fmadd_ps(uo, _mm256_loadu_ps(xo0 + c / 2 + 8), p[2 * j + 1]);
                    q[2 * j] = _mm256_fmadd_ps(ve, _mm256_loadu_ps(xe1 + c / 2), q[2 * j]);
                    q[2 * j + 1] = _mm256_fmadd_ps(vo, _mm256_loadu_ps(xo1 + c / 2), q[2 * j + 1]);
                    q[2 * j] = _mm256_fmadd_ps(ue, _mm256_loadu_ps(xe1 + c / 2 + 8), q[2 * j]);
                    q[2 * j + 1] = _mm256_fmadd_ps(uo, _mm256_loadu_ps(xo1 + c / 2 + 8), q[2 * j + 1]);
                }
            }
            for (int j = 0; j < 2; j++) {
                y0[r + k0 + j] = hsum(_mm256_add_ps(p[2 * j], p[2 * j + 1]));
                y1[r + k0 + j] = hsum(_mm256_add_ps(q[2 * j], q[2 * j + 1]));
            }
        }
    }
}

// Four rows of a group as floats: o0 + k * ld is row k.
AVX2 void convert_group4_avx2(const uint16_t *a, int cols, float *o0, size_t ld) {
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

// int8 rows (machines without VNNI: with it int8 is stored in GEMM panels), up to Q8_ROWS
// activation rows at once (batched decoding, short prompts): each weight vector is loaded once
// for all of them. Per row |x| is prepared once (maddubs wants one unsigned operand) and x's signs
// are moved onto the weights; a block's sum is the exact integer the decode kernel forms and the
// float steps are its steps in its order, so every row's result is the decode kernel's bits.
// The body of q8_rows_avx2_n and q8_rows_avxvnni_n; DOT(a, w) is the 8 int32 lanes of |x| (a) times
// the sign-adjusted weights (w), the same exact integers either way.
#define Q8_ROWS_BODY(DOT)                                                                                                \
    int nb = cols / CK_QK;                                                                                               \
    for (int r = r0; r < r1; r++) {                                                                                      \
        const int8_t *row = w + (size_t)r * cols;                                                                        \
        __m128 c[Q8_ROWS];                                                                                               \
        for (int i = 0; i < R; i++) c[i] = _mm_setzero_ps();                                                             \
        for (int b = 0; b < nb; b += 4) {                                                                                \
            const __m256i *q = (const __m256i *)(row + b * CK_QK);                                                       \
            __m256i w0 = _mm256_loadu_si256(q), w1 = _mm256_loadu_si256(q + 1), w2 = _mm256_loadu_si256(q + 2), w3 = _mm256_loadu_si256(q + 3); \
            PREFETCH_W(q); PREFETCH_W(q + 2);                                                                            \
            for (int i = 0; i < R; i++) {                                                                                \
                const __m256i *a = (const __m256i *)(ax[i] + (size_t)b * CK_QK);                                        \
                const ck_block_q8 *x = xq[i] + b;                                                                        \
                __m128i s4 = sum4(DOT(_mm256_loadu_si256(a), _mm256_sign_epi8(w0, _mm256_loadu_si256((const __m256i *)x[0].qs))), \
                                  DOT(_mm256_loadu_si256(a + 1), _mm256_sign_epi8(w1, _mm256_loadu_si256((const __m256i *)x[1].qs))), \
                                  DOT(_mm256_loadu_si256(a + 2), _mm256_sign_epi8(w2, _mm256_loadu_si256((const __m256i *)x[2].qs))), \
                                  DOT(_mm256_loadu_si256(a + 3), _mm256_sign_epi8(w3, _mm256_loadu_si256((const __m256i *)x[3].qs)))); \
                c[i] = _mm_fmadd_ps(_mm_cvtepi32_ps(s4), _mm_loadu_ps(xd[i] + b), c[i]);                                  \
            }                                                                                                            \
        }                                                                                                                \
        for (int i = 0; i < R; i++) y[i][r] = finish4(c[i]) * ws[r];                                                     \
    }

#define Q8_DOT_AVX2(a, w) _mm256_madd_epi16(_mm256_maddubs_epi16((a), (w)), _mm256_set1_epi16(1))
#define Q8_DOT_VNNI(a, w) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), (a), (w))
#define Q8_ROWS_SWITCH(KERNEL)                                                                                           \
    switch (n) {                                                                                                         \
    case 4: KERNEL(w, ws, ax, xq, xd, y, cols, r0, r1, 4); break;                                                        \
    case 3: KERNEL(w, ws, ax, xq, xd, y, cols, r0, r1, 3); break;                                                        \
    case 2: KERNEL(w, ws, ax, xq, xd, y, cols, r0, r1, 2); break;                                                        \
    default: KERNEL(w, ws, ax, xq, xd, y, cols, r0, r1, 1); break;                                                       \
    }

AVX2 static inline __attribute__((always_inline)) void q8_rows_avx2_n(const int8_t *w, const float *ws, const uint8_t *const *ax,
        const ck_block_q8 *const *xq, const float *const *xd, float *const *y, int cols, int r0, int r1, const int R) {
    Q8_ROWS_BODY(Q8_DOT_AVX2)
}

AVX2 void q8_rows_avx2(const int8_t *w, const float *ws, const uint8_t *const *ax, const ck_block_q8 *const *xq,
                       const float *const *xd, float *const *y, int n, int cols, int r0, int r1) {
    Q8_ROWS_SWITCH(q8_rows_avx2_n)
}

// The same rows with AVX-VNNI: one vpdpbusd per 32 bytes instead of maddubs + madd.
AVXVNNI static inline __attribute__((always_inline)) void q8_rows_avxvnni_n(const int8_t *w, const float *ws, const uint8_t *const *ax,
        const ck_block_q8 *const *xq, const float *const *xd, float *const *y, int cols, int r0, int r1, const int R) {
    Q8_ROWS_BODY(Q8_DOT_VNNI)
}

AVXVNNI void q8_rows_avxvnni(const int8_t *w, const float *ws, const uint8_t *const *ax, const ck_block_q8 *const *xq,
                             const float *const *xd, float *const *y, int n, int cols, int r0, int r1) {
    Q8_ROWS_SWITCH(q8_rows_avxvnni_n)
}

// One int8 panel (32 weight rows, ck_q8_gemm_pack) for R activation rows with AVX2, in slices of
// eight weight rows (one 256-bit vector per four columns): the packed bytes back to signed by
// flipping their top bit, then per activation row x's signs moved onto them and |x| as maddubs'
// unsigned operand (|w|, |x| <= 127 keeps the pair sums inside int16). The integer block sums are
// exact, the float steps those of ck_q8_gemm_ref in its order, so the results are its bits.
AVX2 static inline __attribute__((always_inline)) void q8p_slices_avx2(const uint8_t *panel, const ck_block_q8 *const *xq,
        __m256 (*f)[4], int nb, const int R) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    for (int v = 0; v < 4; v++) {
        __m256 acc[4];
        for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            __m256i s[4];
            for (int i = 0; i < R; i++) s[i] = _mm256_setzero_si256();
            const uint8_t *pb = panel + (size_t)b * 1024 + 32 * v;
            for (int k = 0; k < 8; k++) {
                __m256i w = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(pb + 128 * k)), k80);
                for (int i = 0; i < R; i++) {
                    int32_t four; memcpy(&four, xq[i][b].qs + 4 * k, 4);
                    __m256i a = _mm256_set1_epi32(four);
                    s[i] = _mm256_add_epi32(s[i], _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(w, a)), ones));
                }
            }
            for (int i = 0; i < R; i++) acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i]), _mm256_set1_ps(xq[i][b].d), acc[i]);
        }
        for (int i = 0; i < R; i++) f[i][v] = acc[i];
    }
}

AVX2 void q8p_panel_avx2(const uint8_t *panel, const float *sw, const ck_block_q8 *xq, float *c, int m, int nb, int ldc, int valid) {
    for (int i0 = 0; i0 < m; i0 += 4) {
        int n = m - i0 < 4 ? m - i0 : 4;
        const ck_block_q8 *x[4];
        for (int i = 0; i < n; i++) x[i] = xq + (size_t)(i0 + i) * nb;
        __m256 f[4][4];
        switch (n) {
        case 4: q8p_slices_avx2(panel, x, f, nb, 4); break;
        case 3: q8p_slices_avx2(panel, x, f, nb, 3); break;
        case 2: q8p_slices_avx2(panel, x, f, nb, 2); break;
        default: q8p_slices_avx2(panel, x, f, nb, 1); break;
        }
        for (int i = 0; i < n; i++) {
            float out[32];
            for (int v = 0; v < 4; v++) _mm256_storeu_ps(out + 8 * v, f[i][v]);
            float *row = c + (size_t)(i0 + i) * ldc;
            for (int j = 0; j < valid; j++) row[j] = out[j] * sw[j];
        }
    }
}

// q4, per product: the activations of each line of a full column group (four blocks) arranged as
// the nibbles come out of the line: `lo` = elements 0..15 of each block in turn (the low nibbles),
// `hi` = elements 16..31 of each. Per block of the full groups: xd, the activation scale, and c8,
// 8 x the sum of its activations (the nibbles' offset). 64-byte aligned, as the loads.

void q4_prepare_x(const ck_block_q8 *xq, int full, q4_xline *xl, float *xd, float *c8) {
    for (int l = 0; l < full / 4; l++)
        for (int j = 0; j < 4; j++) {
            memcpy(xl[l].lo + 16 * j, xq[4 * l + j].qs, 16);
            memcpy(xl[l].hi + 16 * j, xq[4 * l + j].qs + 16, 16);
        }
    for (int b = 0; b < full; b++) { xd[b] = xq[b].d; c8[b] = q4_c8(xq + b); }
}

// One full column group g (its first block b0) of rows r0..<r1 (w: the group, rows of 576 bytes;
// xl, xd, c8 at the group's first line / block), as q4_group_ref. Per row the 32 scales x
// activation scales first (four conversions), spread per line by a permutation; per line each
// 32-byte half's low and high nibble products added as int16 (at most 2 x 2 x 15 x 127) before one
// widening to int32 (blocks 4k, 4k+1 into lanes 0-7 of acc0; 4k+2, 4k+3 into those of acc1, the
// reference's lanes 8-15). One core ran a cached matrix 13% faster so than with the scales
// converted per line and each product widened on its own; two rows at a time (each activation
// load serving both) was slower, out of registers.
// The body of q4_group_avx2 and q4_group_avxvnni; HALF(v, lo, hi) is the 8 int32 sums of a 32-byte
// half-line v's low nibbles times lo plus its high nibbles times hi (the same exact integers).
#define Q4_GROUP_BODY(HALF)                                                                                              \
    const __m256i m = _mm256_set1_epi8(0x0F);                                                                            \
    __m256i lo01 = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0), lo23 = _mm256_set_epi32(3, 3, 3, 3, 2, 2, 2, 2);            \
    __m256i hi01 = _mm256_set_epi32(5, 5, 5, 5, 4, 4, 4, 4), hi23 = _mm256_set_epi32(7, 7, 7, 7, 6, 6, 6, 6);            \
    /* Opaque to the compiler, which otherwise turns each one-uop permutation by a known index into                   \
       two shuffles on the same port (cached matrix, one core: 23.7 -> 24.9 GB/s). */                                   \
    __asm__("" : "+x"(lo01), "+x"(lo23), "+x"(hi01), "+x"(hi23));                                                        \
    for (int r = r0; r < r1; r++) {                                                                                      \
        const uint8_t *g = w + (size_t)r * (Q4_SG * 18), *qs = g + 64;                                                   \
        PREFETCH_W(g);                                                                                                   \
        __m256 s[4];                                                                                                     \
        for (int j = 0; j < 4; j++)                                                                                      \
            s[j] = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 16 * j))), _mm256_loadu_ps(xd + 8 * j)); \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                                   \
        for (int k = 0; k < 8; k++) {                                                                                    \
            const q4_xline *x = xl + k;                                                                                  \
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(qs + 64 * k)), v1 = _mm256_loadu_si256((const __m256i *)(qs + 64 * k + 32)); \
            PREFETCH_W(qs + 64 * k);                                                                                     \
            __m256i a = HALF(v0, _mm256_loadu_si256((const __m256i *)x->lo), _mm256_loadu_si256((const __m256i *)x->hi)); \
            __m256i c = HALF(v1, _mm256_loadu_si256((const __m256i *)(x->lo + 32)), _mm256_loadu_si256((const __m256i *)(x->hi + 32))); \
            __m256 sc = s[k / 2];                                                                                        \
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_permutevar8x32_ps(sc, k % 2 ? hi01 : lo01), acc0);       \
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), _mm256_permutevar8x32_ps(sc, k % 2 ? hi23 : lo23), acc1);       \
        }                                                                                                                \
        acc0 = _mm256_sub_ps(acc0, _mm256_fmadd_ps(s[2], _mm256_loadu_ps(c8 + 16), _mm256_mul_ps(s[0], _mm256_loadu_ps(c8)))); \
        acc1 = _mm256_sub_ps(acc1, _mm256_fmadd_ps(s[3], _mm256_loadu_ps(c8 + 24), _mm256_mul_ps(s[1], _mm256_loadu_ps(c8 + 8)))); \
        y[r] = hsum(_mm256_add_ps(acc0, acc1));                                                                          \
    }

#define Q4_HALF_AVX2(v, lo, hi) _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m), lo), \
                                    _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), hi)), _mm256_set1_epi16(1))
#define Q4_HALF_VNNI(v, lo, hi) _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_and_si256(v, m), lo), \
                                    _mm256_and_si256(_mm256_srli_epi16(v, 4), m), hi)

AVX2 void q4_group_avx2(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1) {
    Q4_GROUP_BODY(Q4_HALF_AVX2)
}

// The same group with AVX-VNNI: per half-line two vpdpbusd instead of two maddubs, an add and a madd.
AVXVNNI void q4_group_avxvnni(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1) {
    Q4_GROUP_BODY(Q4_HALF_VNNI)
}

// AVX-512 VNNI: the group's activations (16 registers) loaded once for all the rows; per row, the
// 32 scales x activation scales by two conversions, then per line one 512-bit load, two
// vpdpbusd, each line's four scales spread over its 16 lanes by a permutation.
AVX512 void q4_group_avx512(const uint8_t *w, const q4_xline *xl, const float *xd, const float *c8, float *y, int r0, int r1) {
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
        PREFETCH_PLAIN(qs + 64 * (K));                                                                     \
        __m512i a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, m), LO);               \
        a = _mm512_dpbusd_epi32(a, _mm512_and_si512(_mm512_srli_epi16(v, 4), m), HI);                      \
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_permutexvar_ps(SP, S), acc); }
    for (int r = r0; r < r1; r++) {
        const uint8_t *g = w + (size_t)r * (Q4_SG * 18), *qs = g + 64;
        PREFETCH_PLAIN(g);
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

AVX2 static uint64_t read_avx2(const uint8_t *buf, size_t n, int prefetch) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        if (prefetch) { PREFETCH_W(buf + i); PREFETCH_W(buf + i + 64); }
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
    if (ck_has_avx2()) { matvec_q8_avx2(w, ws, xq, y, cols, r0, r1); return; }
#endif
    matvec_q8_c(w, ws, xq, y, cols, r0, r1);
}

uint64_t read_part(const uint8_t *buf, size_t n, int prefetch) {
#if defined(__x86_64__)
    if (ck_has_avx2() && ((uintptr_t)buf % 32) == 0) return read_avx2(buf, n, prefetch);
#else
    (void)prefetch;
#endif
    uint64_t t = 0;
    const uint64_t *p = (const uint64_t *)buf;
    size_t i = 0;
    for (; i < n / 8; i++) t += p[i];
    for (i *= 8; i < n; i++) t += buf[i];
    return t;
}
