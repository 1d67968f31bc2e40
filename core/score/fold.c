/*
 * Native kernels of the exact streaming softmax of the local score machines (core/score/native.py).
 *
 * Every query row r keeps a running state over the library columns j seen so far:
 *   m  the maximum logit, arg the column where it was first reached,
 *   s  = sum_j e_j,  t = sum_j e_j (l_j - m),  v_c = sum_j e_j value_c(j),
 *   with e_j = exp(l_j - m), and e_j = 0 where l_j - m < FLOOR.
 * exp(FLOOR) = exp(-80) ~ 2e-35 relative to the maximum's weight 1: dropping such terms changes no
 * float32 sum (the PyTorch path of core/score/streaming.py clamps them to exp(-80) instead, with
 * the same float32 results). Skipping them is what makes low-noise steps cheap: there nearly all
 * logits are far below the maximum, and blocks of 8 columns without any term above the floor cost
 * a compare instead of an exp.
 *
 * mosaic_fold  folds a tile of logits computed elsewhere (a BLAS GEMM for long patch vectors);
 * mosaic_fused computes the logits too (queries x library columns, short patch vectors), so they
 * never leave the cache.
 *
 * Written with GCC/Clang vector extensions (8 floats); -march=native maps them to AVX2 where
 * present. exp is the Cephes single-precision polynomial (about 1 ulp on [FLOOR, 0]).
 */
#include <float.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define CHUNK 512 /* columns per online-softmax chunk (a multiple of 8) */
#define ROWS 4    /* query rows computed together by mosaic_fused */
#define MAX_VALUES 4
#define MAX_DIM 128 /* longest query vector of mosaic_fused */

static inline v8f load8(const float *p) {
    v8f r;
    memcpy(&r, p, sizeof(r));
    return r;
}

static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof(v)); }

static inline v16f load16(const float *p) {
    v16f r;
    memcpy(&r, p, sizeof(r));
    return r;
}

static inline void store16(float *p, v16f v) { memcpy(p, &v, sizeof(v)); }

static inline v8f splat(float x) {
    v8f r = {x, x, x, x, x, x, x, x};
    return r;
}

static inline v8f select8(v8i mask, v8f a, v8f b) { return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask)); }

static inline v8f and8(v8f a, v8i mask) { return (v8f)((v8i)a & mask); }

static inline v8f max8(v8f a, v8f b) {
#if defined(__AVX__)
    return __builtin_ia32_maxps256(a, b);
#else
    return select8(a > b, a, b);
#endif
}

static inline v8f floor8(v8f x) {
#if defined(__AVX__)
    return __builtin_ia32_roundps256(x, 0x9); /* round down, no precision exception */
#else
    v8f t = __builtin_convertvector(__builtin_convertvector(x, v8i), v8f);
    return t - and8(splat(1.0f), t > x);
#endif
}

static inline int any8(v8i mask) {
#if defined(__AVX__)
    return __builtin_ia32_movmskps256((v8f)mask) != 0;
#else
    int32_t lanes[8];
    memcpy(lanes, &mask, sizeof(lanes));
    return (lanes[0] | lanes[1] | lanes[2] | lanes[3] | lanes[4] | lanes[5] | lanes[6] | lanes[7]) != 0;
#endif
}

static inline float sum8(v8f v) {
    float l[8];
    memcpy(l, &v, sizeof(l));
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* exp(x) for x in [-87, 0] on a vector type (N lanes): the Cephes single-precision polynomial. */
#define DEFINE_EXP(name, vf, vi, splat_f, floor_f)                                                              \
    static inline vf name(vf x) {                                                                               \
        vf tf = floor_f(x * splat_f(1.44269504088896341f) + splat_f(0.5f));                                     \
        vi n = __builtin_convertvector(tf, vi);                                                                  \
        vf r = x - tf * splat_f(0.693359375f) - tf * splat_f(-2.12194440e-4f);                                  \
        vf y = splat_f(1.9875691500e-4f);                                                                        \
        y = y * r + splat_f(1.3981999507e-3f);                                                                   \
        y = y * r + splat_f(8.3334519073e-3f);                                                                   \
        y = y * r + splat_f(4.1665795894e-2f);                                                                   \
        y = y * r + splat_f(1.6666665459e-1f);                                                                   \
        y = y * r + splat_f(5.0000001201e-1f);                                                                   \
        y = y * (r * r) + r + splat_f(1.0f);                                                                     \
        vi bits = (n + 127) << 23;                                                                               \
        vf scale;                                                                                                \
        memcpy(&scale, &bits, sizeof(scale));                                                                    \
        return y * scale;                                                                                        \
    }

#if defined(__AVX512F__) && defined(__AVX512VL__)
/* exp(x) = 2^n e^r, n = round(x log2 e), r = x - n ln 2 in two parts (Cody-Waite), |r| <= ln 2 / 2: a degree-6 fit
   of e^r (relative error under 1e-7 in float32 arithmetic) scaled by vscalefps, which also takes n past the
   exponent range (2^n underflows to 0). Fewer operations than the Cephes form: no integer conversion or shift. */
#define ROUND_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define DEFINE_SCALEF_EXP(name, vf, splat_f, mvec, roundscale, scalef)                                        \
    static inline vf name(vf x) {                                                                               \
        vf n = (vf)roundscale((mvec)(x * splat_f(1.44269504088896341f)), ROUND_NEAREST);                         \
        vf r = x - n * splat_f(0.693359375f) - n * splat_f(-2.12194440e-4f);                                    \
        vf y = splat_f(1.383684459142387e-3f);                                                                   \
        y = y * r + splat_f(8.374815806746483e-3f);                                                              \
        y = y * r + splat_f(4.166822507977486e-2f);                                                              \
        y = y * r + splat_f(1.6666419804096222e-1f);                                                             \
        y = y * r + splat_f(4.9999991059303284e-1f);                                                             \
        y = y * r + splat_f(1.0f);                                                                               \
        y = y * r + splat_f(1.0f);                                                                               \
        return (vf)scalef((mvec)y, (mvec)n);                                                                     \
    }
DEFINE_SCALEF_EXP(exp8, v8f, splat, __m256, _mm256_roundscale_ps, _mm256_scalef_ps)
#else
DEFINE_EXP(exp8, v8f, v8i, splat, floor8)
#endif

static inline float exp1(float x) {
    float lanes[8];
    store8(lanes, exp8(splat(x < -87.0f ? -87.0f : x)));
    return lanes[0];
}

typedef struct {
    float *m, *s, *t, *v;
    int64_t *arg;
} RowState;

/*
 * Fold columns [col0, col0 + n) of one row: l holds their logits, padded with -FLT_MAX up to a
 * multiple of 8 (the buffer is at least that long). values + c * value_stride + col0 are the
 * value channels of these columns.
 */
static inline __attribute__((always_inline)) void fold_chunk_body(const float *l, int64_t n, int64_t col0,
                                                                 const float *values, int64_t value_dim,
                                                                 int64_t value_stride, RowState st,
                                                                 float floor_value) {
    int64_t blocks = (n + 7) / 8;
    v8f vmax = load8(l);
    for (int64_t b = 1; b < blocks; b++) {
        v8f x = load8(l + 8 * b);
        vmax = select8(x > vmax, x, vmax);
    }
    float lanes[8];
    store8(lanes, vmax);
    float chunk_max = lanes[0];
    for (int k = 1; k < 8; k++) chunk_max = lanes[k] > chunk_max ? lanes[k] : chunk_max;
    if (chunk_max > *st.m) {
        for (int64_t j = 0; j < n; j++) {
            if (l[j] == chunk_max) {
                *st.arg = col0 + j;
                break;
            }
        }
        if (*st.s > 0.0f) {
            float shift = *st.m - chunk_max; /* < 0 */
            float scale = shift < floor_value ? 0.0f : exp1(shift);
            *st.t = scale * (*st.t + shift * *st.s);
            *st.s *= scale;
            for (int64_t c = 0; c < value_dim; c++) st.v[c] *= scale;
        }
        *st.m = chunk_max;
    }
    const v8f m = splat(*st.m), fl = splat(floor_value), zero = splat(0.0f);
    v8f s_acc = zero, t_acc = zero;
    v8f v_acc[MAX_VALUES] = {zero, zero, zero, zero};
    float e_buf[CHUNK];
    int64_t active[CHUNK / 8];
    int64_t n_active = 0;
    int64_t full = n / 8;
    float tail_values[MAX_VALUES][8];
    if (n % 8 && value_dim <= MAX_VALUES) {
        for (int64_t c = 0; c < value_dim; c++) {
            memset(tail_values[c], 0, sizeof(tail_values[c]));
            memcpy(tail_values[c], values + c * value_stride + col0 + 8 * full, (size_t)(n % 8) * sizeof(float));
        }
    }
    for (int64_t b = 0; b < blocks; b++) {
        v8f x = load8(l + 8 * b) - m;
        v8i keep = x >= fl;
        if (!any8(keep)) continue;
        v8f e = and8(exp8(max8(x, fl)), keep);
        s_acc += e;
        t_acc += e * max8(x, fl);
        if (value_dim <= MAX_VALUES) {
            for (int64_t c = 0; c < value_dim; c++) {
                v8f val = b < full ? load8(values + c * value_stride + col0 + 8 * b) : load8(tail_values[c]);
                v_acc[c] += e * val;
            }
        } else {
            store8(e_buf + 8 * n_active, e);
            active[n_active++] = b;
        }
    }
    *st.s += sum8(s_acc);
    *st.t += sum8(t_acc);
    if (value_dim <= MAX_VALUES) {
        for (int64_t c = 0; c < value_dim; c++) st.v[c] += sum8(v_acc[c]);
        return;
    }
    /* Many value channels (the ideal score's whole images): a dot product per channel over the
     * blocks that had terms above the floor. */
    for (int64_t c = 0; c < value_dim; c++) {
        const float *vals = values + c * value_stride + col0;
        float acc = 0.0f;
        for (int64_t a = 0; a < n_active; a++) {
            int64_t j = 8 * active[a];
            int64_t stop = n - j < 8 ? n - j : 8;
            for (int64_t k = 0; k < stop; k++) acc += e_buf[8 * a + k] * vals[j + k];
        }
        st.v[c] += acc;
    }
}

/* fold_chunk_body with the common channel counts as constants, so that their loops unroll. */
static void fold_chunk(const float *l, int64_t n, int64_t col0, const float *values, int64_t value_dim,
                       int64_t value_stride, RowState st, float floor_value) {
    switch (value_dim) {
    case 1:
        fold_chunk_body(l, n, col0, values, 1, value_stride, st, floor_value);
        break;
    case 3:
        fold_chunk_body(l, n, col0, values, 3, value_stride, st, floor_value);
        break;
    default:
        fold_chunk_body(l, n, col0, values, value_dim, value_stride, st, floor_value);
    }
}

static RowState row_state(float *m, float *s, float *t, float *v, int64_t *arg, int64_t i, int64_t value_dim) {
    RowState st = {m + i, s + i, t + i, v + i * value_dim, arg + i};
    return st;
}

/*
 * Fold a tile of logits (G, R, K), contiguous, into the row states.
 * values: (G, V, K) with strides (group_stride, channel_stride, 1).
 * m, s, t: (G, R); v: (G, R, V); arg: (G, R), set to the column of a new maximum (else unchanged:
 * callers pre-fill it with -1).
 */
void mosaic_fold(const float *logits, const float *values, int64_t groups, int64_t rows, int64_t cols,
                 int64_t value_dim, int64_t group_stride, int64_t channel_stride, float *m, float *s, float *t,
                 float *v, int64_t *arg, float floor_value, int threads) {
    int64_t total = groups * rows;
#pragma omp parallel for schedule(static) num_threads(threads) if (total > 1 && threads > 1)
    for (int64_t i = 0; i < total; i++) {
        const float *row = logits + i * cols;
        const float *vals = values + (i / rows) * group_stride;
        RowState st = row_state(m, s, t, v, arg, i, value_dim);
        float buf[CHUNK];
        for (int64_t j0 = 0; j0 < cols; j0 += CHUNK) {
            int64_t n = cols - j0 < CHUNK ? cols - j0 : CHUNK;
            const float *l = row + j0;
            if (n % 8) {
                memcpy(buf, l, (size_t)n * sizeof(float));
                for (int64_t k = n; k < (n + 7) / 8 * 8; k++) buf[k] = -FLT_MAX;
                l = buf;
            }
            fold_chunk(l, n, j0, vals, value_dim, channel_stride, st, floor_value);
        }
    }
}

/*
 * Logits of 4 query rows (row r at q + r * q_stride) against one block of 16 library columns
 * (pb: (dim, 16)), written to out + r * out_stride + [0, 16). Register tile: 8 accumulators.
 */
static inline void tile_logits(const float *q, int64_t q_stride, const float *pb, int64_t dim, float *out,
                               int64_t out_stride) {
    v8f a00 = splat(0.0f), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int64_t k = 0; k < dim; k++) {
        v8f x0 = load8(pb + 16 * k), x1 = load8(pb + 16 * k + 8);
        v8f q0 = splat(q[k]), q1 = splat(q[q_stride + k]);
        v8f q2 = splat(q[2 * q_stride + k]), q3 = splat(q[3 * q_stride + k]);
        a00 += q0 * x0;
        a01 += q0 * x1;
        a10 += q1 * x0;
        a11 += q1 * x1;
        a20 += q2 * x0;
        a21 += q2 * x1;
        a30 += q3 * x0;
        a31 += q3 * x1;
    }
    store8(out, a00);
    store8(out + 8, a01);
    store8(out + out_stride, a10);
    store8(out + out_stride + 8, a11);
    store8(out + 2 * out_stride, a20);
    store8(out + 2 * out_stride + 8, a21);
    store8(out + 3 * out_stride, a30);
    store8(out + 3 * out_stride + 8, a31);
}

