// src/worker_count.cpp - how many workers of which kind a runner gets: the CPUs this process
// may use, joblib's effective_n_jobs, and n_jobs and backend resolved together.
#include <cojob/errors.hpp>
#include <cojob/options.hpp>

#include "mpi_link.hpp"
#include "resolved_options.hpp"
#include "worker.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

namespace cojob {

namespace {

// The CFS quota of this process's cgroup, in CPUs (rounded up), if one is set (v2, then v1).
std::optional<int> cgroup_cpu_limit() {
    auto quota_of = [](double quota, double period) -> std::optional<int> {
        if (quota > 0 && period > 0) return std::max(1, static_cast<int>(std::ceil(quota / period)));
        return std::nullopt;
    };
    std::string relative;
    {
        std::ifstream self("/proc/self/cgroup");
        std::string line;
        while (std::getline(self, line))
            if (line.rfind("0::", 0) == 0) relative = line.substr(3);
    }
    for (const std::string& path : {"/sys/fs/cgroup" + relative + "/cpu.max", std::string("/sys/fs/cgroup/cpu.max")}) {
        std::ifstream f(path);
        std::string quota;
        double period = 0;
        if (f >> quota >> period) {
            if (quota == "max") return std::nullopt;
            return quota_of(std::strtod(quota.c_str(), nullptr), period);
        }
    }
    for (const char* dir : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
        std::ifstream q(std::string(dir) + "/cpu.cfs_quota_us"), p(std::string(dir) + "/cpu.cfs_period_us");
        double quota = 0, period = 0;
        if (q >> quota && p >> period) return quota_of(quota, period);
    }
    return std::nullopt;
}

int count_cpus() {
    long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? static_cast<int>(online) : 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) n = std::min(n, std::max(1, CPU_COUNT(&set)));
    if (auto limit = cgroup_cpu_limit()) n = std::min(n, *limit);
    return std::max(n, 1);
}

}  // namespace

int cpu_count() noexcept {
    static const int n = [] {
        try {
            return count_cpus();
        } catch (...) {
            return 1;
        }
    }();
    return n;
}

int effective_n_jobs(int n_jobs) {
    if (n_jobs == 0)
        throw error("cojob::options: n_jobs=0 is not valid; expected a count > 0, -1 for every CPU, "
                    "or -k for all CPUs but k-1");
    if (n_jobs > 0) return n_jobs;
    return std::max(cpu_count() + 1 + n_jobs, 1);
}


namespace detail {

resolved_workers resolve_workers(std::optional<int> n_jobs, std::optional<cojob::backend> kind) {
    if (kind && *kind != backend::sequential && *kind != backend::threads && *kind != backend::processes &&
        *kind != backend::mpi)
        throw error("cojob::options: backend=" + std::to_string(static_cast<int>(*kind)) +
                    " is not a backend; expected sequential, threads, processes or mpi");
    resolved_workers w;
    w.n_jobs_requested = n_jobs.value_or(1);
    w.kind_requested = kind;
    // Inside a worker (process or rank), an inner call runs on threads (joblib's nested
    // backend): workers of workers would only multiply processes on the same CPUs.
    w.nested = in_worker_process() && (kind == backend::processes || kind == backend::mpi);
    if (kind == backend::mpi && !w.nested) {
        // n_jobs counts worker ranks: -1 all of them, more than there are is capped.
        const int ranks = mpi_worker_ranks();
        w.n_jobs = w.n_jobs_requested < 0 ? std::max(ranks + 1 + w.n_jobs_requested, 1)
                                          : std::min(effective_n_jobs(w.n_jobs_requested), ranks);
        w.kind = backend::mpi;
    } else {
        w.n_jobs = effective_n_jobs(w.n_jobs_requested);
        w.kind = w.n_jobs == 1 ? backend::sequential : kind.value_or(backend::threads);
        if (w.nested) w.kind = w.n_jobs == 1 ? backend::sequential : backend::threads;
    }
    if (w.kind == backend::sequential) w.n_jobs = 1;
    return w;
}

}  // namespace detail
}  // namespace cojob
