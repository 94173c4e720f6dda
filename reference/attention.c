/* Ragged causal attention over a KV cache, for CPUs with AVX2 and FMA (reference/attention.py
 * builds it and falls back to torch's SDPA where it cannot).
 *
 * One call does one layer of one forward of several cache rows, each row at its own length
 * and with its own number of new tokens: it writes the new keys and values into the cache,
 * then each new token attends to its row's keys 0..its own position. Nothing is padded and
 * no mask is built; a row reads only its own live keys.
 *
 * Shapes (float32): the layer's cache kc, vc is (B, nh, L, HS); q, k, v hold the N new tokens
 * row after row (row b's counts[b] tokens, at positions starts[b]..), each token nh * HS
 * floats, `stride` floats apart; out is (N, nh * HS). HS is fixed at build time (-DHS=...).
 *
 * Two kernels:
 * - a block of up to 8 queries of one row and head, one query per SIMD lane: scores, softmax
 *   and the weighted sum of values are vertical operations, keys and values are read in the
 *   cache's own layout (broadcast loads), each once per block;
 * - a single query (a decode step without drafts, or a block's 9th query), keys in the lanes:
 *   8 dot products reduced with one horizontal-add tree.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if !defined(__AVX2__) || !defined(__FMA__)
#error "attention.c needs AVX2 and FMA"
#endif
#ifndef HS
#error "build with -DHS=<head size>"
#endif
#if HS % 8 != 0
#error "the head size must be a multiple of 8"
#endif

#define NV (HS / 8) /* vectors per head */
#ifndef PREFETCH
#define PREFETCH 32 /* keys ahead */
#endif

/* exp of 8 floats (Cephes' polynomial, about 1 ulp); arguments below -87 give ~0 */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f),
                                                _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The next row and head's keys and values, brought into L2 a cache line at a time while the
 * current one computes (the memory reads then overlap the arithmetic). */
typedef struct {
    const char *k, *v;
    size_t bytes, done;
} ahead_t;

static inline void ahead_step(ahead_t *a) {
    if (a->done < a->bytes) {
        _mm_prefetch(a->k + a->done, _MM_HINT_T1);
        _mm_prefetch(a->v + a->done, _MM_HINT_T1);
        a->done += 64;
    }
}

/* per-thread scratch of at least n floats, 32-byte aligned */
static __thread float *scratch;
static __thread size_t scratch_cap;

static float *get_scratch(size_t n) {
    if (n > scratch_cap) {
        free(scratch);
        scratch = aligned_alloc(32, ((n * sizeof(float) + 31) / 32) * 32);
        scratch_cap = scratch ? n : 0;
    }
    return scratch;
}

/* One query at position p (keys 0..p) of one row and head. K, V: the head's (L, HS) cache;
 * L is a multiple of 8, so reading keys up to p rounded up to 8 stays in the head's slab
 * (the stale ones are masked). S: scratch of at least L floats. */
static void attend1(const float *q, const float *K, const float *V, int p, float scale,
                    float *o, float *S, ahead_t *ahead) {
    const int n = p + 1, n8 = (n + 7) & ~7;
    __m256 qv[NV];
    for (int i = 0; i < NV; i++) qv[i] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * i), _mm256_set1_ps(scale));
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    for (int j0 = 0; j0 < n8; j0 += 8) {
        __m256 a[8];
        for (int u = 0; u < 8; u++) {
            const float *kj = K + (size_t)(j0 + u) * HS;
            __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kj));
            for (int i = 1; i < NV; i++) acc = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(kj + 8 * i), acc);
            a[u] = acc;
        }
        __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
        __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
        __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
        __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                 _mm256_permute2f128_ps(u0, u1, 0x31));
        if (j0 + 8 > n) { /* keys n.. are beyond the query */
            __m256 past = _mm256_cmp_ps(iota, _mm256_set1_ps((float)(n - j0)), _CMP_GE_OQ);
            s = _mm256_blendv_ps(s, _mm256_set1_ps(-INFINITY), past);
        }
        _mm256_store_ps(S + j0, s);
        vmax = _mm256_max_ps(vmax, s);
    }
    const __m256 m = _mm256_set1_ps(hmax8(vmax));
    __m256 vsum = _mm256_setzero_ps();
    for (int j0 = 0; j0 < n8; j0 += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(S + j0), m));
        if (j0 + 8 > n)
            e = _mm256_and_ps(e, _mm256_cmp_ps(iota, _mm256_set1_ps((float)(n - j0)), _CMP_LT_OQ));
        _mm256_store_ps(S + j0, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    __m256 acc[NV];
    for (int i = 0; i < NV; i++) acc[i] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        for (int l = 0; l < HS; l += 16) ahead_step(ahead);  /* a key: HS / 16 lines */
        const __m256 pj = _mm256_broadcast_ss(S + j);
        const float *vj = V + (size_t)j * HS;
        for (int i = 0; i < NV; i++) acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), acc[i]);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum8(vsum));
    for (int i = 0; i < NV; i++) _mm256_storeu_ps(o + 8 * i, _mm256_mul_ps(acc[i], inv));
}

