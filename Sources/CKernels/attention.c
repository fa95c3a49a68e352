// Decode attention: one new position's query heads against the cached keys and values
// (float32 or float16), split over the pool's threads by kv head or query head.
#include "internal.h"

// K/V element j of a cached row: float32 or float16 storage.
static inline float kv_at(const void *base, int f16, size_t i) {
    return f16 ? ck_fp16_to_fp32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static void attention_heads_c(const ck_attention *p, int h0, int h1, float *sc) {
    int groups = p->heads / p->kv_heads, dim = p->dim, f16 = p->f16;
    for (int h = h0; h < h1; h++) {
        const float *q = p->q + (size_t)h * dim;
        int g = h / groups;
        for (int j = 0; j < p->total; j++) {
            size_t base = (size_t)j * p->pos_stride + (size_t)g * p->head_stride;
            float s = 0;
            for (int d = 0; d < dim; d++) s += q[d] * kv_at(p->k, f16, base + d);
            sc[j] = s * p->scale;
        }
        ck_softmax_row(sc, p->total);
        float *o = p->out + (size_t)h * dim;
        for (int d = 0; d < dim; d++) o[d] = 0;
        for (int j = 0; j < p->total; j++) {
            size_t base = (size_t)j * p->pos_stride + (size_t)g * p->head_stride;
            for (int d = 0; d < dim; d++) o[d] += sc[j] * kv_at(p->v, f16, base + d);
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
AVX2 static void attention_heads_avx2(const ck_attention *p, int h0, int h1, float *sc) {
    int groups = p->heads / p->kv_heads, dim = p->dim, f16 = p->f16, total = p->total;
    size_t stride = p->pos_stride;
    for (int h = h0; h < h1; h++) {
        const float *q = p->q + (size_t)h * dim;
        size_t g0 = (size_t)(h / groups) * p->head_stride;
        int j = 0;
        for (; j + 4 <= total; j += 4) {
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int d = 0; d < dim; d += 8) {
                __m256 qd = _mm256_loadu_ps(q + d);
                s0 = _mm256_fmadd_ps(qd, kv8(p->k, f16, (j + 0) * stride + g0 + d), s0);
                s1 = _mm256_fmadd_ps(qd, kv8(p->k, f16, (j + 1) * stride + g0 + d), s1);
                s2 = _mm256_fmadd_ps(qd, kv8(p->k, f16, (j + 2) * stride + g0 + d), s2);
                s3 = _mm256_fmadd_ps(qd, kv8(p->k, f16, (j + 3) * stride + g0 + d), s3);
            }
            sc[j] = hsum(s0) * p->scale; sc[j + 1] = hsum(s1) * p->scale;
            sc[j + 2] = hsum(s2) * p->scale; sc[j + 3] = hsum(s3) * p->scale;
        }
        for (; j < total; j++) {
            __m256 s0 = _mm256_setzero_ps();
            for (int d = 0; d < dim; d += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), kv8(p->k, f16, j * stride + g0 + d), s0);
            sc[j] = hsum(s0) * p->scale;
        }
        ck_softmax_row(sc, total);
        float *o = p->out + (size_t)h * dim;
        int d = 0;
        for (; d + 32 <= dim; d += 32) {
            __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
            for (int k = 0; k < total; k++) {
                __m256 w = _mm256_broadcast_ss(sc + k);
                size_t b = k * stride + g0 + d;
                o0 = _mm256_fmadd_ps(w, kv8(p->v, f16, b), o0);
                o1 = _mm256_fmadd_ps(w, kv8(p->v, f16, b + 8), o1);
                o2 = _mm256_fmadd_ps(w, kv8(p->v, f16, b + 16), o2);
                o3 = _mm256_fmadd_ps(w, kv8(p->v, f16, b + 24), o3);
            }
            _mm256_storeu_ps(o + d, o0); _mm256_storeu_ps(o + d + 8, o1);
            _mm256_storeu_ps(o + d + 16, o2); _mm256_storeu_ps(o + d + 24, o3);
        }
        for (; d < dim; d += 8) {
            __m256 o0 = _mm256_setzero_ps();
            for (int k = 0; k < total; k++) o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + k), kv8(p->v, f16, k * stride + g0 + d), o0);
            _mm256_storeu_ps(o + d, o0);
        }
    }
}
#endif