#if defined(__AVX512F__)
/* With 32 vector registers: 8 query rows x 32 columns (two panel blocks pb0, pb1), 16 accumulators
   of 16 floats; 2 panel loads and 8 broadcasts feed 16 FMAs per k. */
#define FROWS 8
#define FBLOCKS 2
/* The tile's dot products, left in the accumulators a (mosaic_knn compares them where they are). */
static inline __attribute__((always_inline)) void tile_dots_wide(const float *q, int64_t q_stride, const float *pb0,
                                                                 const float *pb1, int64_t dim, v16f a[FROWS][2]) {
    for (int r = 0; r < FROWS; r++) a[r][0] = a[r][1] = (v16f){0};
    for (int64_t k = 0; k < dim; k++) {
        v16f x0 = load16(pb0 + 16 * k), x1 = load16(pb1 + 16 * k);
        for (int r = 0; r < FROWS; r++) {
            float qv = q[r * q_stride + k];
            v16f qb = {qv, qv, qv, qv, qv, qv, qv, qv, qv, qv, qv, qv, qv, qv, qv, qv};
            a[r][0] += qb * x0;
            a[r][1] += qb * x1;
        }
    }
}

static inline void tile_logits_wide(const float *q, int64_t q_stride, const float *pb0, const float *pb1,
                                    int64_t dim, float *out, int64_t out_stride) {
    v16f a[FROWS][2];
    tile_dots_wide(q, q_stride, pb0, pb1, dim, a);
    for (int r = 0; r < FROWS; r++) {
        store16(out + r * out_stride, a[r][0]);
        store16(out + r * out_stride + 16, a[r][1]);
    }
}
#else
#define FROWS ROWS
#define FBLOCKS 1
#endif

/* Query rows of the register tile of mosaic_fused (8: the wide AVX-512 tile; 4 otherwise). */
int mosaic_fused_rows(void) { return FROWS; }

/*
 * Logits computed here: l(r, j) = sum_k q[r, k] * lib[k, j] for short vectors (dim <= MAX_DIM).
 * queries: (G, R, D) with strides (q_group_stride, D, 1).
 * panel: the library columns in blocks of 16, (G, ceil(K / 16), D, 16) with group stride
 * p_group_stride and the other strides contiguous; columns past K are ignored.
 * values, state and arg as in mosaic_fold.
 * Register tile: FROWS query rows x 16 * FBLOCKS columns (with AVX-512 8 x 32, else 4 x 16).
 */
void mosaic_fused(const float *queries, const float *panel, const float *values, int64_t groups, int64_t rows,
                  int64_t cols, int64_t dim, int64_t q_group_stride, int64_t p_group_stride, int64_t value_dim,
                  int64_t group_stride, int64_t channel_stride, float *m, float *s, float *t, float *v, int64_t *arg,
                  float floor_value, int threads) {
    int64_t row_blocks = (rows + FROWS - 1) / FROWS;
    int64_t total = groups * row_blocks;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (total > 1 && threads > 1)
    for (int64_t i = 0; i < total; i++) {
        int64_t g = i / row_blocks;
        int64_t r0 = (i % row_blocks) * FROWS;
        int64_t nr = rows - r0 < FROWS ? rows - r0 : FROWS;
        float q[FROWS * MAX_DIM] = {0};
        for (int64_t r = 0; r < nr; r++) {
            memcpy(q + r * MAX_DIM, queries + g * q_group_stride + (r0 + r) * dim, (size_t)dim * sizeof(float));
        }
        const float *pg = panel + g * p_group_stride;
        const float *vals = values + g * group_stride;
        float buf[FROWS][CHUNK];
        for (int64_t j0 = 0; j0 < cols; j0 += CHUNK) {
            int64_t n = cols - j0 < CHUNK ? cols - j0 : CHUNK;
            int64_t blocks = (n + 15) / 16;
            for (int64_t b = 0; b < blocks; b += FBLOCKS) {
                const float *pb = pg + (j0 / 16 + b) * dim * 16;
#if FBLOCKS == 2
                /* an odd last block is paired with itself (CHUNK is a multiple of 32: no overflow) */
                tile_logits_wide(q, MAX_DIM, pb, b + 1 < blocks ? pb + dim * 16 : pb, dim, &buf[0][16 * b], CHUNK);
#else
                tile_logits(q, MAX_DIM, pb, dim, &buf[0][16 * b], CHUNK);
#endif
            }
            for (int r = 0; r < nr; r++) {
                for (int64_t j = n; j < (n + 7) / 8 * 8; j++) buf[r][j] = -FLT_MAX;
                RowState st = row_state(m, s, t, v, arg, g * rows + r0 + r, value_dim);
                fold_chunk(buf[r], n, j0, vals, value_dim, channel_stride, st, floor_value);
            }
        }
    }
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define HAVE_SHUFFLE 1
/* Transpose the 8x8 block r[0..7] (row i, lane j) in place. */
static inline void transpose8(v8f r[8]) {
    v8f t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}
#endif

/*
 * Copy 16 library columns into the (dim, 16) layout of tile_logits: column lane is the ph x pw
 * window of image[lane] with top-left corner (y[lane], x[lane]) in origin (images of C x hp x wp
 * floats, rows of wp), then its squared norm (dim = C * ph * pw + 1). Padding columns (image < 0) repeat a real column: their
 * logits are never folded. With vector shuffles the patches are first copied lane by lane, 8 floats
 * at a time, into tmp (16 rows of `pitch` >= dim - 1 + 8 floats; the copies read up to 7 floats
 * past a patch row, so padded must be followed by 8 readable floats), then transposed 8x8.
 */
static void gather_block(const float *origin, int64_t channels, int64_t hp, int64_t wp, int64_t ph, int64_t pw,
                         const int64_t *image, const int64_t *y, const int64_t *x, float *out, float *tmp,
                         int64_t pitch) {
    const float *src[16];
    int64_t first = 0;
    for (int lane = 0; lane < 16; lane++) {
        if (image[lane] >= 0) {
            first = lane;
            break;
        }
    }
    for (int lane = 0; lane < 16; lane++) {
        int64_t l = image[lane] < 0 ? first : lane;
        src[lane] = origin + (image[l] * channels * hp + y[l]) * wp + x[l];
    }
    int64_t dim = channels * ph * pw;
#ifdef HAVE_SHUFFLE
    for (int lane = 0; lane < 16; lane++) {
        float *row_out = tmp + lane * pitch;
        for (int64_t c = 0; c < channels; c++) {
            for (int64_t dy = 0; dy < ph; dy++, row_out += pw) {
                const float *row_in = src[lane] + (c * hp + dy) * wp;
                for (int64_t dx = 0; dx < pw; dx += 8) store8(row_out + dx, load8(row_in + dx));
            }
        }
    }
    for (int64_t k0 = 0; k0 < dim; k0 += 8) {
        int64_t n = dim - k0 < 8 ? dim - k0 : 8;
        for (int half = 0; half < 2; half++) {
            v8f r[8];
            for (int i = 0; i < 8; i++) r[i] = load8(tmp + (8 * half + i) * pitch + k0);
            transpose8(r);
            for (int64_t j = 0; j < n; j++) store8(out + (k0 + j) * 16 + 8 * half, r[j]);
        }
    }
#else
    int64_t k = 0;
    (void)tmp;
    (void)pitch;
    for (int64_t c = 0; c < channels; c++) {
        for (int64_t dy = 0; dy < ph; dy++) {
            int64_t row = (c * hp + dy) * wp;
            for (int64_t dx = 0; dx < pw; dx++, k++) {
                float *o = out + k * 16;
                for (int lane = 0; lane < 16; lane++) o[lane] = src[lane][row + dx];
            }
        }
    }
#endif
    v8f n0 = splat(0.0f), n1 = n0;
    for (int64_t j = 0; j < dim; j++) {
        v8f a = load8(out + 16 * j), b = load8(out + 16 * j + 8);
        n0 += a * a;
        n1 += b * b;
    }
    store8(out + dim * 16, n0);
    store8(out + dim * 16 + 8, n1);
}

/*
 * Inverted-file softmax (core/score/ivf.py): every query row folds only the library columns of the
 * lists it probes. Columns are sorted by list, every list starting on a multiple of 16; column j is
 * the patch of image[j] at top-left (y[j], x[j]) of padded (N, C, hp, wp) (image < 0: padding).
 * List l holds list_cols[l] columns from column 16 * list_block[l]; its patches are compared on the
 * window list_window[4l .. 4l + 4) = (y0, rows, x0, cols) of the patch only (the rest is zero
 * padding for all of them), d_l = C * rows * cols + 1 values. The query rows probing it are
 * pair_rows[pair_start[l] .. pair_start[l + 1]). Queries (R, dim) hold, in their first d_l values,
 * [2ac q, -a^2 c] on that window, so that a logit is the dot product with [phi, |phi|^2]. Lists are visited one after another: each block of
 * 16 library columns is copied once into cache and used by every query of its list. values
 * (V, columns) channel-major; arg receives the column of a row's new maximum. Single-threaded.
 * scratch: at least (max rows of a list rounded up to 4) * (dim + CHUNK) + dim * 16 + 16 * pitch floats
 * (pitch: dim + 7 rounded up to 8); padded must be followed by 8 readable floats (see gather_block).
 */
void mosaic_ivf(const float *queries, int64_t dim, const float *padded, int64_t channels, int64_t hp, int64_t wp,
                const int64_t *image, const int64_t *y, const int64_t *x, const int64_t *list_block,
                const int64_t *list_cols, const int64_t *list_window, int64_t lists, const int64_t *pair_start, const int64_t *pair_rows,
                const float *values, int64_t value_dim, int64_t channel_stride, float *m, float *s, float *t,
                float *v, int64_t *arg, float floor_value, float *scratch) {
    for (int64_t l = 0; l < lists; l++) {
        int64_t rows = pair_start[l + 1] - pair_start[l];
        if (rows == 0) continue;
        const int64_t *who = pair_rows + pair_start[l];
        int64_t padded_rows = (rows + ROWS - 1) / ROWS * ROWS;
        const int64_t *win = list_window + 4 * l;
        const float *origin = padded + win[0] * wp + win[2];
        int64_t d = channels * win[1] * win[3] + 1;
        float *q = scratch;
        float *logits = q + padded_rows * d;
        float *block = logits + padded_rows * CHUNK;
        float *tmp = block + d * 16;
        int64_t pitch = (d + 7 + 7) / 8 * 8;
        for (int64_t r = 0; r < padded_rows; r++) {
            if (r < rows) memcpy(q + r * d, queries + who[r] * dim, (size_t)d * sizeof(float));
            else memset(q + r * d, 0, (size_t)d * sizeof(float));
        }
        int64_t first = list_block[l] * 16, cols = list_cols[l];
        for (int64_t j0 = 0; j0 < cols; j0 += CHUNK) {
            int64_t n = cols - j0 < CHUNK ? cols - j0 : CHUNK;
            for (int64_t b = 0; b < (n + 15) / 16; b++) {
                int64_t c0 = first + j0 + 16 * b;
                gather_block(origin, channels, hp, wp, win[1], win[3], image + c0, y + c0, x + c0, block, tmp,
                             pitch);
                for (int64_t r0 = 0; r0 < padded_rows; r0 += ROWS) {
                    tile_logits(q + r0 * d, d, block, d, logits + r0 * CHUNK + 16 * b, CHUNK);
                }
            }
            for (int64_t r = 0; r < rows; r++) {
                float *row = logits + r * CHUNK;
                for (int64_t j = n; j < (n + 7) / 8 * 8; j++) row[j] = -FLT_MAX;
                RowState st = row_state(m, s, t, v, arg, who[r], value_dim);
                fold_chunk(row, n, first + j0, values, value_dim, channel_stride, st, floor_value);
            }
        }
    }
}

/* Put value (column col) into a row's ascending list of its k best (filled of them so far). */
static inline void knn_insert(float *kept, int64_t *best, int64_t *filled, int64_t k, float value, int64_t col) {
    int64_t at = *filled < k ? (*filled)++ : k - 1;
    while (at > 0 && value < kept[at - 1]) {
        kept[at] = kept[at - 1];
        best[at] = best[at - 1];
        at--;
    }
    kept[at] = value;
    best[at] = col;
}

/*
 * The k smallest of every row of distance (rows, cols), ascending, into out (rows, k) as column
 * indices; equal distances keep the lower column first. 1 <= k <= cols, k small (the list lives on
 * the stack; native.py calls it for k <= 64). Single-threaded: an insertion into a sorted list of
 * k, which most columns skip after one compare.
 */
void mosaic_nearest(const float *distance, int64_t rows, int64_t cols, int64_t k, int64_t *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *d = distance + r * cols;
        float kept[k];
        int64_t n = 0;
        for (int64_t j = 0; j < cols; j++)
            if (n < k || d[j] < kept[k - 1]) knn_insert(kept, out + r * k, &n, k, d[j], j);
    }
}

