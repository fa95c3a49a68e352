// CPU feature detection and the per-thread instruction-set cap. See include/ckernels.h.
#include "internal.h"
#include <strings.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// ---------------------------------------------------------------------------------------------
// CPU features

#if defined(__x86_64__)
// INTERNVL_CHAT_ISA=c|avx2|avx-vnni|avx512 caps the whole process (benchmarks compare the
// levels): 0, 1, 1 with AVX-VNNI, 2, or 3 (no cap). `avx2` stands for a CPU with AVX2 alone, so
// it turns AVX-VNNI off too.
static int isa_env_cap(void) {
    const char *e = getenv("INTERNVL_CHAT_ISA");
    if (e && strcmp(e, "c") == 0) return 0;
    if (e && (strcmp(e, "avx2") == 0 || strcmp(e, "avx-vnni") == 0)) return 1;
    if (e && strcmp(e, "avx512") == 0) return 2;
    return 3;
}

static int avx_vnni_env_allowed(void) {
    const char *e = getenv("INTERNVL_CHAT_ISA");
    return !(e && (strcmp(e, "c") == 0 || strcmp(e, "avx2") == 0));
}

// AMX tiles with bf16 products: the CPU has them (CPUID 7: AMX-BF16, AMX-TILE), the OS saves
// their state (XCR0 bits 17-18), and Linux lets this process use their 8 KiB of data
// (ARCH_REQ_XCOMP_PERM for XTILEDATA, once for all its threads).
static int amx_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;      // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}
#endif

// The best instruction set of this CPU: 3 = that and AMX bf16 tiles, 2 = AVX-512 with VNNI
// (avx512f/bw/vl/vnni), 1 = AVX2 + FMA + F16C, 0 = portable C. Each thread may cap it (ck_set_isa_limit); pool jobs run at their
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
        int cap = isa_env_cap();
        if (v == 2 && cap == 3 && amx_usable()) v = 3;
        if (v > cap) v = cap;
    }
    return v;
#else
    return 0;
#endif
}

_Thread_local int isa_cap = 3;
_Thread_local int avx_vnni_cap = 1;

// AVX-VNNI (the 256-bit VEX vpdpbusd of Intel's Alder Lake and later cores, Zen 5): the CPU has it
// (CPUID 7.1 EAX bit 4) beside AVX2, and INTERNVL_CHAT_ISA allows it.
static int avx_vnni_machine(void) {
#if defined(__x86_64__)
    static int v = -1;
    if (v < 0) {
        unsigned a, b, c, d;
        v = isa_machine() >= 1 && avx_vnni_env_allowed() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && a >= 1 &&
            __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
    }
    return v;
#else
    return 0;
#endif
}

#if defined(__x86_64__)
// How far ahead of their loads the decode kernels prefetch their weight stream (docs/benchmarks.md:
// 32 KiB measured best of 0-64 KiB, the q4 and int8 AVX2 paths gaining most).
int ck_prefetch_ahead = 32768;
int ck_prefetch_plain = 32768;
int ck_prefetch_near = 0;

static int is_amd(void) {
    unsigned a, b, c, d;
    return __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541 && d == 0x69746E65 && c == 0x444D4163;     // "AuthenticAMD"
}

static int prefetch_bytes(const char *text) {
    long v = strtol(text, NULL, 10);
    return v < 0 ? 0 : (v > (1 << 20) ? 1 << 20 : (int)v);
}

__attribute__((constructor)) static void prefetch_from_env(void) {
    if (is_amd()) { ck_prefetch_plain = 0; ck_prefetch_near = 1024; }
    const char *e = getenv("INTERNVL_CHAT_PREFETCH");
    if (e && *e) ck_prefetch_ahead = ck_prefetch_plain = prefetch_bytes(e);
    const char *n = getenv("INTERNVL_CHAT_PREFETCH_NEAR");
    if (n && *n) ck_prefetch_near = prefetch_bytes(n);
}
#endif

