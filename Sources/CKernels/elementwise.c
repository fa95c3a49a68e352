// Softmax, bf16 conversion, GELU, LayerNorm, SiLU and the residual steps. See include/ckernels.h.
#include "internal.h"

// ---------------------------------------------------------------------------------------------
// Softmax and conversion

#if defined(__x86_64__)
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


void convert_part(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (ck_has_avx2()) { convert_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) { uint32_t b = (uint32_t)src[i] << 16; memcpy(dst + i, &b, 4); }
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