/*
 * mosaic_knn: the k nearest library vectors of every query by squared L2 distance, exhaustive, without
 * the (queries x library) distance matrix ever leaving the cache (the analyzer's exact search).
 * queries (rows, dim) contiguous; panel: the library as blocks of 16 columns, (ceil(cols / 16), dim, 16)
 * (core/score/native.py: panel); norms (cols,): squared norms of the library vectors. For each query
 * the k smallest of norms[j] - 2 <q, lib_j> are kept, ascending (equal ones: lower column first), and
 * written with |q|^2 added and clamped at 0 into out_dist / out_index (rows, k); 1 <= k <= KNN_MAX_K,
 * k <= cols. Query rows are tiled as in mosaic_fused (with AVX-512 the tile's 8 x 32 dot products go
 * straight to the compare, never to memory); columns none of which beats a row's current k-th best cost
 * one compare.
 */
#define KNN_MAX_K 64
int mosaic_knn_max_k(void) { return KNN_MAX_K; }

void mosaic_knn(const float *queries, int64_t rows, int64_t dim, const float *panel, const float *norms,
                int64_t cols, int64_t k, float *out_dist, int64_t *out_index, int threads) {
    int64_t row_blocks = (rows + FROWS - 1) / FROWS;
#pragma omp parallel for schedule(dynamic, 2) num_threads(threads) if (row_blocks > 1 && threads > 1)
    for (int64_t i = 0; i < row_blocks; i++) {
        int64_t r0 = i * FROWS;
        int64_t nr = rows - r0 < FROWS ? rows - r0 : FROWS;
        float q[FROWS * MAX_DIM] = {0};
        for (int64_t r = 0; r < nr; r++) memcpy(q + r * MAX_DIM, queries + (r0 + r) * dim, (size_t)dim * sizeof(float));
        float kept[FROWS][KNN_MAX_K];
        int64_t best[FROWS][KNN_MAX_K];
        int64_t filled[FROWS] = {0};
        for (int r = 0; r < FROWS; r++)
            for (int64_t j = 0; j < k; j++) kept[r][j] = FLT_MAX;
#if FBLOCKS == 2
        /* the wide tile's 8 x 32 dot products go straight to the compare, never to memory */
        for (int64_t j0 = 0; j0 < cols; j0 += 32) {
            const float *pb0 = panel + (j0 / 16) * dim * 16;
            const float *pb1 = j0 + 16 < cols ? pb0 + dim * 16 : pb0; /* an odd last block: masked below */
            v16f a[FROWS][2];
            tile_dots_wide(q, MAX_DIM, pb0, pb1, dim, a);
            float tail[32];
            const float *nb = norms + j0;
            if (j0 + 32 > cols) { /* columns past the end never beat anything */
                for (int64_t l = 0; l < 32; l++) tail[l] = j0 + l < cols ? norms[j0 + l] : FLT_MAX;
                nb = tail;
            }
            v16f n0 = load16(nb), n1 = load16(nb + 16);
            for (int r = 0; r < nr; r++) {
                v16f d0 = n0 - 2.0f * a[r][0], d1 = n1 - 2.0f * a[r][1];
                __m512 limit = _mm512_set1_ps(kept[r][k - 1]);
                __mmask16 m0 = _mm512_cmp_ps_mask((__m512)d0, limit, _CMP_LT_OQ);
                __mmask16 m1 = _mm512_cmp_ps_mask((__m512)d1, limit, _CMP_LT_OQ);
                if (!(m0 | m1)) continue;
                float lane[32];
                store16(lane, d0);
                store16(lane + 16, d1);
                for (int l = 0; l < 32; l++)
                    if (lane[l] < kept[r][k - 1]) knn_insert(kept[r], best[r], &filled[r], k, lane[l], j0 + l);
            }
        }
#else
        float buf[FROWS][CHUNK];
        for (int64_t j0 = 0; j0 < cols; j0 += CHUNK) {
            int64_t n = cols - j0 < CHUNK ? cols - j0 : CHUNK;
            int64_t blocks = (n + 15) / 16;
            for (int64_t b = 0; b < blocks; b++) tile_logits(q, MAX_DIM, panel + (j0 / 16 + b) * dim * 16, dim,
                                                             &buf[0][16 * b], CHUNK);
            int64_t n8 = (n + 7) / 8 * 8;
            for (int r = 0; r < nr; r++) {
                float *row = buf[r];
                for (int64_t j = 0; j < n8; j += 8) {
                    v8f d;
                    if (j + 8 <= n) {
                        d = load8(norms + j0 + j) - 2.0f * load8(row + j);
                    } else {
                        for (int64_t l = 0; l < 8; l++) d[l] = j + l < n ? norms[j0 + j + l] - 2.0f * row[j + l] : FLT_MAX;
                    }
                    if (!any8((v8i)(d < splat(kept[r][k - 1])))) continue;
                    for (int l = 0; l < 8; l++)
                        if (d[l] < kept[r][k - 1]) knn_insert(kept[r], best[r], &filled[r], k, d[l], j0 + j + l);
                }
            }
        }
#endif
        for (int64_t r = 0; r < nr; r++) {
            const float *qr = queries + (r0 + r) * dim;
            float qq = 0.0f;
            for (int64_t d = 0; d < dim; d++) qq += qr[d] * qr[d];
            for (int64_t j = 0; j < k; j++) {
                float value = j < filled[r] ? kept[r][j] + qq : FLT_MAX;
                out_dist[(r0 + r) * k + j] = value > 0.0f ? value : 0.0f;
                out_index[(r0 + r) * k + j] = j < filled[r] ? best[r][j] : -1;
            }
        }
    }
}

