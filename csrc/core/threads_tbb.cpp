// threads_tbb.cpp — the one C++ file: TBB (oneDNN's threading runtime in the PyPI wheel)
// only exposes its concurrency limit through a C++ object, global_control.
#include <oneapi/tbb/global_control.h>

#include <memory>

static std::unique_ptr<tbb::global_control> limit;

extern "C" int cd_tbb_set_max_threads(int n) {
    try {
        limit.reset();
        limit.reset(new tbb::global_control(tbb::global_control::max_allowed_parallelism,
                                            (size_t)n));
        return 0;
    } catch (...) {
        return -1;
    }
}
