// CPU feature detection and the per-thread instruction-set cap. See include/ckernels.h.
#include "internal.h"

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

_Thread_local int isa_cap = 2;

int ck_isa(void) { int m = isa_machine(); return m < isa_cap ? m : isa_cap; }
void ck_set_isa_limit(int level) { isa_cap = level < 0 ? 0 : level; }
int ck_has_avx2(void) { return ck_isa() >= 1; }