/*
 * mosaic_offsets: exact logits of the local machines by per-offset box sums (core/score/offsets.py).
 *
 * For a fixed offset d between a query pixel p and a library position q = p + d, the patch inner
 * product <Omega_p(x), Omega_q(phi)> is the sum, over the P x P window at p, of the product image
 * Z(y) = sum_c x(c, y) phi(c, y + d). Box sums of Z give it for every p of a rectangle at once, so
 * one (pixel, library position) pair costs O(C) whatever the patch size (as in fast non-local
 * means). Descriptors that share their rows are processed together, their product rows side by
 * side (offsets_run). Vertical window sums are float32 running sums (add the row entering, subtract
 * the row leaving) summed afresh every 16 or 32 rows; horizontal ones add P column sums directly,
 * or for larger P slide 8 columns at a time (row_window_sums). Rounding stays at the level of a
 * float32 dot product of the patch.
 *
 * The logits l = k1 * dot - k2 * sq(q) are folded at once into the per-pixel softmax state, 8
 * neighbouring pixels of a row per vector; blocks of 8 whose logits are all more than -FLOOR below
 * their maxima cost a compare.
 *
 * Layouts (all float32 contiguous unless said):
 *   xq   (B, C, HQ, WQ): queries, padded so that the window of query p starts at (p_y, p_x).
 *   lib  (N, C, HL, WL): library images in window coordinates.
 *   sq   (N, H, W + 8): squared norm of the library patch at every position; cen (N, C, H, W + 8)
 *        centres (8 zero columns of padding on the right).
 *   desc (n_desc, 9) int64: py0, py1, px0, px1 (query rectangle), woy, wox (the library window of
 *        query p starts at p + wo), qoy, qox (q = p + qo), wrap (1: q wraps around the image).
 *   state: m, s, t, arg (B, H, W + 8); v (B, C, H, W + 8) (the last 8 columns: padding).
 *        arg = (id_base + n) * H * W + q_y * W + q_x.
 *   scratch: threads * mosaic_offsets_scratch(H, W, P) floats.
 * With fewer samples than threads, a small image's library images are split between threads, each
 * folding into its own state, merged afterwards in library order (splitting rows instead
 * recomputes the P - 1 rows of product image around every band); a large image's rows are split
 * into bands (its whole state per thread would leave the cache). Each state is only ever touched
 * by one thread, in a fixed order (results do not depend on timing).
 */

typedef struct {
    float *m, *s, *t, *v;
    int64_t *arg;
    int64_t plane; /* H * W: stride between value channels */
} PixelState;

/*
 * Fold the logits k1 * dot - k2 * sqr of the 8 pixels idx0 .. idx0 + 7 (value channels at
 * cen + c * cplane); only
 * the first n lanes are real: the others get no weight and keep their state (which belongs to
 * the same thread: the state rows have 8 columns of padding, and so do cen and sq).
 */
static inline __attribute__((always_inline)) void fold_pixels(const float *dot, const float *sqr, float k1,
                                                               float k2, int64_t n, PixelState st, int64_t idx0,
                                                               const float *cen, int64_t cplane, int64_t channels,
                                                               int64_t id0, float floor_value) {
    static const int32_t lane_ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    v8i lanes;
    memcpy(&lanes, lane_ids, sizeof(lanes));
    v8i real = lanes < (v8i){(int32_t)n, (int32_t)n, (int32_t)n, (int32_t)n,
                             (int32_t)n, (int32_t)n, (int32_t)n, (int32_t)n};
    v8f lv = select8(real, splat(k1) * load8(dot) - splat(k2) * load8(sqr), splat(-FLT_MAX));
    v8f mv = load8(st.m + idx0);
    const v8f fl = splat(floor_value);
    v8f d = lv - mv;
    v8i keep = (d >= fl) & real;
    if (!any8(keep)) return;
    v8i gt = (d > splat(0.0f)) & real;
    if (!any8(gt)) {
        /* the common case: no new maximum, only terms to add */
        v8f zk = and8(max8(d, fl), keep);
        v8f ek = and8(exp8(max8(d, fl)), keep);
        store8(st.s + idx0, load8(st.s + idx0) + ek);
        store8(st.t + idx0, load8(st.t + idx0) + ek * zk);
        for (int64_t c = 0; c < channels; c++) {
            float *vp = st.v + c * st.plane + idx0;
            store8(vp, load8(vp) + ek * load8(cen + c * cplane));
        }
        return;
    }
    v8f z = select8(gt, -d, d);
    v8i live = (z >= fl) & real;
    v8f e = and8(exp8(max8(z, fl)), live);
    v8f one = splat(1.0f);
    v8f a = select8(gt, e, one); /* multiplier of the old sums */
    v8f w = and8(select8(gt, one, e), keep); /* weight of the new term */
    v8f sv = load8(st.s + idx0), tv = load8(st.t + idx0);
    v8f zt = and8(z, live);
    tv = a * tv + zt * select8(gt, a * sv, w);
    sv = a * sv + w;
    store8(st.m + idx0, select8(gt, lv, mv));
    store8(st.s + idx0, sv);
    store8(st.t + idx0, tv);
    for (int64_t c = 0; c < channels; c++) {
        float *vp = st.v + c * st.plane + idx0;
        store8(vp, a * load8(vp) + w * load8(cen + c * cplane));
    }
    if (any8(gt)) {
        int32_t gl[8];
        memcpy(gl, &gt, sizeof(gl));
        for (int k = 0; k < n; k++)
            if (gl[k]) st.arg[idx0 + k] = id0 + k;
    }
}

/*
 * dot[j] = sum_{u < patch} cs[j + u] for j < rs, over a whole row of side-by-side segments (values
 * that cross a segment's end are never used). Small patches add directly; larger ones slide by 8
 * columns at a time, dot[j + 8] = dot[j] + B8[j + patch] - B8[j] with b8 holding the sums of 8
 * neighbouring column sums, restarting from a direct sum every 128 columns (float32 rounding then
 * stays at the level of a float32 dot product of the patch).
 */
static inline __attribute__((always_inline)) void direct_window_sums(const float *cs, int64_t rs, int64_t patch,
                                                                      float *dot) {
    for (int64_t j = 0; j < rs; j += 16) {
        v16f acc = load16(cs + j);
        for (int64_t u = 1; u < patch; u++) acc += load16(cs + j + u);
        store16(dot + j, acc);
    }
}

static void row_window_sums(const float *cs, int64_t rs, int64_t patch, float *b8, float *dot) {
    if (patch <= 8) {
        /* patch sizes as constants: straight-line sums */
        switch (patch) {
        case 1: direct_window_sums(cs, rs, 1, dot); break;
        case 3: direct_window_sums(cs, rs, 3, dot); break;
        case 5: direct_window_sums(cs, rs, 5, dot); break;
        case 7: direct_window_sums(cs, rs, 7, dot); break;
        default: direct_window_sums(cs, rs, patch, dot);
        }
        return;
    }
    for (int64_t j = 0; j < rs; j += 16) store16(b8 + j, load16(cs + j) + load16(cs + j + 1));
    for (int64_t j = 0; j < rs; j += 16) store16(b8 + j, load16(b8 + j) + load16(b8 + j + 2));
    for (int64_t j = 0; j < rs; j += 16) store16(b8 + j, load16(b8 + j) + load16(b8 + j + 4));
    for (int64_t j0 = 0; j0 < rs; j0 += 128) {
        v8f acc = load8(cs + j0);
        for (int64_t u = 1; u < patch; u++) acc += load8(cs + j0 + u);
        store8(dot + j0, acc);
        int64_t stop = j0 + 128 < rs ? j0 + 128 : rs;
        for (int64_t j = j0 + 8; j < stop; j += 8) {
            acc += load8(b8 + j - 8 + patch) - load8(b8 + j - 8);
            store8(dot + j, acc);
        }
    }
}

/* Scratch of one thread: the product rows of a run (at most ZCAP floats, or one descriptor's
   region when that is larger) and five row buffers of LCAP floats. */
#define ZCAP 131072
/* Largest state (m, s, t, v, arg of one image) for which threads split the library rather than
   the rows (measured: the split wins at 32 and 64 px, loses at 96 and 128 px on RGB). */
#ifndef SPLIT_STATE_BYTES
#define SPLIT_STATE_BYTES (256 * 1024)
#endif
#define LCAP 8192

static int64_t region_cap(int64_t height, int64_t width, int64_t patch) {
    int64_t one = (height + patch - 1) * (width + patch - 1 + 32);
    return one > ZCAP ? one : ZCAP;
}

static int64_t row_cap(int64_t width, int64_t patch) {
    int64_t one = width + patch - 1 + 32;
    return one > LCAP ? one : LCAP;
}

int64_t mosaic_offsets_scratch(int64_t height, int64_t width, int64_t patch) {
    return region_cap(height, width, patch) + 6 * (row_cap(width, patch) + 32) + 64;
}

static inline int same_rows(const int64_t *a, const int64_t *b) {
    return a[0] == b[0] && a[1] == b[1] && a[4] == b[4] && a[6] == b[6] && a[8] == b[8];
}

/*
 * Descriptors d[0 .. count) that share their rows (py0, py1, woy, qoy, wrap): their product rows
 * are laid side by side (segment k at off[k], rw_k = nx_k + patch - 1 columns), so the column
 * sums run once over the whole row and no segment is rounded up to a vector. Vectors spill at
 * most 15 floats into the next segment, which is written afterwards.
 */
static void offsets_run(const float *xq, int64_t channels, int64_t hq, int64_t wq, const float *lib, int64_t hl,
                        int64_t wl, const float *sq, const float *cen, int64_t height, int64_t width, int64_t patch,
                        const int64_t *d, int64_t count, int64_t y_lo, int64_t y_hi, float k1, float k2,
                        int64_t id_img, PixelState st, int64_t state_off, float floor_value, float *scratch,
                        int64_t zcap, int64_t lcap) {
    int64_t py0 = d[0] > y_lo ? d[0] : y_lo, py1 = d[1] < y_hi ? d[1] : y_hi;
    if (py0 >= py1) return;
    int64_t woy = d[4], qoy = d[6], wrap = d[8];
    int64_t rh = py1 - py0 + patch - 1;
    int64_t off[LCAP / 8 + 1];
    int64_t total = 0;
    for (int64_t k = 0; k < count; k++) {
        off[k] = total;
        total += d[9 * k + 3] - d[9 * k + 2] + patch - 1;
    }
    int64_t rs = (total + 15) / 16 * 16 + 16; /* row stride: whole vectors and one of spill room */
    float *z = scratch;                       /* (rh, rs) product rows */
    double *cs = (double *)(z + zcap);        /* (lcap) running column sums */
    float *csf = (float *)(cs + lcap + 32);   /* (lcap + 32) column sums as float */
    float *b8 = csf + lcap + 32;              /* (lcap + 32) sums of 8 neighbouring column sums */
    float *dot = b8 + lcap + 32;              /* (lcap + 32) window sums of the row */
    int64_t hw = height * width, ws = width + 8, hws = height * ws; /* state, sq, cen: rows of width + 8 */
    /* the inputs have 16 readable columns past every row (SLACK in offsets.py) */
    for (int64_t i = 0; i < rh; i++) {
        float *zrow = z + i * rs;
        for (int64_t k = 0; k < count; k++) {
            const int64_t *dk = d + 9 * k;
            int64_t rw = dk[3] - dk[2] + patch - 1;
            float *zr = zrow + off[k];
            const float *xr = xq + (py0 + i) * wq + dk[2];
            const float *lr = lib + (py0 + i + woy) * wl + dk[2] + dk[5];
            if (channels == 3) {
                const float *x1 = xr + hq * wq, *x2 = xr + 2 * hq * wq, *l1 = lr + hl * wl, *l2 = lr + 2 * hl * wl;
                for (int64_t j = 0; j < rw; j += 16)
                    store16(zr + j, load16(xr + j) * load16(lr + j) + load16(x1 + j) * load16(l1 + j) +
                                        load16(x2 + j) * load16(l2 + j));
                continue;
            }
            if (channels == 1) {
                for (int64_t j = 0; j < rw; j += 16) store16(zr + j, load16(xr + j) * load16(lr + j));
                continue;
            }
            for (int64_t j = 0; j < rw; j += 16) {
                v16f acc = load16(xr + j) * load16(lr + j);
                for (int64_t c = 1; c < channels; c++) acc += load16(xr + c * hq * wq + j) * load16(lr + c * hl * wl + j);
                store16(zr + j, acc);
            }
        }
    }
    for (int64_t j = rs; j < rs + 32; j++) csf[j] = 0.0f;
    /* float32 running column sums (add the row entering, subtract the row leaving), summed afresh
       every RESTART rows so that their rounding stays at the level of a float32 dot product */
    int64_t restart = patch <= 16 ? 16 : 32;
    for (int64_t y = py0; y < py1; y++) {
        int64_t i = y - py0;
        if (i % restart) {
            const float *in = z + (i + patch - 1) * rs, *out = z + (i - 1) * rs;
            for (int64_t j = 0; j < rs; j += 16) store16(csf + j, load16(csf + j) + (load16(in + j) - load16(out + j)));
        } else {
            const float *zr = z + i * rs;
            for (int64_t j = 0; j < rs; j += 16) {
                v16f acc = load16(zr + j);
                for (int64_t u = 1; u < patch; u++) acc += load16(zr + u * rs + j);
                store16(csf + j, acc);
            }
        }
        row_window_sums(csf, rs, patch, b8, dot);
        int64_t qy = y + qoy;
        if (wrap && qy >= height) qy -= height;
        const float *sqy = sq + qy * ws, *ceny = cen + qy * ws;
        int64_t srow = state_off + y * ws;
        for (int64_t k = 0; k < count; k++) {
            const int64_t *dk = d + 9 * k;
            int64_t px0 = dk[2], px1 = dk[3], qox = dk[7];
            const float *dotk = dot + off[k] - px0; /* dotk[x]: the window sum of query column x */
            /* columns [px0, split) map to q_x = p_x + qox, the rest (wrap only) to p_x + qox - width */
            int64_t split = px1;
            if (wrap && px1 + qox > width) split = width - qox > px0 ? width - qox : px0;
            for (int seg = 0; seg < 2; seg++) {
                int64_t a0 = seg == 0 ? px0 : split, a1 = seg == 0 ? split : px1;
                int64_t shift = seg == 0 ? qox : qox - width;
                for (int64_t xa = a0; xa < a1; xa += 8) {
                    int64_t n = a1 - xa < 8 ? a1 - xa : 8;
                    int64_t qx = xa + shift;
                    fold_pixels(dotk + xa, sqy + qx, k1, k2, n, st, srow + xa, ceny + qx, hws, channels,
                                id_img * hw + qy * width + qx, floor_value);
                }
            }
        }
    }
}

