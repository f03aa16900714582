// cojob/memory.hpp - on-disk memoization (joblib's `Memory`): `mem.cache(f)` returns a
// callable that computes f once per distinct arguments and reloads the result afterwards.
#pragma once

#include <cojob/detail/cache_archive.hpp>
#include <cojob/detail/cache_call.hpp>
#include <cojob/detail/cereal_safe.hpp>
#include <cojob/detail/describe.hpp>
#include <cojob/errors.hpp>

#include <cereal/types/array.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cojob {

/// What an entry records about its computation; given to validation callbacks.
struct entry_metadata {
    std::chrono::system_clock::time_point time{};  ///< when the result was computed
    std::chrono::duration<double> duration{};      ///< how long the computation took
};

/// Decides whether a stored entry may still be used; returning false removes the entry and
/// recomputes (joblib's `cache_validation_callback`).
using validation_callback = std::function<bool(const entry_metadata&)>;

/// A validation callback accepting entries younger than `age` (joblib's `expires_after`).
[[nodiscard]] validation_callback expires_after(std::chrono::duration<double> age);

/// How a `memory` behaves. Meant for designated initializers:
/// `cojob::memory mem{"./cachedir", {.verbose = 0, .compress = 3}};`
struct memory_options {
    /// 0 silent; >= 1 prints "[Memory] Calling ..." for each computation; >= 2 also
    /// "Loading ..." for each hit (joblib's levels; to stdout). Default 1, as joblib.
    int verbose = 1;
    /// "" reads entries with read(2); "r" or "c" maps them (mmap, read-only or private) and
    /// deserializes arrays straight from the mapping. Results are still returned by value.
    std::string mmap_mode{};
    /// zstd level 1-19 for stored results; 0 stores them raw (and mappable). Compressed
    /// entries are always read, never mapped (a warning says so when mmap_mode is set).
    int compress = 0;
    /// Receives each warning (corrupt entry, unwritable directory, ...); default: stderr.
    std::function<void(const std::string&)> on_warning{};
};

/// Per-function settings, the second argument of `memory::cache`.
struct cache_options {
    /// The function's identity in the store; default: its symbol (function pointers) or its
    /// type's name (lambdas, function objects).
    std::string name{};
    /// An explicit code version: when set, it replaces the automatic detection of code
    /// changes, so entries survive rebuilds until the tag changes. See docs/memory.md.
    std::string version{};
    /// Positions (0-based) of arguments that do not count in the key (joblib's `ignore`);
    /// such arguments need not be serializable.
    std::vector<std::size_t> ignore{};
    /// Called on every hit; see `validation_callback`.
    validation_callback validate{};
    /// Overrides `memory_options::verbose` for this function.
    std::optional<int> verbose{};
};

/// What `memory::reduce_size` did.
struct reduce_report {
    std::size_t removed_items = 0;   ///< stored results removed
    std::uint64_t removed_bytes = 0; ///< their size on disk
    std::size_t kept_items = 0;      ///< stored results left
    std::uint64_t kept_bytes = 0;    ///< their size on disk
};

/// A stored result, returned by `cached_function::call_and_shelve`: a small handle that
/// reloads the value on `get()` (joblib's `MemorizedResult`).
///
/// @par Thread safety
/// Distinct handles are independent; `get()` and `clear()` may be called from any thread.
template <class R>
class cached_result {
public:
    /// Loads the value. @throws cojob::error when the entry was removed meanwhile.
    [[nodiscard]] R get() const {
        if (!value_ && cache_) {
            std::optional<R> out;
            if (cache_->load(key_, &load_into, &out)) return std::move(*out);
            detail::shelved_result_gone(cache_->name());
        }
        if (value_) return *value_;
        detail::shelved_result_gone("<unknown>");
    }
    /// Removes the entry from the store (a handle holding the value itself keeps it).
    void clear() const {
        if (cache_) cache_->remove(key_);
    }
    /// The directory of the entry, or "" when the result is not stored.
    [[nodiscard]] std::string path() const { return cache_ ? cache_->entry_path(key_) : std::string(); }

private:
    template <class F>
    friend class cached_function;
    static void load_into(void* context, detail::byte_source& payload) {
        auto& out = *static_cast<std::optional<R>*>(context);
        out.emplace();
        detail::cache_input_archive ar(payload);
        ar(*out);
    }

    std::shared_ptr<detail::function_cache> cache_;
    detail::key128 key_{};
    std::optional<R> value_;  ///< set when the result could not be stored (or caching is off)
};

