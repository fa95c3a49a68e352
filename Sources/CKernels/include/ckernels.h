// Hot loops in C (AVX-512 VNNI or AVX2 + FMA + F16C, with a portable fallback, chosen at run
// time), and a pool of worker threads that stay hot (spinning) between the ~170 matrix-vector
// products of one decode step, then park. Called from Swift (the Kernels module).
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stdint.h>
#include <stddef.h>

// Quantized formats. Q8: int8 weights, one float scale per row. Q4: blocks of 32 weights, each a
// float16 scale and 16 bytes of 4-bit values (v - 8) * scale (byte i: element i in the low
// nibble, element i + 16 in the high one). The columns go in groups of 32 blocks (1,024; the last
// group may be narrower): the matrix holds group 0 of all rows, then group 1 of all rows, ...;
// one row's group is its blocks' scales (64 bytes in a full group), then their nibbles (so each
// 64-byte line holds four blocks). A matrix of up to 1,024 columns is its rows one after another.
// 18 bytes per 32 weights. The q4 functions take the matrix (w, rows) and a row index.
#define CK_QK 32
// Activations for the integer kernels: blocks of 32 int8 with a float scale each.
typedef struct { float d; int8_t qs[32]; } ck_block_q8;          // 36 bytes

int ck_has_avx2(void);
// The instruction set the kernels use on this thread: 3 = AVX-512 with VNNI and AMX bf16 tiles,
// 2 = AVX-512 with VNNI, 1 = AVX2 + FMA + F16C, 0 = portable C. ck_set_isa_limit caps it for the calling thread and the pool jobs it
// starts (the tests run every level the CPU has).
int ck_isa(void);
void ck_set_isa_limit(int level);
// Whether the int8 and q4 kernels at level 1 use AVX-VNNI (256-bit vpdpbusd: Intel cores from
// Alder Lake on, Zen 5) where the CPU has it; INTERNVL_CHAT_ISA=avx2 turns it off, =avx-vnni keeps
// it at level 1. ck_set_avx_vnni_limit(0) turns it off for the calling thread and its pool jobs.
int ck_avx_vnni(void);
void ck_set_avx_vnni_limit(int allowed);
// The calling thread's multiply-add peak: `n` rounds of twelve independent vector FMA chains at
// its instruction-set level (512-bit, 256-bit or scalar). Returns the multiply-adds done; the
// caller times it (bench --kernels). `seed` keeps the compiler from folding the loop.
double ck_fma_probe(long n, float seed);
// The kernel set OpenBLAS runs (its core name; NULL when the BLAS does not say) and whether it
// was chosen again from this CPU's features at start (see cpu.c).
const char *ck_blas_core(void);
int ck_blas_core_rechosen(void);

// y[r] = dot(W[r], x) for r in [r0, r1) on the calling thread (bf16: ck_pool_matvec_bf16 only).
void ck_matvec_q8(const int8_t *w, const float *wscale, const ck_block_q8 *xq, float *y, int cols, int r0, int r1);

// x (n floats, n a multiple of 32) to q8 blocks: scale = max|x| / 127, q = round(x / scale).
void ck_quantize_q8_blocks(const float *x, ck_block_q8 *out, int n);
// Row quantizers for weights (from float rows).
void ck_quantize_row_q8(const float *x, int8_t *q, float *scale, int n);
void ck_quantize_row_q4(const float *x, uint8_t *w, int rows, int r, int n);
// The scale of block b of row r of a q4 matrix.
float ck_q4_block_scale(const uint8_t *w, int rows, int cols, int r, int b);

// Rows r0..<r1 of a quantized matrix as floats (GEMM's weight blocks): q8 value x row scale,
// q4 (nibble - 8) x block scale; out is (r1 - r0) x cols.
void ck_dequantize_q8(const int8_t *w, const float *wscale, int cols, int r0, int r1, float *out);
void ck_dequantize_q4(const uint8_t *w, int rows, int cols, int r0, int r1, float *out);

// Naive references (the tests' twins): dequantize then multiply, in float.
float ck_dot_q8_ref(const int8_t *w, float wscale, const ck_block_q8 *xq, int cols);
float ck_dot_q4_ref(const uint8_t *w, int rows, int r, const ck_block_q8 *xq, int cols);

float ck_fp16_to_fp32(uint16_t h);
uint16_t ck_fp32_to_fp16(float f);

// The pool. ck_pool_matvec_* split rows over all threads (the caller's included) and return
// when every row is done. Workers spin for `spin_us` microseconds after a job before parking.
typedef struct ck_pool ck_pool;
ck_pool *ck_pool_create(int threads, int spin_us);
void ck_pool_destroy(ck_pool *p);
int ck_pool_threads(const ck_pool *p);
void ck_pool_matvec_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int rows, int cols);
void ck_pool_matvec_q8(ck_pool *p, const int8_t *w, const float *wscale, const ck_block_q8 *xq, float *y, int rows, int cols);
void ck_pool_matvec_q4(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *y, int rows, int cols);

