/* ==================================================================== */
/* [impl:vmath] vectorised exp                                          */
/* ==================================================================== */
/* exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6
   polynomial for e^r (Cephes expf coefficients), then scaling by 2^n.
   Accuracy: max relative error 2.0e-7 (about 2 ulp) against expf over
   [-87, 88] (tested in tests/test_core.c); exp(x < -87.3) = 0 (expf gives
   subnormals there), exp(x > 88.7) = +Inf, NaN propagates. */

#define ZS__EXP_HI 88.7228391f
#define ZS__EXP_LO -87.3365447f

/* scalar form of the same algorithm (used for tails and the NO_SIMD build) */
ZS__PRIV float zs__expf(float x) {
    float n, r, p;
    int32_t e;
    if (x != x) return x;
    if (x > ZS__EXP_HI) return INFINITY;
    if (x < ZS__EXP_LO) return 0.0f;
    n = floorf(x * 1.44269504088896341f + 0.5f);
    r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    e = (int32_t)n;
    /* 2^n in two steps so n = 128 (x near 88.7) does not overflow the exponent */
    return p * zs__u2f((uint32_t)(127 + e / 2) << 23) * zs__u2f((uint32_t)(127 + e - e / 2) << 23);
}

#if defined(ZS__AVX2)
ZS__PRIV __m256 zs__vexp(__m256 x) {
    const __m256 hi = _mm256_set1_ps(ZS__EXP_HI), lo = _mm256_set1_ps(ZS__EXP_LO);
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    __m256 p, r2, s1, s2;
    __m256i e, e1, e2;
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    r2 = _mm256_mul_ps(r, r);
    p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    e = _mm256_cvtps_epi32(n);
    e1 = _mm256_srai_epi32(e, 1);
    e2 = _mm256_sub_epi32(e, e1);
    s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, _mm256_set1_epi32(127)), 23));
    s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    p = _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY), big);
    p = _mm256_blendv_ps(p, _mm256_setzero_ps(), small);
    return _mm256_blendv_ps(p, x, isnan);
}
#endif

/* y[i] = exp(x[i]); y may alias x */
ZS__PRIV void zs__exp_n(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(ZS__AVX2)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, zs__vexp(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = zs__expf(x[i]);
}

/* In-place stable softmax of one row: x <- exp(x - max) / sum. Returns the
   log of the normaliser (max + log(sum)), useful for log-softmax. */
ZS__PRIV float zs__softmax_row(float *x, int64_t n) {
    int64_t i = 0;
    float mx = -INFINITY, s = 0.0f, inv;
#if defined(ZS__AVX2)
    if (n >= 8) {
        __m256 vm = _mm256_loadu_ps(x), vs = _mm256_setzero_ps();
        for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
        mx = zs__vhmax(vm);
        for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
        {
            __m256 m8 = _mm256_set1_ps(mx);
            for (i = 0; i + 8 <= n; i += 8) {
                __m256 e = zs__vexp(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
                _mm256_storeu_ps(x + i, e);
                vs = _mm256_add_ps(vs, e);
            }
        }
        s = zs__vhsum(vs);
        for (; i < n; i++) { x[i] = zs__expf(x[i] - mx); s += x[i]; }
        goto norm;
    }
#endif
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) { x[i] = zs__expf(x[i] - mx); s += x[i]; }
#if defined(ZS__AVX2)
norm:
#endif
    if (mx == -INFINITY) { /* all -inf: torch gives NaN; keep it defined as uniform 0 */
        for (i = 0; i < n; i++) x[i] = 0.0f;
        return -INFINITY;
    }
    inv = 1.0f / s;
    i = 0;
#if defined(ZS__AVX2)
    {
        __m256 vi = _mm256_set1_ps(inv);
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    }
#endif
    for (; i < n; i++) x[i] *= inv;
    return mx + logf(s);
}

/* scalar reference of zs__softmax_row, in double */
ZS__PRIV void zs__softmax_row_ref(float *x, int64_t n) {
    int64_t i;
    double mx = -INFINITY, s = 0;
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (i = 0; i < n; i++) x[i] = (float)(exp((double)x[i] - mx) / s);
}
