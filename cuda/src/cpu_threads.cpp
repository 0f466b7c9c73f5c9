// Thread count of the CPU kernels' parallel regions (launchers.h). The policy that picks it lives
// in recon/ops/threads.py: every region names its team size with a num_threads clause, so a
// change applies to the next region, whatever OpenMP's own settings in the calling thread are.
#include <omp.h>

#include <algorithm>
#include <atomic>

#include "launchers.h"

namespace recon {

namespace {
std::atomic<int> g_threads{0};  // 0: OpenMP's default (omp_get_max_threads of the caller)
}

void set_cpu_threads(int n) { g_threads.store(std::max(n, 0), std::memory_order_relaxed); }

int cpu_threads(int64_t items, int64_t min_items) {
    const int set = g_threads.load(std::memory_order_relaxed);
    const int64_t most = set > 0 ? set : omp_get_max_threads();
    return (int)std::max<int64_t>(1, std::min(most, items / std::max<int64_t>(min_items, 1)));
}

}  // namespace recon