/// The callable `memory::cache(f)` returns: called like f, it computes f once per distinct
/// arguments and afterwards loads the stored result (joblib's `MemorizedFunc`).
///
/// Arguments count by value: they are serialized with cereal (include the cereal headers for
/// your types) and hashed with XXH3-128 together with the function's identity and code
/// version. The result type must be default-constructible and serializable with cereal.
/// A task that throws stores nothing. Copies share the same store.
///
/// @par Errors
/// Whatever f throws, unchanged; `cojob::error` for an argument that cannot be part of the key
/// (cereal cannot serialize it, or it is a pointer) and is not ignored. Storage problems (corrupt entries, unwritable directories, full disks) never
/// throw: the result is computed and a warning is reported once.
///
/// @par Thread safety
/// Safe to call from any number of threads and processes at once, including inside
/// `parallel` tasks: concurrent callers of one key wait for the first one's result instead of
/// computing it again (an exclusive lock per key, see docs/memory.md).
template <class F>
class cached_function {
    template <class... A>
    using result_of = std::remove_cvref_t<std::invoke_result_t<const F&, A...>>;

public:
    /// The callable it wraps (task reports name it).
    using memoized_callable = F;

    /// Use `memory::cache`.
    cached_function(F f, std::shared_ptr<detail::function_cache> cache) : f_(std::move(f)), cache_(std::move(cache)) {}
    /// An empty callable, to be read back (a task that travels to a worker process).
    cached_function() = default;

    /// A `delayed(cached)(args...)` task travels to worker processes and MPI ranks with its
    /// callable and where its results are stored: a worker computes, stores and loads as this
    /// process would, in the same store (a function cached with a validation callback cannot
    /// travel; warnings print on the worker's standard error). Written by the wire archives.
    template <class Archive>
    void save(Archive& ar) const {
        if constexpr (std::is_pointer_v<F>)
            encode_function(ar, std::bit_cast<std::uintptr_t>(f_));  // the wire's, found through the archive
        else if constexpr (!std::is_empty_v<F>)
            ar(f_);
        ar(cache_ ? cache_->spec() : detail::cache_spec{});
    }
    /// Reads what save() wrote, in a worker.
    template <class Archive>
    void load(Archive& ar) {
        if constexpr (std::is_pointer_v<F>)
            f_ = std::bit_cast<F>(decode_function(ar));
        else if constexpr (!std::is_empty_v<F>)
            ar(f_);
        detail::cache_spec spec;
        ar(spec);
        cache_ = spec.location.empty() ? nullptr : detail::cache_for(spec, detail::facts_of<F>(f_));
    }

    /// Calls f, or loads its stored result for these arguments.
    template <class... A>
        requires std::invocable<const F&, A...>
    result_of<A...> operator()(A&&... args) const {
        return run(false, std::forward<A>(args)...);
    }

    /// Recomputes f and stores the result, whatever is stored (joblib's `call`).
    template <class... A>
        requires std::invocable<const F&, A...>
    result_of<A...> call(A&&... args) const {
        return run(true, std::forward<A>(args)...);
    }

    /// Makes sure the result is stored (computing it if needed) and returns a handle to it
    /// instead of the value (joblib's `call_and_shelve`).
    template <class... A>
        requires std::invocable<const F&, A...>
    cached_result<result_of<A...>> call_and_shelve(A&&... args) const {
        using R = result_of<A...>;
        static_assert(!std::is_void_v<R>, "cojob::cached_function::call_and_shelve: f returns void");
        cached_result<R> ref;
        if (!cache_) {
            ref.value_.emplace(std::invoke(f_, std::forward<A>(args)...));
            return ref;
        }
        ref.cache_ = cache_;
        ref.key_ = key_of(args...);
        if (!cache_->contains(ref.key_)) {
            R value = run(false, std::forward<A>(args)...);
            if (!cache_->contains(ref.key_)) ref.value_.emplace(std::move(value));  // could not be stored
        }
        return ref;
    }

    /// Whether a valid result for these arguments is stored (code version and validation
    /// callback included); computes nothing.
    template <class... A>
        requires std::invocable<const F&, A...>
    [[nodiscard]] bool check_call_in_cache(const A&... args) const {
        return cache_ && cache_->contains(key_of(args...));
    }

    /// Removes every stored result of this function.
    void clear() const {
        if (cache_) cache_->clear();
    }