int ck_isa(void) { int m = isa_machine(); return m < isa_cap ? m : isa_cap; }
void ck_set_isa_limit(int level) { isa_cap = level < 0 ? 0 : level; }
int ck_has_avx2(void) { return ck_isa() >= 1; }
int ck_avx_vnni(void) { return ck_isa() == 1 && avx_vnni_cap && avx_vnni_machine(); }
void ck_set_avx_vnni_limit(int allowed) { avx_vnni_cap = allowed != 0; }

// ---------------------------------------------------------------------------------------------
// OpenBLAS's kernels (the prefill's and the vision encoder's SGEMM)

// OpenBLAS built for many CPUs (Debian's, 0.3.21) picks its kernels by CPU model and falls back to
// Prescott (SSE3) on models newer than it knows: on an Emerald Rapids Xeon its SGEMM ran 57
// GFLOP/s, with its SkylakeX kernels 254 and its Haswell ones 144 (256x8192x2048, two threads).
// So when its choice cannot use the AVX2 + FMA this CPU has, it is made again from the features
// (SkylakeX with AVX-512 F/BW/DQ/VL/CD, else Haswell), before any BLAS call; with
// INTERNVL_CHAT_ISA=avx2 its AVX-512 kernels give way to Haswell's too, so that the cap stands for
// an AVX2-only machine. An OPENBLAS_CORETYPE set by the user is left alone. The OpenBLAS functions
// are weak: a BLAS without them (not built for many CPUs) keeps its own choice.
extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static int blas_core_rechosen = 0;

#if defined(__x86_64__)
static int name_in(const char *name, const char *const *list) {
    for (; *list; list++) if (strcasecmp(name, *list) == 0) return 1;
    return 0;
}
#endif

__attribute__((constructor)) static void blas_core_for_cpu(void) {
#if defined(__x86_64__)
    if (!openblas_get_corename || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return;
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *now = openblas_get_corename();
    if (!now) return;
    static const char *const avx512[] = { "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    static const char *const avx2[] = { "Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    if (isa_machine() < 1) return;      // (it has run __builtin_cpu_init)
    int capped = isa_env_cap() == 1;
    int wide = !capped && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd");
    const char *want = NULL;
    if (!name_in(now, avx2)) want = wide ? "SkylakeX" : "Haswell";
    else if (capped && name_in(now, avx512)) want = "Haswell";
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    blas_core_rechosen = 1;
#endif
}

const char *ck_blas_core(void) { return openblas_get_corename ? openblas_get_corename() : NULL; }
int ck_blas_core_rechosen(void) { return blas_core_rechosen; }

// ---------------------------------------------------------------------------------------------
// The multiply-add peak (bench --kernels compares the product kernels with it)

#if defined(__x86_64__)
AVX512 static double fma_probe_avx512(long n, float seed) {
    __m512 a[12], x = _mm512_set1_ps(1.0f - seed * 1e-9f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(seed * (float)i);
    for (long j = 0; j < n; j++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], x, x);
    float s = 0;
    for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
    return s == 1234.5f ? 0 : (double)n * 12 * 16;
}

AVX2 static double fma_probe_avx2(long n, float seed) {
    __m256 a[12], x = _mm256_set1_ps(1.0f - seed * 1e-9f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(seed * (float)i);
    for (long j = 0; j < n; j++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, x);
    float s = 0, t[8];
    for (int i = 0; i < 12; i++) { _mm256_storeu_ps(t, a[i]); for (int k = 0; k < 8; k++) s += t[k]; }
    return s == 1234.5f ? 0 : (double)n * 12 * 8;
}
#endif

double ck_fma_probe(long n, float seed) {
#if defined(__x86_64__)
    if (ck_isa() >= 2) return fma_probe_avx512(n, seed);
    if (ck_isa() >= 1) return fma_probe_avx2(n, seed);
#endif
    float a[12], x = 1.0f - seed * 1e-9f, s = 0;
    for (int i = 0; i < 12; i++) a[i] = seed * (float)i;
    for (long j = 0; j < n; j++)
        for (int i = 0; i < 12; i++) a[i] = fmaf(a[i], x, x);
    for (int i = 0; i < 12; i++) s += a[i];
    return s == 1234.5f ? 0 : (double)n * 12;
}