// bf16 rows in groups of four, the language model's layout for decoding: for each group of four
// rows and each chunk of 32 columns, the four rows' 32 values one after another (256 bytes); a
// matrix wider than 2,048 columns has this for each block of 2,048 columns in turn (all groups of
// block 0, then of block 1, ...); rows after the last full group stay whole, one after another,
// at the end. cols a multiple of 32. Packing, a product
// (like ck_pool_matvec_bf16), and rows r0..<r1 as floats (GEMM's weight blocks).
void ck_pack_bf16_rows4(const uint16_t *src, uint16_t *dst, int rows, int cols);
void ck_pool_matvec_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int rows, int cols);
void ck_convert_bf16_rows4(const uint16_t *w, int rows, int cols, int r0, int r1, float *out);

// Short prompts and batched decoding: t activation rows (x: t rows of cols floats, or t rows of
// cols / 32 int8 blocks) against one matrix, y: t rows of `rows` outputs. The weights are read
// from memory once: each thread runs every activation row over a chunk of ~64 KiB of weights
// while the chunk is in its L2. Each row's result is the bits of the matching ck_pool_matvec_*.
void ck_pool_matrows_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols);
void ck_pool_matrows_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols);
// The same for a prompt's rows, where the bits of each row's one-row product are not needed: with
// AMX (ISA level 3) on bf16 tiles, each activation value split into two bf16 (results within
// about float rounding of the exact product); else ck_pool_matrows_bf16(_rows4), but with AVX-512
// the rows in groups of four four activation rows at a time (ck_prompt_rows_in_fours).
// Whether those go through the tiles for a matrix of this shape (ISA level 3, at least 64 rows,
// columns a multiple of 32).
int ck_prompt_on_tiles(int rows, int cols);
// Whether a bf16 prompt's rows in groups of four go four activation rows at a time with AVX-512
// (not the one-row bits; INTERNVL_CHAT_PROMPT_FOURS=0 turns it off, read once at start).
int ck_prompt_rows_in_fours(void);
void ck_pool_prompt_bf16(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols);
void ck_pool_prompt_bf16_rows4(ck_pool *p, const uint16_t *w, const float *x, float *y, int t, int rows, int cols);
void ck_pool_matrows_q8(ck_pool *p, const int8_t *w, const float *wscale, const ck_block_q8 *xq, float *y, int t, int rows, int cols);
void ck_pool_matrows_q4(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *y, int t, int rows, int cols);

// The integer GEMM (AVX-512 VNNI tiles, or for int8 AVX-VNNI ones: ck_q8_gemm_available). Activations are m rows of k / 32
// int8 blocks (ck_quantize_q8_blocks, as decoding); weights in panels of 32 rows (ck_q8_gemm_pack):
// per 4 columns, the panel's 32 rows x 4 bytes of w + 128 (unsigned), rows past n as zero
// weights. c[i * ldc + j] = wscale[j] x the block-by-block sum of ck_q8_gemm_ref, bit for bit
// (wscale NULL: q4 panels, below, AVX-512 VNNI only).
int ck_q8_gemm_available(void);
size_t ck_q8_gemm_packed_bytes(int rows, int cols);
void ck_q8_gemm_pack(const int8_t *w, int rows, int cols, uint8_t *packed);
void ck_pool_q8_gemm(ck_pool *p, const uint8_t *packed, const float *wscale, const ck_block_q8 *xq, float *c,
                     int m, int n, int k, int ldc);
float ck_q8_gemm_ref(const int8_t *w, float wscale, const ck_block_q8 *xq, int cols);
// int8 panels (wscale given) run on every instruction set: AVX-512 VNNI tiles, AVX2 and portable
// kernels, all with ck_q8_gemm_ref's bits. The language model stores its int8 matrices so (the
// packed panels, then the row scales), and every product with them, one row or many, is this GEMM.
// Rows r0..<r1 of such a matrix as floats (value x row scale):
void ck_dequantize_q8_panels(const uint8_t *packed, const float *wscale, int cols, int r0, int r1, float *out);
// The same GEMM for q4 weights: packed per block as q - 8 + 128 with the block's 32 weight scales
// after it (ck_q4_gemm_pack); wscale NULL in ck_pool_q8_gemm. Reference: per block, fmaf(integer
// sum, weight scale x activation scale, acc).
size_t ck_q4_gemm_packed_bytes(int rows, int cols);
void ck_q4_gemm_pack(const uint8_t *w, int rows, int cols, int r0, int r1, uint8_t *packed);     // rows r0..<r1
float ck_q4_gemm_ref(const uint8_t *w, int rows, int r, const ck_block_q8 *xq, int cols);
// The same product straight from a q4 matrix (rows x k): with VNNI each thread packs the panels it
// takes into a buffer of its own (as ck_q4_gemm_pack) and runs them at once; with AVX2 (no VNNI)
// into the panels of the AVX2 tiles (bytes of 4-bit values, int16 sums); the same bits (portable
// C: ck_q4_gemm_ref per output, slowly).
void ck_pool_q4_gemm(ck_pool *p, const uint8_t *w, const ck_block_q8 *xq, float *c, int m, int rows, int k, int ldc);
// The same product for int8 weights in rows (rows x k, row scales wscale), each thread packing the
// panels it takes: with AVX2 (no VNNI) into the panels of the AVX2 tiles (int16 products), else
// into ck_q8_gemm_pack's. ck_q8_gemm_ref's bits on every instruction set.
void ck_pool_q8_gemm_rows(ck_pool *p, const int8_t *w, const float *wscale, const ck_block_q8 *xq, float *c,
                          int m, int rows, int k, int ldc);