    /// The wrapped callable.
    [[nodiscard]] const F& function() const noexcept { return f_; }

private:
    template <class... A>
    detail::key128 key_of(const A&... args) const {
        detail::key_hasher h;
        cache_->seed(h);
        detail::byte_sink sink(h);
        detail::cache_output_archive ar(sink);
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (add_to_key<I>(ar, sink, args), ...);
        }(std::index_sequence_for<A...>{});
        sink.flush();
        return h.digest();
    }

    template <std::size_t I, class A>
    void add_to_key(detail::cache_output_archive& ar, detail::byte_sink& sink, const A& arg) const {
        if (cache_->ignores(I)) return;
        decltype(auto) p = detail::as_parameter<typename detail::parameters<F>::type, I>(arg);
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (detail::cache_keyable<P>) {
            detail::key_type<P>(sink);
            ar(p);
        } else {
            detail::unkeyable_argument(I, typeid(P).name());
        }
    }

    template <class... A>
    result_of<A...> run(bool force, A&&... args) const {
        using R = result_of<A...>;
        if (!cache_) return std::invoke(f_, std::forward<A>(args)...);
        static_assert(std::is_void_v<R> || (std::is_default_constructible_v<R> && detail::cache_storable<R>),
                      "cojob::memory: the result type must be default-constructible and serializable with cereal "
                      "(include the cereal/types/... header for it)");
        const detail::key128 key = key_of(args...);
        detail::entry_lock lock;
        for (int look = 0; look < 2 && !force; ++look) {
            if constexpr (std::is_void_v<R>) {
                if (cache_->load(key, [](void*, detail::byte_source&) {}, nullptr)) return;
            } else {
                std::optional<R> out;
                if (cache_->load(key, &cached_result<R>::load_into, &out)) return std::move(*out);
            }
            if (look == 0) lock = cache_->lock(key);  // then look again: another caller may have stored it
            if (!lock.held()) break;
        }
        if (force) lock = cache_->lock(key);
        std::vector<std::string> printed;
        printed.reserve(sizeof...(A));
        (printed.push_back([&] {
            std::string s;
            detail::append_value(s, args);
            return s;
        }()), ...);
        cache_->calling(printed);
        const auto t0 = std::chrono::steady_clock::now();
        // Gathering: a result's large arrays are written to its entry from the result itself.
        detail::byte_sink sink(detail::function_cache::header_bytes, detail::byte_sink::gather);
        if constexpr (std::is_void_v<R>) {
            std::invoke(f_, std::forward<A>(args)...);
            cache_->store(key, sink, std::chrono::steady_clock::now() - t0, printed);
        } else {
            R result = std::invoke(f_, std::forward<A>(args)...);
            const auto took = std::chrono::steady_clock::now() - t0;
            {
                detail::cache_output_archive ar(sink);
                ar(result);
            }
            cache_->store(key, sink, took, printed);
            return result;
        }
    }

    F f_{};
    std::shared_ptr<detail::function_cache> cache_;  ///< null: caching is off (memory without location)
};

namespace detail {
/// A cached function can travel when its callable can: a function pointer is sent by name.
template <class F>
struct cereal_safe<cached_function<F>>
    : std::bool_constant<std::is_pointer_v<F> ? std::is_function_v<std::remove_pointer_t<F>> : cereal_safe<F>::value> {};
}  // namespace detail

/// An on-disk memoization store (joblib's `Memory`).
///
/// Entries live under `<location>/cojob/<function>-<id>/<key>/` as `output.bin` (a checksummed
/// header and the cereal payload, arrays 64-byte aligned) and `metadata.json` (duration, time,
/// printed arguments); docs/memory.md describes the layout. Writes are atomic (temp file +
/// rename); a truncated, corrupt or foreign-version entry is recomputed with one warning.
///
/// @par Thread safety
/// All members are const and safe to call concurrently from threads and processes.
///
/// @par Example
/// @code
/// cojob::memory mem{"./cachedir", {.verbose = 0}};
/// auto costly_cached = mem.cache(costly_compute);
/// std::vector<double> column = costly_cached(data, 2);   // computed, stored
/// column = costly_cached(data, 2);                       // loaded
/// @endcode
class memory {
public:
    /// No location: `cache` returns callables that compute every time and store nothing.
    memory() noexcept = default;
    /// @throws cojob::error for an invalid option (mmap_mode other than "", "r", "c";
    /// compress outside 0-19). The directory is created on first store.
    explicit memory(std::filesystem::path location, memory_options options = {});

    /// Wraps `f` (a function pointer, lambda or function object callable as const).
    /// @throws cojob::error when a declared parameter of f cannot be part of the key (cereal
    /// cannot serialize it, or it is a pointer) and is not in `options.ignore`.
    template <class F>
    [[nodiscard]] cached_function<std::decay_t<F>> cache(F&& f, cache_options options = {}) const {
        using D = std::decay_t<F>;
        std::shared_ptr<detail::function_cache> c;
        if (store_) {
            c = std::make_shared<detail::function_cache>(store_, detail::facts_of<D>(f), std::move(options));
            detail::check_keyable_parameters<D>(*c);
        }
        return cached_function<D>(std::forward<F>(f), std::move(c));
    }

    /// Removes every entry of every function (the location itself stays).
    void clear() const;

    /// Removes entries, least recently used first, until at most `bytes_limit` bytes and
    /// `items_limit` entries remain, and every entry not used for `age_limit` or longer.
    /// Unset limits do not apply. @throws cojob::error for a negative age_limit.
    reduce_report reduce_size(std::optional<std::uint64_t> bytes_limit = {},
                              std::optional<std::size_t> items_limit = {},
                              std::optional<std::chrono::duration<double>> age_limit = {}) const;

    /// The location, or nothing for a memory that caches nothing.
    [[nodiscard]] std::optional<std::filesystem::path> location() const;

private:
    std::shared_ptr<detail::memory_store> store_;
};

}  // namespace cojob