/* tq <= 8 queries at positions p0..p0+tq-1 of one row and head (query t sees keys
 * 0..p0+t), one per lane; q rows `qs` floats apart, outputs `os` floats apart. S: scratch of
 * at least 8 * L floats. */
static void attend8(const float *q, int64_t qs, int tq, const float *K, const float *V,
                    int p0, float scale, float *o, int64_t os, float *S, ahead_t *ahead) {
    const int nk = p0 + tq;
    float qt[HS][8] __attribute__((aligned(32)));  /* queries transposed: qt[d][lane] */
    memset(qt, 0, sizeof qt);
    for (int t = 0; t < tq; t++)
        for (int d = 0; d < HS; d++) qt[d][t] = q[t * qs + d] * scale;
    const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    /* scores, 8 dimensions at a time: S[j] (lanes) += sum_d qt[d] * K[j][d] */
    for (int dc = 0; dc < HS; dc += 8) {
        __m256 qd[8];
        for (int i = 0; i < 8; i++) qd[i] = _mm256_load_ps(qt[dc + i]);
        for (int j = 0; j < nk; j++) {
            const float *kj = K + (size_t)j * HS + dc;
            if (dc == 0) /* the first pass brings each key and value in (from L2, ideally) */
                for (int l = 0; l < HS; l += 16) {
                    _mm_prefetch((const char *)(K + (size_t)(j + PREFETCH) * HS + l), _MM_HINT_T0);
                    _mm_prefetch((const char *)(V + (size_t)(j + PREFETCH) * HS + l), _MM_HINT_T1);
                }
            else
                ahead_step(ahead);
            __m256 a = dc ? _mm256_load_ps(S + 8 * j) : _mm256_setzero_ps();
            __m256 b = _mm256_mul_ps(qd[0], _mm256_broadcast_ss(kj));
            for (int i = 1; i < 8; i += 2) {
                a = _mm256_fmadd_ps(qd[i], _mm256_broadcast_ss(kj + i), a);
                if (i + 1 < 8) b = _mm256_fmadd_ps(qd[i + 1], _mm256_broadcast_ss(kj + i + 1), b);
            }
            _mm256_store_ps(S + 8 * j, _mm256_add_ps(a, b));
        }
    }
    /* key j > p0 is seen by lanes t >= j - p0 only */
    for (int j = p0 + 1; j < nk; j++) {
        __m256 unseen = _mm256_cmp_ps(iota, _mm256_set1_ps((float)(j - p0)), _CMP_LT_OQ);
        _mm256_store_ps(S + 8 * j, _mm256_blendv_ps(_mm256_load_ps(S + 8 * j),
                                                    _mm256_set1_ps(-INFINITY), unseen));
    }
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < nk; j++) m = _mm256_max_ps(m, _mm256_load_ps(S + 8 * j));
    __m256 sum = _mm256_setzero_ps();
    for (int j = 0; j < nk; j++) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(S + 8 * j), m));
        if (j > p0)
            e = _mm256_and_ps(e, _mm256_cmp_ps(iota, _mm256_set1_ps((float)(j - p0)), _CMP_GE_OQ));
        _mm256_store_ps(S + 8 * j, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), sum);
    /* outputs, 8 dimensions at a time: ot[d] (lanes) = sum_j S[j] * V[j][d] */
    float ot[HS][8] __attribute__((aligned(32)));
    for (int dc = 0; dc < HS; dc += 8) {
        __m256 acc[8];
        for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
        for (int j = 0; j < nk; j++) {
            const __m256 pj = _mm256_load_ps(S + 8 * j);
            const float *vj = V + (size_t)j * HS + dc;
            ahead_step(ahead);
            if (dc == 0)
                for (int l = 0; l < HS; l += 16)
                    _mm_prefetch((const char *)(V + (size_t)(j + PREFETCH) * HS + l), _MM_HINT_T0);
            for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vj + i), acc[i]);
        }
        for (int i = 0; i < 8; i++) _mm256_store_ps(ot[dc + i], _mm256_mul_ps(acc[i], inv));
    }
    for (int t = 0; t < tq; t++)
        for (int d = 0; d < HS; d++) o[t * os + d] = ot[d][t];
}

int attention_head_size(void) { return HS; }

/* One row and head: write its new keys and values into the cache, then attend its queries.
 * (nb, nhd) is the row and head to prefetch next, nb == nrows for none. */
