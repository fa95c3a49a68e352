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
// of them, a softmax per query, then the values the same way. With OpenBLAS a prompt's attention
// widened the whole cache on one thread and ran two small GEMMs per query head.

#define ATTN_KB 32

// Positions j0..<j0+n of kv head g's keys (or values) as floats, rows of dim, the next block's
// rows fetched into L1 meanwhile: read from memory without it, the strided rows left the cores
// waiting (15% of a short prompt's attention over a 2,000-position cache, docs/benchmarks.md).
static void widen_block(const void *src, int f16, size_t pos_stride, size_t head_stride, int g, int j0, int n, int total,
                        int dim, float *dst) {
    for (int j = 0; j < n; j++) {
        size_t at = (size_t)(j0 + j) * pos_stride + (size_t)g * head_stride;
#if defined(__x86_64__)
        if (j0 + j + ATTN_KB < total) {
            int size = f16 ? 2 : 4;
            const char *next = (const char *)src + (at + (size_t)ATTN_KB * pos_stride) * size;
            for (int c = 0; c < dim * size; c += 64) _mm_prefetch(next + c, _MM_HINT_T0);
        }
#endif
        if (f16) ck_f16_to_f32((const uint16_t *)src + at, dst + (size_t)j * dim, (size_t)dim);
        else memcpy(dst + (size_t)j * dim, (const float *)src + at, (size_t)dim * sizeof(float));
    }
}


// The portable kernel for kv head g: per block of keys a dot product per query and key, then a
// softmax per query row, then the values block by block. s holds nq rows of total scores; query
// qi = jh * t + i is query head g * groups + jh at new position i.
static void attention_rows_c(const ck_attention_rows *a, int g, float *s, float *blk) {
    int t = a->t, groups = a->heads / a->kv_heads, nq = groups * t, dim = a->dim, total = a->past + t;
    size_t qs = (size_t)a->heads * dim;
    for (int j0 = 0; j0 < total; j0 += ATTN_KB) {
        int n = total - j0 < ATTN_KB ? total - j0 : ATTN_KB;
        widen_block(a->k, a->f16, a->pos_stride, a->head_stride, g, j0, n, total, dim, blk);
        for (int qi = 0; qi < nq; qi++) {
            int i = qi % t, jh = qi / t, vis = a->past + i + 1 - j0;
            const float *q = a->q + (size_t)i * qs + (size_t)(g * groups + jh) * dim;
            float *row = s + (size_t)qi * total + j0;
            for (int j = 0; j < n && j < vis; j++) {
                float d = 0;
                for (int e = 0; e < dim; e++) d += q[e] * blk[(size_t)j * dim + e];
                row[j] = d * a->scale;
            }
        }
    }
    for (int jh = 0; jh < groups; jh++) ck_softmax_rows(s + (size_t)jh * t * total, t, total, total, a->past);
    for (int qi = 0; qi < nq; qi++) {
        int i = qi % t, jh = qi / t;
        memset(a->out + (size_t)i * qs + (size_t)(g * groups + jh) * dim, 0, (size_t)dim * sizeof(float));
    }
    for (int j0 = 0; j0 < total; j0 += ATTN_KB) {
        int n = total - j0 < ATTN_KB ? total - j0 : ATTN_KB;
        widen_block(a->v, a->f16, a->pos_stride, a->head_stride, g, j0, n, total, dim, blk);
        for (int qi = 0; qi < nq; qi++) {
            int i = qi % t, jh = qi / t, vis = a->past + i + 1 - j0;
            float *o = a->out + (size_t)i * qs + (size_t)(g * groups + jh) * dim;
            const float *row = s + (size_t)qi * total + j0;
            for (int j = 0; j < n && j < vis; j++) for (int e = 0; e < dim; e++) o[e] += row[j] * blk[(size_t)j * dim + e];
        }
    }
}

