// cojob/pool.hpp - a set of workers that several `parallel` runners share.
#pragma once

#include <cojob/options.hpp>

#include <memory>
#include <optional>

namespace cojob {

namespace detail {
struct pool_state;
}  // namespace detail

/// Workers (threads, processes or MPI ranks) that several `parallel` runners share.
///
/// A `parallel` built without a pool owns its workers. Runners that differ in their options
/// (batch size, pre_dispatch, timeout, verbose, max_nbytes, callbacks...) but should not each
/// start workers of their own are built on one pool instead: `cojob::parallel fast{workers,
/// {.batch_size = 1}}`. Their calls, and the calls of every other runner on the pool, share its
/// n_jobs workers batch by batch, round robin between calls, as the calls of one runner do.
///
/// The workers start when a call first needs them and are released when the pool and every
/// runner built on it are gone (a runner keeps them alive past the pool).
///
/// @par Thread safety
/// A pool is used only to build runners, from any thread; the runners may then be used at once.
///
/// @par Example
/// @code
/// cojob::pool workers{4, cojob::backend::processes};
/// cojob::parallel interactive{workers, {.batch_size = 1}};
/// cojob::parallel bulk{workers, {.verbose = 5}};
/// @endcode
class pool {
public:
    /// `n_jobs` workers of `kind`, with joblib's rules as in `cojob::options`: -1 is every CPU
    /// (with `mpi`, every worker rank), `sequential` for a single worker, `threads` when no
    /// backend is given, threads in place of processes inside a worker process. The
    /// `parallel_config` scope in force supplies the backend when `kind` is not given.
    /// @throws cojob::error naming n_jobs or backend when one is invalid.
    explicit pool(int n_jobs, std::optional<cojob::backend> kind = std::nullopt);
    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// Its number of workers (the effective n_jobs).
    [[nodiscard]] int n_jobs() const noexcept;
    /// Its backend.
    [[nodiscard]] cojob::backend backend() const noexcept;

private:
    friend class parallel;
    std::shared_ptr<detail::pool_state> state_;
};

}  // namespace cojob