static void attend_head(int b, int h, int64_t tok, int nrows, const int32_t *rows,
                        const int32_t *starts, const int32_t *counts, int nh, int L,
                        const float *q, const float *k, const float *v, int64_t qstride,
                        int64_t kstride, int64_t vstride, float *kc, float *vc, float *out,
                        float scale, float *S, int nb, int nhd) {
    const int s = starts[b], c = counts[b];
    const int64_t C = (int64_t)nh * HS;
    float *K = kc + ((size_t)rows[b] * nh + h) * L * HS;
    float *V = vc + ((size_t)rows[b] * nh + h) * L * HS;
    ahead_t ahead = {0};
    if (nb < nrows) {
        const size_t off = ((size_t)rows[nb] * nh + nhd) * L * HS;
        ahead = (ahead_t){(const char *)(kc + off), (const char *)(vc + off),
                          (size_t)starts[nb] * HS * sizeof(float), 0};
    }
    for (int t = 0; t < c; t++) {
        memcpy(K + (size_t)(s + t) * HS, k + (tok + t) * kstride + h * HS, HS * sizeof(float));
        memcpy(V + (size_t)(s + t) * HS, v + (tok + t) * vstride + h * HS, HS * sizeof(float));
    }
    int t0 = 0;
    for (; c - t0 >= 2; t0 += 8) {
        const int tq = c - t0 < 8 ? c - t0 : 8;
        attend8(q + (tok + t0) * qstride + h * HS, qstride, tq, K, V, s + t0, scale,
                out + (tok + t0) * C + h * HS, C, S, &ahead);
    }
    if (t0 < c)  /* one query left */
        attend1(q + (tok + t0) * qstride + h * HS, K, V, s + t0, scale,
                out + (tok + t0) * C + h * HS, S, &ahead);
}

/* One layer of one forward: see the top of this file. With threads > 1 (and a build with
 * OpenMP) the (row, head) units are split into `threads` contiguous ranges of about equal
 * work (keys read x query blocks), one per thread: each unit writes only its own cache slab
 * and output columns, and computes exactly what the serial loop does, so the result is
 * bit-identical whatever the thread count. Returns 0, or -1 when out of memory. */
int attend(int nrows, const int32_t *rows, const int32_t *starts, const int32_t *counts,
           int nh, int L, const float *q, const float *k, const float *v, int64_t qstride,
           int64_t kstride, int64_t vstride, float *kc, float *vc, float *out, int threads) {
    const float scale = 1.0f / sqrtf((float)HS);
#ifdef _OPENMP
    if (threads > 1 && nrows * nh >= 2 * threads) {
        int64_t *tok = malloc(sizeof(int64_t) * (size_t)(nrows + 1));
        double *cost = malloc(sizeof(double) * (size_t)(nrows + 1));
        if (!tok || !cost) { free(tok); free(cost); return -1; }
        tok[0] = 0;
        cost[0] = 0;
        for (int b = 0; b < nrows; b++) {  /* a head's work: keys read per query block */
            tok[b + 1] = tok[b] + counts[b];
            cost[b + 1] = cost[b] + (double)(starts[b] + counts[b] + 8) * ((counts[b] + 7) / 8);
        }
        const int units = nrows * nh;
        int failed = 0;
#pragma omp parallel num_threads(threads) reduction(|| : failed)
        {
            const int n = omp_get_num_threads(), me = omp_get_thread_num();
            /* this thread's units: those whose rows' cost midpoint falls in its share */
            const double lo = cost[nrows] * me / n, hi = cost[nrows] * (me + 1) / n;
            int u0 = 0, u1 = 0;
            for (int u = 0; u < units; u++) {
                const int b = u / nh, h = u % nh;
                const double mid = cost[b] + (cost[b + 1] - cost[b]) * (h + 0.5) / nh;
                if (mid < lo) u0 = u + 1;
                if (mid < hi || (me == n - 1)) u1 = u + 1;
            }
            float *S = get_scratch((size_t)8 * L);
            if (!S) failed = 1;
            else
                for (int u = u0; u < u1; u++) {
                    const int b = u / nh, h = u % nh;
                    const int nu = u + 1 < u1 ? u + 1 : units; /* prefetch within the range */
                    attend_head(b, h, tok[b], nrows, rows, starts, counts, nh, L, q, k, v,
                                qstride, kstride, vstride, kc, vc, out, scale, S,
                                nu < units ? nu / nh : nrows, nu < units ? nu % nh : 0);
                }
        }
        free(tok);
        free(cost);
        return failed ? -1 : 0;
    }
#else
    (void)threads;
#endif
    float *S = get_scratch((size_t)8 * L);
    if (!S) return -1;
    int64_t tok = 0;
    for (int b = 0; b < nrows; b++) {
        for (int h = 0; h < nh; h++) {
            /* the next row and head: this row's next head, else the next row's first */
            const int nb = h + 1 < nh ? b : b + 1, nhd = h + 1 < nh ? h + 1 : 0;
            attend_head(b, h, tok, nrows, rows, starts, counts, nh, L, q, k, v, qstride,
                        kstride, vstride, kc, vc, out, scale, S, nb, nhd);
        }
        tok += counts[b];
    }
    return 0;
}