#if defined(__x86_64__)
// The vector kernels turn the queries into columns: qt[d][qi] (np columns, padded with zeros to
// a whole number of score tiles), so a widened key row scores every query by broadcasting its
// elements, with no horizontal sum: st[j][qi] for all keys, each column's maximum kept as the
// tiles are stored, then block by block the exponentials (still in L1) and out[qi] += st[j][qi]
// v[j], several queries sharing each value load. A score tile is QV vectors of queries by 4
// keys; a value tile is QN queries by 4 vectors of the head.
#define ROWS_VEC(SUF, ATTR, VT, W, QV, QN, LOAD, STORE, SET1, ZERO, FMA, MUL, MAX, SUB, ADD, EXP)                              \
    ATTR static inline __attribute__((always_inline)) void score_tile_##SUF(const float *qt, int np, const float *k, \
                                                                            int kj, int dim, VT scale, float *st, VT *mx) { \
        VT acc[4][QV];                                                                                     \
        for (int a = 0; a < kj; a++) for (int b = 0; b < QV; b++) acc[a][b] = ZERO();                        \
        for (int d = 0; d < dim; d++) {                                                                    \
            VT q[QV];                                                                                      \
            for (int b = 0; b < QV; b++) q[b] = LOAD(qt + (size_t)d * np + b * W);                          \
            for (int a = 0; a < kj; a++) {                                                                 \
                VT kb = SET1(k[(size_t)a * dim + d]);                                                      \
                for (int b = 0; b < QV; b++) acc[a][b] = FMA(q[b], kb, acc[a][b]);                          \
            }                                                                                              \
        }                                                                                                  \
        for (int a = 0; a < kj; a++)                                                                       \
            for (int b = 0; b < QV; b++) {                                                                 \
                VT x = MUL(acc[a][b], scale);                                                              \
                STORE(st + (size_t)a * np + b * W, x);                                                     \
                if (mx) mx[b] = MAX(mx[b], x);                                                             \
            }                                                                                              \
    }                                                                                                      \
    /* st[j0 + j][*] for the n widened keys in blk (cache positions j0...); m[*] takes the maximum of */ \
    /* the tiles wholly before position `past`, which no query's mask touches. */                         \
    ATTR static void scores_##SUF(const float *qt, int np, const float *blk, int n, int dim, float scale, float *st, \
                                  int j0, int past, float *m) {                                            \
        VT sc = SET1(scale);                                                                               \
        for (int c = 0; c < np; c += QV * W) {                                                             \
            VT mx[QV];                                                                                     \
            for (int b = 0; b < QV; b++) mx[b] = LOAD(m + c + b * W);                                      \
            int j = 0;                                                                                     \
            for (; j + 4 <= n; j += 4)                                                                     \
                score_tile_##SUF(qt + c, np, blk + (size_t)j * dim, 4, dim, sc, st + (size_t)j * np + c, j0 + j + 4 <= past ? mx : NULL); \
            for (; j < n; j++)                                                                             \
                score_tile_##SUF(qt + c, np, blk + (size_t)j * dim, 1, dim, sc, st + (size_t)j * np + c, j0 + j + 1 <= past ? mx : NULL); \
            for (int b = 0; b < QV; b++) STORE(m + c + b * W, mx[b]);                                      \
        }                                                                                                  \
    }                                                                                                      \
    /* exp(st - m) over the n rows of a block starting at cache position j0, the masked entries 0, */    \
    /* each column's sum into sum[*]. */                                                                   \
    ATTR static void exp_rows_##SUF(float *st, int n, int np, int j0, int past, int t, int nq, const float *m, \
                                    float *sum, float *keep) {                                             \
        for (int j = 0; j < n; j++) {                                                                      \
            float *row = st + (size_t)j * np;                                                              \
            int masked = j0 + j > past;                                                                    \
            if (masked) for (int qi = 0; qi < np; qi++) keep[qi] = qi < nq && j0 + j > past + qi % t ? 0.0f : 1.0f; \
            for (int c = 0; c < np; c += W) {                                                              \
                VT e = EXP(SUB(LOAD(row + c), LOAD(m + c)));                                               \
                if (masked) e = MUL(e, LOAD(keep + c));                                                    \
                STORE(row + c, e);                                                                         \
                STORE(sum + c, ADD(LOAD(sum + c), e));                                                     \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    ATTR static inline __attribute__((always_inline)) void value_tile_##SUF(const float *p, int np, const float *v, int n, \
                                                                            int dim, float *const *o, int qn, int dv) { \
        VT acc[QN][4];                                                                                     \
        for (int a = 0; a < qn; a++) for (int b = 0; b < dv; b++) acc[a][b] = LOAD(o[a] + b * W);           \
        for (int j = 0; j < n; j++) {                                                                      \
            VT w[QN];                                                                                      \
            for (int a = 0; a < qn; a++) w[a] = SET1(p[(size_t)j * np + a]);                               \
            for (int b = 0; b < dv; b++) {                                                                 \
                VT x = LOAD(v + (size_t)j * dim + b * W);                                                  \
                for (int a = 0; a < qn; a++) acc[a][b] = FMA(w[a], x, acc[a][b]);                          \
            }                                                                                              \
        }                                                                                                  \
        for (int a = 0; a < qn; a++) for (int b = 0; b < dv; b++) STORE(o[a] + b * W, acc[a][b]);           \
    }                                                                                                      \
    /* out[qi] += sum over the block's n rows of st[j][qi] * v[j] (dim a multiple of W); out(qi) */      \
    /* gives query qi's output row. */                                                                     \
    ATTR static void values_##SUF(const float *p, int np, const float *blk, int n, int dim, int nq, float *const *out) { \
        int qi = 0;                                                                                        \
        for (; qi + QN <= nq; qi += QN) {                                                                  \
            int d = 0;                                                                                     \
            float *o[QN];                                                                                  \
            for (; d + 4 * W <= dim; d += 4 * W) {                                                         \
                for (int a = 0; a < QN; a++) o[a] = out[qi + a] + d;                                       \
                value_tile_##SUF(p + qi, np, blk + d, n, dim, o, QN, 4);                           \
            }                                                                                              \
            for (; d < dim; d += W) {                                                                      \
                for (int a = 0; a < QN; a++) o[a] = out[qi + a] + d;                                       \
                value_tile_##SUF(p + qi, np, blk + d, n, dim, o, QN, 1);                                   \
            }                                                                                              \
        }                                                                                                  \
        for (; qi < nq; qi++) {                                                                            \
            float *o[1];                                                                                   \
            int d = 0;                                                                                     \
            for (; d + 4 * W <= dim; d += 4 * W) { o[0] = out[qi] + d; value_tile_##SUF(p + qi, np, blk + d, n, dim, o, 1, 4); } \
            for (; d < dim; d += W) { o[0] = out[qi] + d; value_tile_##SUF(p + qi, np, blk + d, n, dim, o, 1, 1); } \
        }                                                                                                  \
    }

ROWS_VEC(avx2, AVX2, __m256, 8, 2, 2, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_mul_ps,
         _mm256_max_ps, _mm256_sub_ps, _mm256_add_ps, exp8)
ROWS_VEC(avx512, AVX512, __m512, 16, 3, 4, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_mul_ps,
         _mm512_max_ps, _mm512_sub_ps, _mm512_add_ps, exp16)

// The rows from position `past` on get their masks: position i's queries see past + i + 1 keys,
// the later ones become -inf. m[*] takes the maximum of the rows from `from` on, which the score
// tiles left out.
AVX2 static void mask_rows(float *st, int total, int np, int past, int t, int nq, int from, float *m) {
    for (int j = past; j < total; j++)
        for (int qi = 0; qi < nq; qi++) if (j > past + qi % t) st[(size_t)j * np + qi] = -INFINITY;
    for (int j = from; j < total; j++)
        for (int c = 0; c < np; c += 8)
            _mm256_storeu_ps(m + c, _mm256_max_ps(_mm256_loadu_ps(m + c), _mm256_loadu_ps(st + (size_t)j * np + c)));
}

// The vector kernel for kv head g; np a multiple of tile (the score tile's queries).
#define ROWS_KERNEL(SUF, ATTR)                                                                              \
    ATTR static void attention_rows_##SUF(const ck_attention_rows *a, int g, int np, float *qt, float *st, float *blk, \
                                          float *m, float *sum, float **out) {                               \
        int t = a->t, groups = a->heads / a->kv_heads, nq = groups * t, dim = a->dim, total = a->past + t; \
        size_t qs = (size_t)a->heads * dim;                                                             \
        for (int qi = 0; qi < np; qi++) {                                                               \
            const float *q = qi < nq ? a->q + (size_t)(qi % t) * qs + (size_t)(g * groups + qi / t) * dim : NULL; \
            for (int d = 0; d < dim; d++) qt[(size_t)d * np + qi] = q ? q[d] : 0.0f;                     \
        }                                                                                               \
        for (int qi = 0; qi < nq; qi++) {                                                               \
            out[qi] = a->out + (size_t)(qi % t) * qs + (size_t)(g * groups + qi / t) * dim;             \
            memset(out[qi], 0, (size_t)dim * sizeof(float));                                            \
        }                                                                                               \
        for (int c = 0; c < np; c++) { m[c] = -INFINITY; sum[c] = 0; }                                 \
        for (int j0 = 0; j0 < total; j0 += ATTN_KB) {                                                   \
            int n = total - j0 < ATTN_KB ? total - j0 : ATTN_KB;                                        \
            widen_block(a->k, a->f16, a->pos_stride, a->head_stride, g, j0, n, total, dim, blk);        \
            scores_##SUF(qt, np, blk, n, dim, a->scale, st + (size_t)j0 * np, j0, a->past, m);          \
        }                                                                                               \
        /* a tile the scores left out starts after past - 4 */                                          \
        mask_rows(st, total, np, a->past, t, nq, a->past > 3 ? a->past - 3 : 0, m);                     \
        for (int j0 = 0; j0 < total; j0 += ATTN_KB) {                                                   \
            int n = total - j0 < ATTN_KB ? total - j0 : ATTN_KB;                                        \
            exp_rows_##SUF(st + (size_t)j0 * np, n, np, j0, a->past, t, nq, m, sum, m + np);            \
            widen_block(a->v, a->f16, a->pos_stride, a->head_stride, g, j0, n, total, dim, blk);        \
            values_##SUF(st + (size_t)j0 * np, np, blk, n, dim, nq, out);                               \
        }                                                                                               \
        for (int qi = 0; qi < nq; qi++) {                                                               \
            float r = 1.0f / sum[qi];                                                                   \
            for (int d = 0; d < dim; d++) out[qi][d] *= r;                                              \
        }                                                                                               \
    }
ROWS_KERNEL(avx2, AVX2)
ROWS_KERNEL(avx512, AVX512)
#endif

void attention_rows_part(const ck_attention_rows *a, int part, int parts) {
    int total = a->past + a->t, nq = a->heads / a->kv_heads * a->t, dim = a->dim;
#if defined(__x86_64__)
    int w = has_avx512() && dim % 16 == 0 ? 16 : ck_has_avx2() && dim % 8 == 0 ? 8 : 0;
    if (w) {
        int tile = w == 16 ? 48 : 16, np = (nq + tile - 1) / tile * tile;
        float *st = malloc(((size_t)np * (total + dim + 3) + (size_t)ATTN_KB * dim) * sizeof(float) + (size_t)nq * sizeof(float *));
        float *qt = st + (size_t)np * total, *m = qt + (size_t)np * dim, *sum = m + 2 * (size_t)np, *blk = sum + np;
        float **out = (float **)(blk + (size_t)ATTN_KB * dim);
        for (int g = a->kv_heads * part / parts; g < a->kv_heads * (part + 1) / parts; g++) {
            if (w == 16) attention_rows_avx512(a, g, np, qt, st, blk, m, sum, out);
            else attention_rows_avx2(a, g, np, qt, st, blk, m, sum, out);
        }
        free(st);
        return;
    }
#endif
    float *s = malloc(((size_t)nq * total + (size_t)ATTN_KB * dim) * sizeof(float));
    float *blk = s + (size_t)nq * total;
    for (int g = a->kv_heads * part / parts; g < a->kv_heads * (part + 1) / parts; g++) attention_rows_c(a, g, s, blk);
    free(s);
}