// One head of bidirectional attention (the vision encoder's) on AMX bf16 tiles (ISA level 3 only;
// dim a multiple of 32): q, k, v rows `stride` floats apart (this head's dim columns), out rows
// ldo apart; scores: n x n floats of scratch. Queries, keys, values and the softmax's weights are
// each split into two bf16 (as ck_pool_prompt_bf16), so the products are the exact ones to about
// float rounding. On the calling thread.
void ck_attention_head_amx(const float *q, const float *k, const float *v, size_t stride, float *out, size_t ldo,
                           int n, int dim, float scale, float *scores);
// Row-wise softmax in place over `rows` rows of `n` values (row stride `ld`), on the calling
// thread (between two SGEMMs: OpenBLAS's threads still spin then, so more threads would only
// compete with them). causal_base >= 0: row i sees its first min(n, causal_base + i + 1) values,
// the rest become 0.
void ck_softmax_rows(float *s, int rows, int n, int ld, int causal_base);
// bf16 -> float for n values, on the calling thread (GEMM's weight blocks).
void ck_convert_bf16(const uint16_t *src, float *dst, size_t n);
// Exact-form GELU, x/2 (1 + erf(x / sqrt 2)), in place (erfc by a fit with relative error ~1e-6),
// and LayerNorm over t rows of n (biased variance, as torch), on the calling thread.
void ck_gelu(float *x, size_t n);
void ck_layer_norm(const float *x, const float *w, const float *b, float *out, int n, int t, float eps);
// Over t rows of n: x = GELU(x + bias); x += ls * (o + bias) (the encoder's layer-scaled residual).
void ck_bias_gelu(float *x, const float *bias, int n, int t);
void ck_scaled_residual(float *x, const float *o, const float *bias, const float *ls, int n, int t);
// a[i] = silu(a[i]) * b[i] (the language model's MLP gate), silu(g) = g / (1 + exp(-g)).
void ck_silu_mul(float *a, const float *b, size_t n);
// One row's softmax on the calling thread (the test twin compares it with a Double loop).
void ck_softmax_row(float *x, int n);

// Attention of one new query (the decode step) against `total` cached keys and values, heads
// split over the pool's threads: out_h = softmax(scale * q_h K_g^T) V_g, g = h / (heads / kv_heads).
// q: heads x dim; k, v: element d of kv head g at position j at j * pos_stride + g * head_stride + d
// (position-major rows: kv_heads * dim and dim; the KV cache's head-major blocks: dim and
// capacity * dim), float16 when kv_f16 is non-zero, else float32; out: heads x dim.
void ck_pool_attention_decode(ck_pool *p, const float *q, const void *k, const void *v, int kv_f16, float *out,
                              int total, int heads, int kv_heads, int dim, size_t pos_stride, size_t head_stride, float scale);
// The same for t new queries (a short prompt: q and out t rows of heads x dim), position i seeing
// the first past + i + 1 cached keys; the cache is read once per kv head for all of them.
void ck_pool_attention_rows(ck_pool *p, const float *q, const void *k, const void *v, int kv_f16, float *out, int t, int past,
                            int heads, int kv_heads, int dim, size_t pos_stride, size_t head_stride, float scale);

// float32 <-> float16 (round to nearest even), n values, on the calling thread (the KV cache's rows).
void ck_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void ck_f16_to_f32(const uint16_t *src, float *dst, size_t n);

// A streaming read of n bytes with all pool threads (the bandwidth probe): returns a checksum.
// prefetch != 0: the read also prefetches ahead as the decode kernels do (ck_prefetch_ahead).
uint64_t ck_pool_read(ck_pool *p, const uint8_t *buf, size_t n, int prefetch);
#endif