static void attention_heads(const ck_attention *p, int h0, int h1) {
    float *sc = malloc((size_t)(p->total > 0 ? p->total : 1) * sizeof(float));
#if defined(__x86_64__)
    if (ck_has_avx2() && p->dim % 8 == 0) attention_heads_avx2(p, h0, h1, sc);
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
    AVX512 static void NAME(const ck_attention *p, int g, float *sc) {                                          \
        int groups = p->heads / p->kv_heads, f16 = p->f16, total = p->total;                                  \
        size_t stride = p->pos_stride, g0 = (size_t)g * p->head_stride;                                    \
        for (int h = g * groups; h < (g + 1) * groups; h += 2) {                                           \
            int two = h + 1 < (g + 1) * groups;                                                            \
            const float *q0 = p->q + (size_t)h * (NC * 16), *q1 = two ? q0 + NC * 16 : q0;                \
            float *s0 = sc, *s1 = sc + total;                                                              \
            __m512 qa[NC], qb[NC];                                                                         \
            for (int c = 0; c < NC; c++) { qa[c] = _mm512_loadu_ps(q0 + 16 * c); qb[c] = _mm512_loadu_ps(q1 + 16 * c); } \
            for (int j = 0; j < total; j++) {                                                              \
                __m512 a = _mm512_setzero_ps(), b = a;                                                     \
                for (int c = 0; c < NC; c++) {                                                             \
                    __m512 k = kv16(p->k, f16, j * stride + g0 + 16 * c);                                 \
                    a = _mm512_fmadd_ps(qa[c], k, a); b = _mm512_fmadd_ps(qb[c], k, b);                   \
                }                                                                                          \
                s0[j] = _mm512_reduce_add_ps(a) * p->scale; s1[j] = _mm512_reduce_add_ps(b) * p->scale;  \
            }                                                                                              \
            ck_softmax_row(s0, total);                                                                     \
            if (two) ck_softmax_row(s1, total);                                                            \
            __m512 oa[NC], ob[NC];                                                                         \
            for (int c = 0; c < NC; c++) { oa[c] = _mm512_setzero_ps(); ob[c] = oa[c]; }                    \
            for (int j = 0; j < total; j++) {                                                              \
                __m512 wa = _mm512_set1_ps(s0[j]), wb = _mm512_set1_ps(s1[j]);                             \
                for (int c = 0; c < NC; c++) {                                                             \
                    __m512 v = kv16(p->v, f16, j * stride + g0 + 16 * c);                                 \
                    oa[c] = _mm512_fmadd_ps(wa, v, oa[c]); ob[c] = _mm512_fmadd_ps(wb, v, ob[c]);          \
                }                                                                                          \
            }                                                                                              \
            float *o = p->out + (size_t)h * (NC * 16);                                                    \
            for (int c = 0; c < NC; c++) _mm512_storeu_ps(o + 16 * c, oa[c]);                              \
            if (two) for (int c = 0; c < NC; c++) _mm512_storeu_ps(o + NC * 16 + 16 * c, ob[c]);           \
        }                                                                                                  \
    }
ATTN_GROUP(attention_group64_avx512, 4)
ATTN_GROUP(attention_group128_avx512, 8)
#endif

// Part `part` of `parts` of the decode attention: kv heads (with all their query heads) where the
// AVX-512 group kernels apply, else query heads.
void attention_part(const ck_attention *p, int part, int parts) {
#if defined(__x86_64__)
    if (has_avx512() && (p->dim == 64 || p->dim == 128)) {
        float *sc = malloc((size_t)(p->total > 0 ? 2 * p->total : 2) * sizeof(float));
        for (int g = p->kv_heads * part / parts; g < p->kv_heads * (part + 1) / parts; g++) {
            if (p->dim == 64) attention_group64_avx512(p, g, sc);
            else attention_group128_avx512(p, g, sc);
        }
        free(sc);
        return;
    }
#endif
    attention_heads(p, p->heads * part / parts, p->heads * (part + 1) / parts);
}

// ---------------------------------------------------------------------------------------------
// A short prompt's attention: t new positions (position i sees past + i + 1 keys) against the
// cache, per kv head with all its query heads. The cache is read once per kv head in blocks of
// ATTN_KB positions, widened to floats in L1, and each block serves every query: scores for all
// of them, a softmax per row, then the values the same way. With OpenBLAS a prompt's attention
// widened the whole cache on one thread and ran two small GEMMs per query head.

#define ATTN_KB 32

// Positions j0..<j0+n of kv head g's keys (or values) as floats, rows of dim.
static void widen_block(const void *src, int f16, size_t pos_stride, size_t head_stride, int g, int j0, int n, int dim, float *dst) {
    for (int j = 0; j < n; j++) {
        size_t at = (size_t)(j0 + j) * pos_stride + (size_t)g * head_stride;
        if (f16) ck_f16_to_f32((const uint16_t *)src + at, dst + (size_t)j * dim, (size_t)dim);
        else memcpy(dst + (size_t)j * dim, (const float *)src + at, (size_t)dim * sizeof(float));
    }
}

// The kernel body for one kv head, over one ISA's dot product and axpy. Query qi = jh * t + i is
// query head g * groups + jh at new position i; s holds nq rows of total scores.
#define ATTN_ROWS(NAME, ATTR, DOT, AXPY)                                                                  \
    ATTR static void NAME(const ck_attention_rows *a, int g, float *s, float *blk) {                    \
        int t = a->t, groups = a->heads / a->kv_heads, nq = groups * t, dim = a->dim, total = a->past + t; \
        size_t qs = (size_t)a->heads * dim;                                                             \
        for (int j0 = 0; j0 < total; j0 += ATTN_KB) {                                                   \
            int n = total - j0 < ATTN_KB ? total - j0 : ATTN_KB;                                        \
            widen_block(a->k, a->f16, a->pos_stride, a->head_stride, g, j0, n, dim, blk);               \
            for (int qi = 0; qi < nq; qi++) {                                                           \
                int i = qi % t, jh = qi / t, vis = a->past + i + 1 - j0;                                \
                const float *q = a->q + (size_t)i * qs + (size_t)(g * groups + jh) * dim;               \
                float *row = s + (size_t)qi * total + j0;                                               \
                for (int j = 0; j < n && j < vis; j++) row[j] = DOT(q, blk + (size_t)j * dim, dim) * a->scale; \
            }                                                                                           \
        }                                                                                               \
        for (int jh = 0; jh < groups; jh++) ck_softmax_rows(s + (size_t)jh * t * total, t, total, total, a->past); \
        for (int qi = 0; qi < nq; qi++) {                                                               \
            int i = qi % t, jh = qi / t;                                                                \
            memset(a->out + (size_t)i * qs + (size_t)(g * groups + jh) * dim, 0, (size_t)dim * sizeof(float)); \
        }                                                                                               \
        for (int j0 = 0; j0 < total; j0 += ATTN_KB) {                                                   \
            int n = total - j0 < ATTN_KB ? total - j0 : ATTN_KB;                                        \
            widen_block(a->v, a->f16, a->pos_stride, a->head_stride, g, j0, n, dim, blk);               \
            for (int qi = 0; qi < nq; qi++) {                                                           \
                int i = qi % t, jh = qi / t, vis = a->past + i + 1 - j0;                                \
                float *o = a->out + (size_t)i * qs + (size_t)(g * groups + jh) * dim;                   \
                const float *row = s + (size_t)qi * total + j0;                                         \
                AXPY(row, blk, o, n < vis ? n : vis, dim);                                              \
            }                                                                                           \
        }                                                                                               \
    }

static inline float dot_c(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
// o += sum over j < n of w[j] * x[j * dim ..< (j + 1) * dim].
static inline void axpy_c(const float *w, const float *x, float *o, int n, int dim) {
    for (int j = 0; j < n; j++) for (int d = 0; d < dim; d++) o[d] += w[j] * x[(size_t)j * dim + d];
}
ATTN_ROWS(attention_rows_c, , dot_c, axpy_c)

#if defined(__x86_64__)
// dim a multiple of 8 (AVX2) or 16 (AVX-512).
AVX2 static inline float dot_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), s1);
    }
    if (d < n) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
    return hsum(_mm256_add_ps(s0, s1));
}
// The same with o held in registers over all n rows, 32 columns at a time (8 with a narrower dim).
AVX2 static inline void axpy_avx2(const float *w, const float *x, float *o, int n, int dim) {
    int d = 0;
    for (; d + 32 <= dim; d += 32) {
        __m256 a0 = _mm256_loadu_ps(o + d), a1 = _mm256_loadu_ps(o + d + 8), a2 = _mm256_loadu_ps(o + d + 16), a3 = _mm256_loadu_ps(o + d + 24);
        for (int j = 0; j < n; j++) {
            __m256 v = _mm256_broadcast_ss(w + j);
            const float *r = x + (size_t)j * dim + d;
            a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r), a0); a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r + 8), a1);
            a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r + 16), a2); a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r + 24), a3);
        }
        _mm256_storeu_ps(o + d, a0); _mm256_storeu_ps(o + d + 8, a1); _mm256_storeu_ps(o + d + 16, a2); _mm256_storeu_ps(o + d + 24, a3);
    }
    for (; d < dim; d += 8) {
        __m256 a = _mm256_loadu_ps(o + d);
        for (int j = 0; j < n; j++) a = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j), _mm256_loadu_ps(x + (size_t)j * dim + d), a);
        _mm256_storeu_ps(o + d, a);
    }
}
AVX512 static inline float dot_avx512(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int d = 0;
    for (; d + 32 <= n; d += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), _mm512_loadu_ps(b + d), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 16), _mm512_loadu_ps(b + d + 16), s1);
    }
    if (d < n) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), _mm512_loadu_ps(b + d), s0);
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
AVX512 static inline void axpy_avx512(const float *w, const float *x, float *o, int n, int dim) {
    int d = 0;
    for (; d + 64 <= dim; d += 64) {
        __m512 a0 = _mm512_loadu_ps(o + d), a1 = _mm512_loadu_ps(o + d + 16), a2 = _mm512_loadu_ps(o + d + 32), a3 = _mm512_loadu_ps(o + d + 48);
        for (int j = 0; j < n; j++) {
            __m512 v = _mm512_set1_ps(w[j]);
            const float *r = x + (size_t)j * dim + d;
            a0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r), a0); a1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 16), a1);
            a2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 32), a2); a3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 48), a3);
        }
        _mm512_storeu_ps(o + d, a0); _mm512_storeu_ps(o + d + 16, a1); _mm512_storeu_ps(o + d + 32, a2); _mm512_storeu_ps(o + d + 48, a3);
    }
    for (; d < dim; d += 16) {
        __m512 a = _mm512_loadu_ps(o + d);
        for (int j = 0; j < n; j++) a = _mm512_fmadd_ps(_mm512_set1_ps(w[j]), _mm512_loadu_ps(x + (size_t)j * dim + d), a);
        _mm512_storeu_ps(o + d, a);
    }
}
ATTN_ROWS(attention_rows_avx2, AVX2, dot_avx2, axpy_avx2)
ATTN_ROWS(attention_rows_avx512, AVX512, dot_avx512, axpy_avx512)
#endif

void attention_rows_part(const ck_attention_rows *a, int part, int parts) {
    int total = a->past + a->t, nq = a->heads / a->kv_heads * a->t;
    float *s = malloc(((size_t)nq * total + (size_t)ATTN_KB * a->dim) * sizeof(float));
    float *blk = s + (size_t)nq * total;
    for (int g = a->kv_heads * part / parts; g < a->kv_heads * (part + 1) / parts; g++) {
#if defined(__x86_64__)
        if (has_avx512() && a->dim % 16 == 0) { attention_rows_avx512(a, g, s, blk); continue; }
        if (ck_has_avx2() && a->dim % 8 == 0) { attention_rows_avx2(a, g, s, blk); continue; }
#endif
        attention_rows_c(a, g, s, blk);
    }
    free(s);
}