/*
 * Merge the pixel states b (a later part of the library) into a, pixel by pixel over `count`
 * contiguous pixels (value channels `plane` apart): the log-sum-exp merge of the online softmax;
 * a keeps its maximum's column on ties (it saw the earlier library images).
 */
static void merge_states(float *am, float *as, float *at, float *av, int64_t *aarg, const float *bm, const float *bs,
                         const float *bt, const float *bv, const int64_t *barg, int64_t count, int64_t channels,
                         int64_t plane, float floor_value) {
    for (int64_t i = 0; i < count; i++) {
        if (bs[i] == 0.0f && !(bm[i] > am[i])) continue; /* b saw nothing above a's floor */
        float top = bm[i] > am[i] ? bm[i] : am[i];
        float da = am[i] - top, db = bm[i] - top; /* <= 0 */
        float sa = da < floor_value ? 0.0f : exp1(da), sb = db < floor_value ? 0.0f : exp1(db);
        float ta = sa > 0.0f ? sa * (at[i] + da * as[i]) : 0.0f;
        float tb = sb > 0.0f ? sb * (bt[i] + db * bs[i]) : 0.0f;
        at[i] = ta + tb;
        as[i] = sa * as[i] + sb * bs[i];
        for (int64_t c = 0; c < channels; c++) av[c * plane + i] = sa * av[c * plane + i] + sb * bv[c * plane + i];
        if (bm[i] > am[i]) aarg[i] = barg[i];
        am[i] = top;
    }
}

/*
 * The states of a library split between threads: item it = b * parts + part (one band) folds sample b's
 * library images of its part into the state (part 0) or into a private state of its own, merged into the
 * state afterwards in part order, so results do not depend on timing.
 */
typedef struct {
    float *floats;        /* m, s, t, v of each item's private state */
    int64_t *arg;         /* arg of each item's private state */
    int64_t hws, channels, parts;
} LibrarySplit;

/* Room for the private states of items items; NULL pointers (no split) where parts == 1 or memory is short. */
static LibrarySplit split_alloc(int64_t items, int64_t parts, int64_t channels, int64_t hws) {
    LibrarySplit sp = {NULL, NULL, hws, channels, parts};
    if (parts < 2) return sp;
    sp.floats = malloc((size_t)(items * (3 + channels) * hws) * sizeof(float));
    sp.arg = malloc((size_t)(items * hws) * sizeof(int64_t));
    if (sp.floats == NULL || sp.arg == NULL) {
        free(sp.floats);
        free(sp.arg);
        sp.floats = NULL;
        sp.arg = NULL;
    }
    return sp;
}

/* The state item it of sample b and part `part` folds into (*state_off: where sample b's pixels start). */
static PixelState split_state(const LibrarySplit *sp, int64_t it, int64_t b, int64_t part, float *m, float *s,
                              float *t, float *v, int64_t *arg, int64_t *state_off) {
    int64_t hws = sp->hws;
    if (part == 0) {
        PixelState st = {m, s, t, v + b * (sp->channels - 1) * hws, arg, hws};
        *state_off = b * hws;
        return st;
    }
    float *pm = sp->floats + it * (3 + sp->channels) * hws;
    for (int64_t i = 0; i < hws; i++) pm[i] = -FLT_MAX;
    memset(pm + hws, 0, (size_t)((2 + sp->channels) * hws) * sizeof(float));
    memset(sp->arg + it * hws, 0, (size_t)hws * sizeof(int64_t));
    PixelState own = {pm, pm + hws, pm + 2 * hws, pm + 3 * hws, sp->arg + it * hws, hws};
    *state_off = 0;
    return own;
}

/* Merge the private states into the state, in part order, and free them. */
static void split_merge(LibrarySplit *sp, int64_t batch, float *m, float *s, float *t, float *v, int64_t *arg,
                        float floor_value) {
    if (sp->floats == NULL) return;
    int64_t hws = sp->hws, c = sp->channels, parts = sp->parts;
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t part = 1; part < parts; part++) {
            const float *pm = sp->floats + (b * parts + part) * (3 + c) * hws;
            merge_states(m + b * hws, s + b * hws, t + b * hws, v + b * c * hws, arg + b * hws, pm, pm + hws,
                         pm + 2 * hws, pm + 3 * hws, sp->arg + (b * parts + part) * hws, hws, c, hws, floor_value);
        }
    }
    free(sp->floats);
    free(sp->arg);
    sp->floats = NULL;
    sp->arg = NULL;
}

