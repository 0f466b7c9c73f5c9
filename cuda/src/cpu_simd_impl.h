// Small float SIMD layer of the blocked CPU Gaussian rasterizer (private to cpu_raster.cpp), in GCC
// vector extensions (GCC and clang).
//
// Lanes<L> holds L-lane float vectors F and int32 vectors I (lane masks are -1 / 0). Kernels are
// templates on L, always inlined into one function per instruction set: 4 lanes for the baseline
// (SSE2 on x86-64, NEON on arm64), 8 lanes in a function compiled for AVX, picked at run time by
// `cpu_has_avx()`. The build itself stays generic (the extension cache is shared by machines).
// Written so that GCC never falls back to lane-by-lane scalar code: selects are bitwise on masks,
// and 8-lane integer compares are taken in 4-lane halves (AVX without AVX2 has no 256-bit integer
// instructions).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

#define RECON_SIMD_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RECON_HAVE_AVX_PATH 1
#define RECON_TARGET_AVX __attribute__((target("avx")))
#else
#define RECON_HAVE_AVX_PATH 0
#define RECON_TARGET_AVX
#endif

namespace recon {
namespace simd {

template <int L>
struct Lanes {
    static constexpr int kSize = L;
    typedef float F __attribute__((vector_size(4 * L)));
    typedef int32_t I __attribute__((vector_size(4 * L)));
};

// Whether this CPU runs the 8-lane AVX functions (RECON_CPU_NO_AVX=1 in the environment forces
// the baseline ones, to test them on an AVX machine).
inline bool cpu_has_avx() {
#if RECON_HAVE_AVX_PATH
    static const bool has =
        __builtin_cpu_supports("avx") && std::getenv("RECON_CPU_NO_AVX") == nullptr;
    return has;
#else
    return false;
#endif
}

template <class V, class T>
RECON_SIMD_INLINE V load(const T* p) {  // unaligned
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

template <class V, class T>
RECON_SIMD_INLINE void store(T* p, const V& v) {  // unaligned
    std::memcpy(p, &v, sizeof(v));
}

template <class F>
RECON_SIMD_INLINE F splat(float x) {
    return F{} + x;
}

// m ? a : b per lane (a, b float or int vectors).
template <class V, class I>
RECON_SIMD_INLINE V select(const I& m, const V& a, const V& b) {
    return (V)(((I)a & m) | ((I)b & ~m));
}

// m ? a : 0 per lane.
template <class F, class I>
RECON_SIMD_INLINE F keep(const I& m, const F& a) {
    return (F)((I)a & m);
}

// Mask of x <= p[l], l < lanes of I.
template <class I>
RECON_SIMD_INLINE I less_equal(int32_t x, const int32_t* p) {
    typedef int32_t I4 __attribute__((vector_size(16)));
    I out;
    for (int h = 0; h < (int)(sizeof(I) / sizeof(I4)); ++h) {
        const I4 m = x <= load<I4>(p + 4 * h);
        std::memcpy(reinterpret_cast<char*>(&out) + sizeof(I4) * h, &m, sizeof(I4));
    }
    return out;
}

// Whether any lane of the mask is set.
template <class I>
RECON_SIMD_INLINE bool any_lane(const I& m) {
    uint64_t w[sizeof(I) / sizeof(uint64_t)];
    std::memcpy(w, &m, sizeof(I));
    uint64_t acc = 0;
    for (uint64_t x : w) acc |= x;
    return acc != 0;
}

template <class F>
RECON_SIMD_INLINE float hsum(const F& v) {  // lanes in order
    float s = 0.f;
    for (int l = 0; l < (int)(sizeof(F) / sizeof(float)); ++l) s += v[l];
    return s;
}

template <class F>
RECON_SIMD_INLINE float hmax(const F& v) {
    float m = v[0];
    for (int l = 1; l < (int)(sizeof(F) / sizeof(float)); ++l) m = v[l] > m ? v[l] : m;
    return m;
}

// exp(x) for x in [-87, 88] (n in [-126, 127] below; the Gaussian window needs [-5.6, 0]):
// Cody-Waite reduction x = n ln2 + r and Cephes' expf polynomial (within 1 ulp of glibc expf on
// every float in [-5.6, 0]; no FMA contraction: -ffp-contract=off).
template <class F, class I>
RECON_SIMD_INLINE F exp_small(const F& x) {
    const float kMagic = 12582912.f;  // 1.5 * 2^23: adding it rounds to the nearest integer
    const F n = (x * 1.44269504088896341f + kMagic) - kMagic;
    const F r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    F p = splat<F>(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const F y = p * (r * r) + r + 1.f;
    const I scale = (__builtin_convertvector(n, I) + 127) << 23;  // bits of 2^n
    return y * (F)scale;
}

// min(max(x, lo), hi) per lane.
template <class F>
RECON_SIMD_INLINE F clamp(const F& x, float lo, float hi) {
    const F y = x > lo ? x : splat<F>(lo);
    return y < hi ? y : splat<F>(hi);
}

// exp(x) for any x, saturated to exp(-87) (~1.6e-38) and exp(88) (~1.7e38).
template <class F, class I>
RECON_SIMD_INLINE F exp_any(const F& x) {
    return exp_small<F, I>(clamp(x, -87.f, 88.f));
}

// ln(x) for normal positive x (no zeros, subnormals, infinities or NaNs): x = m 2^e with m in
// [sqrt(1/2), sqrt(2)) and Cephes' logf polynomial in m - 1 (a few ulp).
template <class F, class I>
RECON_SIMD_INLINE F log_normal(const F& x) {
    const I bits = (I)x;
    F e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, F);
    F m = (F)((bits & 0x007fffff) | 0x3f000000) - 1.f;  // mantissa in [1/2, 1), minus 1
    const I small = m + 1.f < 0.707106781186547524f;     // m + 1 < sqrt(1/2): use 2 (m + 1) - 1
    m = select(small, m + m + 1.f, m);
    e = select(small, e - 1.f, e);
    const F z = m * m;
    F y = splat<F>(7.0376836292e-2f);
    y = y * m + -1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m + -1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m + -1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m + -2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += e * -2.12194440e-4f;
    y += -0.5f * z;
    return (m + y) + e * 0.693359375f;
}

}  // namespace simd
}  // namespace recon