void mosaic_offsets(const float *xq, int64_t batch, int64_t channels, int64_t hq, int64_t wq, const float *lib,
                    int64_t n_lib, int64_t hl, int64_t wl, const float *sq, const float *cen, int64_t height,
                    int64_t width, int64_t patch, const int64_t *desc, int64_t n_desc, float k1, float k2,
                    int64_t id_base, float *m, float *s, float *t, float *v, int64_t *arg, float floor_value,
                    int threads, float *scratch) {
    /* With fewer samples than threads, every sample's library images are split between `parts`
       threads (part 0 folds into the state, the others into private states merged afterwards in
       part order: results do not depend on timing), or its rows into `bands`. */
    int64_t hws = height * (width + 8);
    int64_t share = batch >= threads ? 1 : (threads + batch - 1) / batch; /* threads per sample */
    /* a whole state per thread only while it stays in cache beside the product rows; larger
       images split their rows into bands instead */
    int64_t split_library = hws * (3 + channels + 2) * 4 <= SPLIT_STATE_BYTES; /* m s t v arg */
    int64_t parts = split_library ? share : 1, bands = split_library ? 1 : share;
    if (parts > n_lib) parts = n_lib;
    if (parts < 1) parts = 1;
    if (bands > height) bands = height;
    int64_t items = batch * parts * bands;
    int64_t per = mosaic_offsets_scratch(height, width, patch);
    int64_t zcap = region_cap(height, width, patch), lcap = row_cap(width, patch);
    LibrarySplit sp = split_alloc(items, parts, channels, hws);
    if (parts > 1 && sp.floats == NULL) { /* short of memory: one part per sample */
        parts = 1;
        items = batch * bands;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (items > 1 && threads > 1)
    for (int64_t it = 0; it < items; it++) {
        int64_t b = it / (parts * bands), part = it / bands % parts, band = it % bands;
        int64_t n0 = n_lib * part / parts, n1 = n_lib * (part + 1) / parts;
        int64_t y_lo = height * band / bands, y_hi = height * (band + 1) / bands;
        float *mine = scratch + (int64_t)omp_get_thread_num() * per;
        int64_t state_off;
        PixelState st = split_state(&sp, it, b, part, m, s, t, v, arg, &state_off);
        const float *xb = xq + b * channels * hq * wq;
        for (int64_t n = n0; n < n1; n++) {
            const float *ln = lib + n * channels * hl * wl;
            const float *sqn = sq + n * hws, *cn = cen + n * channels * hws;
            for (int64_t k = 0; k < n_desc;) {
                /* a run of descriptors with the same rows, within the scratch caps */
                const int64_t *first = desc + 9 * k;
                int64_t rh = first[1] - first[0] + patch - 1, total = 0, count = 0;
                while (k + count < n_desc && same_rows(first, desc + 9 * (k + count)) && count < LCAP / 8) {
                    int64_t rw = desc[9 * (k + count) + 3] - desc[9 * (k + count) + 2] + patch - 1;
                    int64_t grown = (total + rw + 15) / 16 * 16 + 16;
                    if (count > 0 && (grown > lcap || grown * rh > zcap)) break;
                    total += rw;
                    count++;
                }
                offsets_run(xb, channels, hq, wq, ln, hl, wl, sqn, cn, height, width, patch, first, count, y_lo, y_hi,
                            k1, k2, id_base + n, st, state_off, floor_value, mine, zcap, lcap);
                k += count;
            }
        }
    }
    split_merge(&sp, batch, m, s, t, v, arg, floor_value);
}

/*
 * mosaic_shared: the pairs of bbels's shared runs on both axes (interior pixel p, interior library position
 * q, any offset: r = P / 2 <= p_y, q_y < H - r and the same on x; P odd), the bulk of a bbels step, folded
 * row by row along the library positions instead of offset by offset.
 *
 * For a query row p_y and a library row q_y, V[a][b] = sum_{v < P} sum_c x_c(p_y + v, r + a) phi_c(q_y + v,
 * r + b) (a, b < W: the window columns) holds every column pair's sum down the windows; the window sum of
 * pixel p_x = r + i against position q_x = r + j is the diagonal sum S = sum_{u < P} V[i + u][j + u]. V
 * moves down a row by the outer products of the rows entering and leaving, in one pass (summed afresh every
 * RESTART_V rows); the diagonal sums D[i][d] = S(i, i + d) move to the next pixel by two loads per 16
 * (summed afresh every RESTART_D pixels). The logits of one pixel against one library row are then
 * contiguous: with the rows of SHARED_GROUP library images side by side, their softmax is taken along the
 * row in vectors of 16 (its maximum, its sums) and merged into the pixel's state, so the state is touched
 * once per row of positions, not once per position. Threads split the library as mosaic_offsets does.
 * Same arguments as mosaic_offsets without the descriptors; the state of pixels outside the shared block is
 * not touched. Scratch: threads * mosaic_shared_scratch(H, W, P) floats (offsets.py mirrors it).
 */
#define SPAD 16      /* zero columns on each side of V's rows */
#define RESTART_D 16 /* pixels between direct diagonal sums (at most SPAD) */
#define RESTART_V 16 /* rows between direct column sums (twice as many for patches over 16: as mosaic_offsets) */
#define SHARED_MAX_CHANNELS 4
#define SHARED_GROUP 4 /* library images folded together */

static inline v16f splat16(float x) {
    v16f r = {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
    return r;
}

static inline v16f and16(v16f a, v16i mask) { return (v16f)((v16i)a & mask); }

static inline v16f max16(v16f a, v16f b) {
#if defined(__AVX512F__)
    return (v16f)_mm512_max_ps((__m512)a, (__m512)b);
#else
    return (v16f)(((v16i)a & (v16i)(a > b)) | ((v16i)b & ~(v16i)(a > b)));
#endif
}

static inline v16f floor16(v16f x) {
#if defined(__AVX512F__)
    return (v16f)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#else
    v16f t = __builtin_convertvector(__builtin_convertvector(x, v16i), v16f);
    return t - and16(splat16(1.0f), t > x);
#endif
}

static inline int any16(v16i mask) {
#if defined(__AVX512F__)
    return _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask) != 0;
#else
    int32_t lanes[16];
    memcpy(lanes, &mask, sizeof(lanes));
    int32_t any = 0;
    for (int i = 0; i < 16; i++) any |= lanes[i];
    return any != 0;
#endif
}

static inline float hmax16(v16f v) {
#if defined(__AVX512F__)
    return _mm512_reduce_max_ps((__m512)v);
#else
    float l[16];
    memcpy(l, &v, sizeof(l));
    float r = l[0];
    for (int i = 1; i < 16; i++) r = l[i] > r ? l[i] : r;
    return r;
#endif
}

static inline float hsum16(v16f v) {
    float l[16];
    memcpy(l, &v, sizeof(l));
    return sum8(load8(l)) + sum8(load8(l + 8));
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
DEFINE_SCALEF_EXP(exp16, v16f, splat16, __m512, _mm512_roundscale_ps, _mm512_scalef_ps)
#else
DEFINE_EXP(exp16, v16f, v16i, splat16, floor16)
#endif

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

/* V's row stride for window rows of a columns: SPAD zero columns before, enough after for the
   diagonal sums' whole vectors */
static int64_t shared_stride(int64_t a) { return round16(SPAD + a + 32); }

int64_t mosaic_shared_scratch(int64_t height, int64_t width, int64_t patch) {
    (void)height;
    int64_t size = width - 2 * (patch / 2), a = size + patch - 1;
    int64_t drow = round16(size + RESTART_D + 16), seg = round16(size) * SHARED_GROUP + 16;
    return SHARED_GROUP * (a * shared_stride(a) + 2 * drow) + (2 + SHARED_MAX_CHANNELS) * seg + 64;
}

/* V = sum_{u < patch} sum_c x_c(row u) phi_c(row u) as outer products over a columns (rows wq, wl apart),
   8 rows of V at a time (independent sums) */
static void outer_direct(float *V, int64_t vs, int64_t a, const float *x, int64_t wq, int64_t xplane, const float *l,
                         int64_t wl, int64_t lplane, int64_t channels, int64_t patch) {
    for (int64_t j = 0; j < a; j += 16) {
        for (int64_t i0 = 0; i0 < a; i0 += 8) {
            v16f acc[8];
            for (int k = 0; k < 8; k++) acc[k] = splat16(0.0f);
            int64_t rows = a - i0 < 8 ? a - i0 : 8;
            for (int64_t u = 0; u < patch; u++)
                for (int64_t c = 0; c < channels; c++) {
                    v16f lv = load16(l + c * lplane + u * wl + j);
                    const float *xr = x + c * xplane + u * wq + i0; /* rows past a read the window's slack */
                    for (int k = 0; k < 8; k++) acc[k] += splat16(xr[k]) * lv;
                }
            for (int64_t k = 0; k < rows; k++) store16(V + (i0 + k) * vs + SPAD + j, acc[k]);
        }
    }
}

/* V += sum_c x_c(in) phi_c(in) - x_c(out) phi_c(out): V moved down a row, in one pass */
static inline __attribute__((always_inline)) void outer_move(float *V, int64_t vs, int64_t a, const float *xin,
                                                              const float *xout, int64_t xplane, const float *lin,
                                                              const float *lout, int64_t lplane, int64_t channels) {
    for (int64_t j = 0; j < a; j += 16) {
        v16f li[SHARED_MAX_CHANNELS], lo[SHARED_MAX_CHANNELS];
        for (int64_t c = 0; c < channels; c++) {
            li[c] = load16(lin + c * lplane + j);
            lo[c] = load16(lout + c * lplane + j);
        }
        for (int64_t i = 0; i < a; i++) {
            float *vp = V + i * vs + SPAD + j;
            v16f acc = load16(vp);
            for (int64_t c = 0; c < channels; c++)
                acc += splat16(xin[c * xplane + i]) * li[c] - splat16(xout[c * xplane + i]) * lo[c];
            store16(vp, acc);
        }
    }
}

/*
 * Fold the logits lb[0 .. n) (n a multiple of 16; lanes without a position far below every logit, top their
 * maximum) of one pixel, with centres cb + c * n, into the pixel's state at idx: their own softmax (maximum,
 * sums), then the log-sum-exp merge of merge_states. ids[k]: the library id of logit k.
 */
static inline __attribute__((always_inline)) void fold_row(const float *lb, int64_t n, float top, const float *cb,
                                                            int64_t channels, PixelState st, int64_t idx,
                                                            int64_t id0, int64_t seg, int64_t id_seg,
                                                            float floor_value) {
    float mp = st.m[idx];
    if (top < mp + floor_value) return; /* nothing above the pixel's floor */
    const v16f fl = splat16(floor_value), topv = splat16(top);
    v16f zero = splat16(0.0f), sv = zero, tv = zero, vv[SHARED_MAX_CHANNELS] = {zero, zero, zero, zero};
    v16f sv2 = zero, tv2 = zero, vv2[SHARED_MAX_CHANNELS] = {zero, zero, zero, zero};
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) { /* two vectors at a time into two sets of sums: the sums' chains are halved */
        v16f z = load16(lb + j) - topv, z2 = load16(lb + j + 16) - topv;
        v16i keep = (v16i)(z >= fl), keep2 = (v16i)(z2 >= fl);
        if (!any16(keep | keep2)) continue;
        v16f zc = max16(z, fl), zc2 = max16(z2, fl);
        v16f e = and16(exp16(zc), keep), e2 = and16(exp16(zc2), keep2);
        sv += e;
        sv2 += e2;
        tv += e * zc;
        tv2 += e2 * zc2;
        for (int64_t c = 0; c < channels; c++) {
            vv[c] += e * load16(cb + c * n + j);
            vv2[c] += e2 * load16(cb + c * n + j + 16);
        }
    }
    for (; j < n; j += 16) {
        v16f z = load16(lb + j) - topv;
        v16i keep = (v16i)(z >= fl);
        if (!any16(keep)) continue;
        v16f zc = max16(z, fl);
        v16f e = and16(exp16(zc), keep);
        sv += e;
        tv += e * zc;
        for (int64_t c = 0; c < channels; c++) vv[c] += e * load16(cb + c * n + j);
    }
    sv += sv2;
    tv += tv2;
    for (int64_t c = 0; c < channels; c++) vv[c] += vv2[c];
    float sr = hsum16(sv), tr = hsum16(tv);
    float *vp = st.v + idx;
    if (top > mp) {
        float da = mp - top, sa = da < floor_value ? 0.0f : exp1(da);
        float sp = st.s[idx];
        st.t[idx] = (sa > 0.0f ? sa * (st.t[idx] + da * sp) : 0.0f) + tr;
        st.s[idx] = sa * sp + sr;
        for (int64_t c = 0; c < channels; c++) vp[c * st.plane] = sa * vp[c * st.plane] + hsum16(vv[c]);
        st.m[idx] = top;
        int64_t first = 0;
        while (lb[first] != top) first++; /* the first maximum, in library order */
        st.arg[idx] = id0 + first / seg * id_seg + first % seg;
    } else {
        float db = top - mp, sb = exp1(db);
        st.t[idx] += sb * (tr + db * sr);
        st.s[idx] += sb * sr;
        for (int64_t c = 0; c < channels; c++) vp[c * st.plane] += sb * hsum16(vv[c]);
    }
}

/* The shared block of library images n .. n + g - 1 (g <= SHARED_GROUP), folded together: one pixel's rows of
   all g images make one row of logits. */
static void shared_group(const float *xb, int64_t channels, int64_t hq, int64_t wq, const float *ln, int64_t g,
                         int64_t hl, int64_t wl, const float *sqn, const float *cn, int64_t height, int64_t width,
                         int64_t patch, float k1, float k2, int64_t id_img, PixelState st, int64_t state_off,
                         float floor_value, float *scratch) {
    int64_t r = patch / 2, sy = height - 2 * r, sx = width - 2 * r, a = sx + patch - 1;
    int64_t vs = shared_stride(a), drow = round16(sx + RESTART_D + 16), sstr = round16(sx), n = g * sstr;
    int64_t ws = width + 8, hws = height * ws, hw = height * width;
    /* per image: V, and two buffers of diagonal sums (the next pixel's written while the current pixel's are
       read: a load that straddles stores still in flight would wait for them) */
    float *Vs = scratch, *Ds = Vs + SHARED_GROUP * a * vs, *lk = Ds + SHARED_GROUP * 2 * drow;
    float *lb = lk + SHARED_GROUP * sstr + 16, *cb = lb + SHARED_GROUP * sstr + 16;
    int64_t xplane = hq * wq, lplane = hl * wl, limage = channels * lplane;
    int64_t restart_v = patch <= 16 ? RESTART_V : 2 * RESTART_V;
    const v16f k1v = splat16(k1);
    for (int64_t dy = -(sy - 1); dy < sy; dy++) {
        int64_t py0 = dy < 0 ? r - dy : r, py1 = dy < 0 ? height - r : height - r - dy;
        for (int64_t py = py0; py < py1; py++) {
            int64_t qy = py + dy;
            for (int64_t k = 0; k < g; k++) {
                /* V for this pair of rows (window rows py .. py + P - 1 and qy .. qy + P - 1) */
                float *V = Vs + k * a * vs;
                const float *lnk = ln + k * limage;
                if ((py - py0) % restart_v == 0) {
                    outer_direct(V, vs, a, xb + py * wq + r, wq, xplane, lnk + qy * wl + r, wl, lplane, channels,
                                 patch);
                } else {
                    const float *xin = xb + (py + patch - 1) * wq + r, *xout = xb + (py - 1) * wq + r;
                    const float *lin = lnk + (qy + patch - 1) * wl + r, *lout = lnk + (qy - 1) * wl + r;
                    if (channels == 1)
                        outer_move(V, vs, a, xin, xout, xplane, lin, lout, lplane, 1);
                    else if (channels == 3)
                        outer_move(V, vs, a, xin, xout, xplane, lin, lout, lplane, 3);
                    else
                        outer_move(V, vs, a, xin, xout, xplane, lin, lout, lplane, channels);
                }
                /* the library row's -k2 |phi_q|^2 (far below every logit past the row's end) and centres */
                const float *sqy = sqn + k * hws + qy * ws + r;
                float *lkk = lk + k * sstr;
                for (int64_t j = 0; j < sx; j++) lkk[j] = -k2 * sqy[j];
                for (int64_t j = sx; j < sstr; j++) lkk[j] = -1e30f;
                for (int64_t c = 0; c < channels; c++) {
                    float *cbc = cb + c * n + k * sstr;
                    memcpy(cbc, cn + (k * channels + c) * hws + qy * ws + r, (size_t)sx * sizeof(float));
                    for (int64_t j = sx; j < sstr; j++) cbc[j] = 0.0f;
                }
            }
            int64_t id0 = id_img * hw + qy * width + r;
            for (int64_t i0 = 0; i0 < sx; i0 += RESTART_D) {
                int64_t dlo = -(i0 + RESTART_D - 1), ne = sx + RESTART_D - 1;
                int64_t flip = 0;
                for (int64_t k = 0; k < g; k++) { /* D[e] = S(i0, i0 + dlo + e) directly */
                    float *V = Vs + k * a * vs, *D = Ds + k * 2 * drow;
                    for (int64_t e = 0; e < ne; e += 16) {
                        v16f acc = splat16(0.0f);
                        for (int64_t u = 0; u < patch; u++) acc += load16(V + (i0 + u) * vs + SPAD + i0 + u + dlo + e);
                        store16(D + e, acc);
                    }
                }
                int64_t i1 = i0 + RESTART_D < sx ? i0 + RESTART_D : sx;
                for (int64_t i = i0; i < i1; i++) {
                    v16f mr = splat16(-1e30f);
                    int64_t shift = i0 + RESTART_D - 1 - i; /* pixel (py, r + i) against (qy, r + j): cur[shift + j] */
                    for (int64_t k = 0; k < g; k++) {
                        const float *V = Vs + k * a * vs;
                        float *cur = Ds + k * 2 * drow + flip * drow, *next = Ds + k * 2 * drow + (1 - flip) * drow;
                        if (i + 1 < i1) { /* the next pixel's diagonal sums */
                            const float *vin = V + (i + patch) * vs + SPAD + i + patch + dlo;
                            const float *vout = V + i * vs + SPAD + i + dlo;
                            for (int64_t e = 0; e < ne; e += 16)
                                store16(next + e, load16(cur + e) + (load16(vin + e) - load16(vout + e)));
                        }
                        const float *Di = cur + shift, *lkk = lk + k * sstr;
                        for (int64_t j = 0; j < sx; j += 16) mr = max16(mr, k1v * load16(Di + j) + load16(lkk + j));
                    }
                    float top = hmax16(mr);
                    int64_t idx = state_off + py * ws + r + i;
                    if (top >= st.m[idx] + floor_value) {
                        /* some logit counts (rare at low noise): write them out and fold them */
                        for (int64_t k = 0; k < g; k++) {
                            const float *Di = Ds + k * 2 * drow + flip * drow + shift, *lkk = lk + k * sstr;
                            float *lbk = lb + k * sstr;
                            for (int64_t j = 0; j < sx; j += 16) store16(lbk + j, k1v * load16(Di + j) + load16(lkk + j));
                        }
                        if (channels == 1)
                            fold_row(lb, n, top, cb, 1, st, idx, id0, sstr, hw, floor_value);
                        else if (channels == 3)
                            fold_row(lb, n, top, cb, 3, st, idx, id0, sstr, hw, floor_value);
                        else
                            fold_row(lb, n, top, cb, channels, st, idx, id0, sstr, hw, floor_value);
                    }
                    flip = 1 - flip;
                }
            }
        }
    }
}

void mosaic_shared(const float *xq, int64_t batch, int64_t channels, int64_t hq, int64_t wq, const float *lib,
                   int64_t n_lib, int64_t hl, int64_t wl, const float *sq, const float *cen, int64_t height,
                   int64_t width, int64_t patch, float k1, float k2, int64_t id_base, float *m, float *s, float *t,
                   float *v, int64_t *arg, float floor_value, int threads, float *scratch) {
    int64_t hws = height * (width + 8);
    int64_t share = batch >= threads ? 1 : (threads + batch - 1) / batch;
    int64_t parts = share < n_lib ? share : n_lib;
    if (parts < 1) parts = 1;
    int64_t items = batch * parts;
    int64_t per = mosaic_shared_scratch(height, width, patch);
    LibrarySplit sp = split_alloc(items, parts, channels, hws);
    if (parts > 1 && sp.floats == NULL) { /* short of memory: one part per sample */
        parts = 1;
        items = batch;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (items > 1 && threads > 1)
    for (int64_t it = 0; it < items; it++) {
        int64_t b = it / parts, part = it % parts;
        int64_t n0 = n_lib * part / parts, n1 = n_lib * (part + 1) / parts;
        float *mine = scratch + (int64_t)omp_get_thread_num() * per;
        memset(mine, 0, (size_t)per * sizeof(float)); /* V's zero columns, finite D past its entries */
        int64_t state_off;
        PixelState st = split_state(&sp, it, b, part, m, s, t, v, arg, &state_off);
        const float *xb = xq + b * channels * hq * wq;
        for (int64_t n = n0; n < n1; n += SHARED_GROUP) {
            int64_t g = n1 - n < SHARED_GROUP ? n1 - n : SHARED_GROUP;
            shared_group(xb, channels, hq, wq, lib + n * channels * hl * wl, g, hl, wl, sq + n * hws,
                         cen + n * channels * hws, height, width, patch, k1, k2, id_base + n, st, state_off,
                         floor_value, mine);
        }
    }
    split_merge(&sp, batch, m, s, t, v, arg, floor_value);
}

/*
 * mosaic_library_chunk: what the offsets and shared kernels read of library images lib (n, C, H, W), in one pass
 * per image (it replaced three PyTorch passes and their float64 temporaries; offsets.py keeps them as the fallback):
 *   win (n, C, hl, wl): the images in window coordinates: zero-padded by P // 2 (hl = H + P - 1), or for els
 *     (circular) tiled so that row i is image row (i - P / 2) mod H (hl = 2H + P - 1), and likewise the columns
 *     up to 2W + P - 1 (W + P - 1), zeros after;
 *   norms (n, H, W + 8): the sum over the P x P window centred at every position of sum_c phi_c^2 (zero outside
 *     the image, or circular), running sums in float64; zeros in the 8 columns after;
 *   centres (n, C, H, W + 8): the images, zeros in the 8 columns after.
 * scratch: threads * (H * W + W) doubles.
 */
static inline int64_t wrap(int64_t i, int64_t n) {
    i %= n;
    return i < 0 ? i + n : i;
}

/* square sums of row yy (circular or zero outside) */
static inline const double *norm_row(const double *sq, int64_t yy, int64_t h, int64_t w, int circular) {
    (void)w;
    if (circular) return sq + wrap(yy, h) * w;
    return yy >= 0 && yy < h ? sq + yy * w : NULL;
}

void mosaic_library_chunk(const float *lib, int64_t n, int64_t channels, int64_t h, int64_t w, int64_t patch,
                          int circular, float *win, int64_t hl, int64_t wl, float *norms, float *centres,
                          int threads, double *scratch) {
    int64_t r = patch / 2, ws = w + 8, plane = h * w;
#pragma omp parallel for schedule(static) num_threads(threads) if (n > 1 && threads > 1)
    for (int64_t i = 0; i < n; i++) {
        double *sq = scratch + (int64_t)omp_get_thread_num() * (plane + w), *col = sq + plane;
        const float *img = lib + i * channels * plane;
        for (int64_t c = 0; c < channels; c++) {
            const float *src = img + c * plane;
            float *dst = win + (i * channels + c) * hl * wl, *cen = centres + (i * channels + c) * h * ws;
            for (int64_t y = 0; y < hl; y++) {
                float *row = dst + y * wl;
                int64_t sy = circular ? wrap(y - r, h) : y - r;
                if (sy < 0 || sy >= h) {
                    memset(row, 0, (size_t)wl * sizeof(float));
                    continue;
                }
                const float *srow = src + sy * w;
                if (circular) {
                    int64_t cols = 2 * w + patch - 1;
                    for (int64_t x = 0; x < cols; x++) row[x] = srow[wrap(x - r, w)];
                    for (int64_t x = cols; x < wl; x++) row[x] = 0.0f;
                } else {
                    int64_t right = r + w < wl ? r + w : wl;
                    for (int64_t x = 0; x < r && x < wl; x++) row[x] = 0.0f;
                    memcpy(row + r, srow, (size_t)(right - r) * sizeof(float));
                    for (int64_t x = right; x < wl; x++) row[x] = 0.0f;
                }
            }
            for (int64_t y = 0; y < h; y++) {
                memcpy(cen + y * ws, src + y * w, (size_t)w * sizeof(float));
                memset(cen + y * ws + w, 0, 8 * sizeof(float));
            }
        }
        for (int64_t k = 0; k < plane; k++) {
            double acc = 0.0;
            for (int64_t c = 0; c < channels; c++) {
                double v = img[c * plane + k];
                acc += v * v;
            }
            sq[k] = acc;
        }
        /* column sums over the window's rows, moved down a row at a time */
        for (int64_t x = 0; x < w; x++) col[x] = 0.0;
        for (int64_t dy = -r; dy <= r; dy++) {
            const double *row = norm_row(sq, dy, h, w, circular);
            if (row)
                for (int64_t x = 0; x < w; x++) col[x] += row[x];
        }
        float *out = norms + i * h * ws;
        for (int64_t y = 0; y < h; y++) {
            float *orow = out + y * ws;
            double acc = 0.0;
            for (int64_t dx = -r; dx <= r; dx++) {
                int64_t xx = circular ? wrap(dx, w) : dx;
                if (xx >= 0 && xx < w) acc += col[xx];
            }
            for (int64_t x = 0; x < w; x++) {
                orow[x] = (float)acc;
                int64_t in = x + r + 1, outx = x - r;
                if (circular) {
                    acc += col[wrap(in, w)] - col[wrap(outx, w)];
                } else {
                    if (in < w) acc += col[in];
                    if (outx >= 0) acc -= col[outx];
                }
            }
            memset(orow + w, 0, 8 * sizeof(float));
            const double *add = norm_row(sq, y + r + 1, h, w, circular), *sub = norm_row(sq, y - r, h, w, circular);
            if (add)
                for (int64_t x = 0; x < w; x++) col[x] += add[x];
            if (sub)
                for (int64_t x = 0; x < w; x++) col[x] -= sub[x];
        }
    }
}

/*
 * mosaic_sq8_scan: the k nearest, by squared L2, of every query among the vectors of the IVF lists it
 * probes, read where FAISS keeps them: an IndexIVFScalarQuantizer (8 bits, a range per dimension, by
 * residual) whose lists are one mapped OnDiskInvertedLists file (core/analyzer/search.py: SQ8Lists).
 * List l holds size[l] codes of dim bytes at base + offset[l], then capacity[l] ids (int64); code c of list
 * l is the vector centres[l] + lo + c * step (lo = vmin + step / 2, step = vdiff / 255: FAISS's decoding).
 *
 * The work goes list by list (FAISS goes query by query): pair_query holds the queries sorted by the list
 * they probe, unique list u being list_of[u] with pairs list_start[u] .. list_start[u + 1]. Every 16 codes
 * of a list are decoded once into a (dim, 16) block and compared with each of the list's queries there,
 * 16 distances per vector operation; blocks none of which beats a query's k-th best cost a compare. Threads
 * take lists and keep their own k best of every query, merged at the end (equal distances: lower thread,
 * then earlier list order first). Writes the k best of each query ascending into out_dist / out_ids (nq, k),
 * -1 and FLT_MAX past the vectors found; 1 <= k <= KNN_MAX_K, dim <= MAX_DIM. Dimensions from active on
 * (0 or dim: none) must be 0 in every query, centre and decoded code (FAISS's zero padding): they are skipped.
 */
/* Is any of the 16 distances below limit? */
static inline int below16(v16f distances, float limit) {
#if defined(__AVX512F__)
    return _mm512_cmp_ps_mask((__m512)distances, _mm512_set1_ps(limit), _CMP_LT_OQ) != 0;
#else
    v16f l = {limit, limit, limit, limit, limit, limit, limit, limit, limit, limit, limit, limit, limit, limit, limit,
              limit};
    v16i mask = (v16i)(distances < l);
    int32_t lanes[16];
    memcpy(lanes, &mask, sizeof(lanes));
    int32_t any = 0;
    for (int i = 0; i < 16; i++) any |= lanes[i];
    return any != 0;
#endif
}

/* Codes j0 .. j0 + m - 1 (m <= 16) decoded into block (dim, 16), dimension-major; lanes past m far away. */
static inline void sq8_block_scalar(const uint8_t *codes, int64_t m, int64_t dim, const float *lo, const float *step,
                                    float *block) {
    for (int64_t d = 0; d < dim; d++) {
        float *row = block + d * 16;
        for (int64_t j = 0; j < m; j++) row[j] = lo[d] + step[d] * (float)codes[j * dim + d];
        for (int64_t j = m; j < 16; j++) row[j] = 1e15f; /* past the list: never near */
    }
}

#if defined(__AVX512F__)
/* A whole block of 16 codes of W = dim / 4 <= SQ8_MAX_WORDS 32-bit words each, transposed in registers: the
 * block's W vectors of 16 words (row-major, code after code) become W vectors "word w of codes 0 .. 15" by
 * two-source permutes of neighbouring vectors (SQ8Transpose: their indices and which codes each one gives). */
#define SQ8_MAX_WORDS 8
typedef struct {
    int words;
    __m512i index[SQ8_MAX_WORDS][(SQ8_MAX_WORDS + 1) / 2];
    __mmask16 take[SQ8_MAX_WORDS][(SQ8_MAX_WORDS + 1) / 2];
} SQ8Transpose;

static void sq8_transpose_plan(int words, SQ8Transpose *plan) {
    plan->words = words;
    for (int w = 0; w < words; w++)
        for (int pair = 0; pair < (words + 1) / 2; pair++) {
            int32_t index[16];
            unsigned take = 0;
            for (int j = 0; j < 16; j++) {
                int at = words * j + w - 32 * pair; /* position within the pair's 32 words */
                index[j] = at >= 0 && at < 32 ? at : 0;
                if (at >= 0 && at < 32) take |= 1u << j;
            }
            plan->index[w][pair] = _mm512_loadu_si512(index);
            plan->take[w][pair] = (__mmask16)take;
        }
}

static inline void sq8_block_full(const uint8_t *codes, const SQ8Transpose *plan, const float *lo, const float *step,
                                  float *block) {
    const int words = plan->words;
    __m512i rows[SQ8_MAX_WORDS + 1];
    for (int i = 0; i < words; i++) rows[i] = _mm512_loadu_si512(codes + 64 * i);
    rows[words] = _mm512_setzero_si512();
    const __m512i byte = _mm512_set1_epi32(0xFF);
    for (int w = 0; w < words; w++) {
        __m512i column = _mm512_setzero_si512();
        for (int pair = 0; pair < (words + 1) / 2; pair++) {
            __m512i part = _mm512_permutex2var_epi32(rows[2 * pair], plan->index[w][pair], rows[2 * pair + 1]);
            column = _mm512_mask_blend_epi32(plan->take[w][pair], column, part);
        }
        for (int b = 0; b < 4; b++) {
            int d = 4 * w + b;
            __m512 c = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(column, 8 * b), byte));
            _mm512_storeu_ps(block + d * 16, _mm512_fmadd_ps(c, _mm512_set1_ps(step[d]), _mm512_set1_ps(lo[d])));
        }
    }
}
#endif

static inline __attribute__((always_inline)) v16f sq8_distances_n(const float *q, const float *block, int64_t dim) {
    v16f acc[4] = {{0}, {0}, {0}, {0}}; /* four chains: the adds of one would wait on each other */
    int64_t d = 0;
    for (; d + 4 <= dim; d += 4)
        for (int c = 0; c < 4; c++) {
            float r = q[d + c];
            v16f diff = (v16f){r, r, r, r, r, r, r, r, r, r, r, r, r, r, r, r} - load16(block + (d + c) * 16);
            acc[c] += diff * diff;
        }
    for (; d < dim; d++) {
        float r = q[d];
        v16f diff = (v16f){r, r, r, r, r, r, r, r, r, r, r, r, r, r, r, r} - load16(block + d * 16);
        acc[0] += diff * diff;
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* Squared distances of query q (its residual) to the block's 16 codes over their first dims dimensions; 20
 * and 24 (the analyzer's 19-dimensional descriptors, padded to 24 for FAISS) unrolled whole. */
static inline v16f sq8_distances(const float *q, const float *block, int64_t dims) {
    if (dims == 20) return sq8_distances_n(q, block, 20);
    if (dims == 24) return sq8_distances_n(q, block, 24);
    return sq8_distances_n(q, block, dims);
}

void mosaic_sq8_scan(const float *queries, int64_t nq, int64_t dim, const float *centres, const uint8_t *base,
                     const int64_t *offset, const int64_t *size, const int64_t *capacity, const float *vmin,
                     const float *vdiff, const int64_t *list_of, const int64_t *list_start, int64_t lists,
                     const int64_t *pair_query, int64_t active, int64_t k, float *out_dist, int64_t *out_ids,
                     int threads) {
    if (threads < 1) threads = 1;
    if (threads > lists) threads = lists > 0 ? (int)lists : 1;
    size_t slots = (size_t)threads * (size_t)nq * (size_t)k;
    float *kept = malloc(slots * sizeof(float));
    int64_t *best = malloc(slots * sizeof(int64_t));
    int64_t *filled = calloc((size_t)threads * (size_t)nq, sizeof(int64_t));
    for (size_t i = 0; i < slots; i++) {
        kept[i] = FLT_MAX;
        best[i] = -1;
    }
#if defined(__AVX512F__)
    SQ8Transpose plan;
    int transposed = dim % 4 == 0 && dim / 4 <= SQ8_MAX_WORDS;
    if (transposed) sq8_transpose_plan((int)(dim / 4), &plan);
#endif
    /* dimensions past active are 0 in every query, centre and code (padding): not compared */
    int64_t dims = active > 0 && active < dim ? (active + 3) / 4 * 4 : dim;
    if (dims > dim) dims = dim;
    float lo[MAX_DIM], step[MAX_DIM];
    for (int64_t d = 0; d < dim; d++) {
        step[d] = vdiff[d] / 255.0f;
        lo[d] = vmin[d] + 0.5f * step[d];
    }
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = omp_get_thread_num();
        float *tk = kept + (size_t)t * nq * k;
        int64_t *tb = best + (size_t)t * nq * k;
        int64_t *tf = filled + (size_t)t * nq;
        float block[MAX_DIM * 16];
        float *resid = malloc((size_t)nq * (size_t)dim * sizeof(float)); /* the list's queries minus its centre */
#pragma omp for schedule(dynamic, 8)
        for (int64_t u = 0; u < lists; u++) {
            int64_t l = list_of[u], n = size[l];
            int64_t p0 = list_start[u], p1 = list_start[u + 1];
            if (n == 0 || p1 <= p0) continue;
            const uint8_t *codes = base + offset[l];
            const int64_t *ids = (const int64_t *)(base + offset[l] + capacity[l] * dim);
            const float *centre = centres + l * dim;
            for (int64_t p = p0; p < p1; p++)
                for (int64_t d = 0; d < dim; d++)
                    resid[(p - p0) * dim + d] = queries[pair_query[p] * dim + d] - centre[d];
            for (int64_t j0 = 0; j0 < n; j0 += 16) {
                int64_t m = n - j0 < 16 ? n - j0 : 16;
#if defined(__AVX512F__)
                if (m == 16 && transposed)
                    sq8_block_full(codes + j0 * dim, &plan, lo, step, block);
                else
#endif
                    sq8_block_scalar(codes + j0 * dim, m, dim, lo, step, block);
                for (int64_t p = p0; p < p1; p++) {
                    int64_t qi = pair_query[p];
                    const float *q = resid + (p - p0) * dim;
                    v16f acc = sq8_distances(q, block, dims);
                    float *kq = tk + qi * k;
                    if (!below16(acc, kq[k - 1])) continue;
                    float lane[16];
                    store16(lane, acc);
                    for (int64_t j = 0; j < m; j++)
                        if (lane[j] < kq[k - 1]) knn_insert(kq, tb + qi * k, tf + qi, k, lane[j], ids[j0 + j]);
                }
            }
        }
        free(resid);
    }
    /* merge the threads' lists of every query */
    for (int64_t qi = 0; qi < nq; qi++) {
        float *od = out_dist + qi * k;
        int64_t *oi = out_ids + qi * k;
        int64_t n = 0;
        for (int t = 0; t < threads; t++) {
            const float *tk = kept + ((size_t)t * nq + qi) * k;
            const int64_t *tb = best + ((size_t)t * nq + qi) * k;
            int64_t tf = filled[(size_t)t * nq + qi];
            for (int64_t j = 0; j < tf; j++)
                if (n < k || tk[j] < od[k - 1]) knn_insert(od, oi, &n, k, tk[j], tb[j]);
        }
        for (int64_t j = n; j < k; j++) {
            od[j] = FLT_MAX;
            oi[j] = -1;
        }
    }
    free(kept);
    free(best);
    free(filled);
}
