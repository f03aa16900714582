// cojob/detail/cache_call.hpp - what `memory` needs to know about a cached callable (its
// parameter types, where its code is) and the compiled store it talks to.
#pragma once

#include <cojob/detail/cache_archive.hpp>

#include <bit>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace cojob {
struct cache_options;
struct entry_metadata;
}  // namespace cojob

namespace cojob::detail {

/// The declared parameter types (decayed) of a function pointer or of a class with exactly one
/// non-template `operator()`, as a `std::tuple`; `void` when they cannot be known (generic
/// lambdas, overloaded call operators).
template <class F>
struct parameters {
    using type = void;
};
template <class R, class... P>
struct parameters<R (*)(P...)> {
    using type = std::tuple<std::decay_t<P>...>;
};
template <class R, class... P>
struct parameters<R (*)(P...) noexcept> {
    using type = std::tuple<std::decay_t<P>...>;
};
template <class M>
struct member_parameters {
    using type = void;
};
#define COJOB_DETAIL_MEMBER_PARAMETERS(QUALIFIERS)                \
    template <class R, class C, class... P>                       \
    struct member_parameters<R (C::*)(P...) QUALIFIERS> {         \
        using type = std::tuple<std::decay_t<P>...>;              \
    };
COJOB_DETAIL_MEMBER_PARAMETERS()
COJOB_DETAIL_MEMBER_PARAMETERS(const)
COJOB_DETAIL_MEMBER_PARAMETERS(noexcept)
COJOB_DETAIL_MEMBER_PARAMETERS(const noexcept)
COJOB_DETAIL_MEMBER_PARAMETERS(&)
COJOB_DETAIL_MEMBER_PARAMETERS(const&)
#undef COJOB_DETAIL_MEMBER_PARAMETERS
template <class F>
    requires std::is_class_v<F> && requires { &F::operator(); }
struct parameters<F> : member_parameters<decltype(&F::operator())> {};

/// Argument `I` as the parameter it will bind to, so that `f(1)` and `f(1L)` of an
/// `f(long)` share a key: the argument itself when its type is the parameter's (no copy), a
/// converted copy otherwise.
template <class Params, std::size_t I, class A>
decltype(auto) as_parameter(const A& a) {
    if constexpr (std::is_void_v<Params>) {
        return (a);
    } else if constexpr (I >= std::tuple_size_v<Params>) {
        return (a);
    } else {
        using P = std::tuple_element_t<I, Params>;
        if constexpr (std::is_same_v<P, A> || !std::is_constructible_v<P, const A&>)
            return (a);
        else
            return P(a);
    }
}

/// Where a callable's code is, for its identity and code version.
struct callable_facts {
    const void* code = nullptr;    ///< its machine code: a function pointer, a lambda's operator()
    const void* anchor = nullptr;  ///< some code of the module it was compiled into
    const char* type_name = "";    ///< `typeid(F).name()`
};

template <class F>
void module_anchor() {}

/// The address of a non-virtual member function, read from its Itanium C++ ABI representation
/// ({pointer, this-adjustment}, pointer odd for virtual functions); null elsewhere.
template <class M>
const void* member_code(M pmf) noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if constexpr (sizeof(M) == 2 * sizeof(std::uintptr_t)) {
        struct itanium_pmf {
            std::uintptr_t ptr;
            std::ptrdiff_t adj;
        };
        const auto raw = std::bit_cast<itanium_pmf>(pmf);
        if (raw.ptr & 1u) return nullptr;
        return reinterpret_cast<const void*>(raw.ptr);
    }
#endif
    (void)pmf;
    return nullptr;
}

template <class F>
callable_facts facts_of(const F& f) noexcept {
    callable_facts c;
    c.type_name = typeid(F).name();
    c.anchor = reinterpret_cast<const void*>(std::bit_cast<std::uintptr_t>(&module_anchor<F>));
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
        c.code = reinterpret_cast<const void*>(std::bit_cast<std::uintptr_t>(f));
    } else if constexpr (std::is_class_v<F> && requires { &F::operator(); }) {
        c.code = member_code(&F::operator());
    }
    return c;
}

/// Holds the lock of one key (a byte-range lock on its function's lock file) until destroyed.
class entry_lock {
public:
    entry_lock() noexcept = default;
    explicit entry_lock(int fd) noexcept : fd_(fd) {}
    entry_lock(entry_lock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    entry_lock& operator=(entry_lock&& o) noexcept {
        std::swap(fd_, o.fd_);  // the old lock goes with `o`
        return *this;
    }
    ~entry_lock();
    [[nodiscard]] bool held() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

class memory_store;

/// What a worker process needs to make a cached function's share of the store again: the
/// store's location and options, and the function's (a `cached_function` sent with a task).
struct cache_spec {
    std::string location;  ///< empty: caching is off
    int verbose = 1;
    std::string mmap_mode;
    int compress = 0;
    std::string name, version;
    std::vector<std::uint64_t> ignore;
    int function_verbose = -1;  ///< cache_options::verbose; -1: unset

    auto operator<=>(const cache_spec&) const = default;

    template <class Archive>
    void serialize(Archive& ar) {
        ar(location, verbose, mmap_mode, compress, name, version, ignore, function_verbose);
    }
};

/// One cached function's share of the store (compiled, src/memory.cpp): its identity, code
/// version, directory and options. Thread-safe.
class function_cache {
public:
    /// The bytes in front of a stored payload (an entry's header); `byte_sink` reserves them.
    static constexpr std::size_t header_bytes = 128;
    using loader = void (*)(void* context, byte_source& payload);

    function_cache(std::shared_ptr<memory_store> store, const callable_facts& facts, cache_options options);
    ~function_cache();
    function_cache(const function_cache&) = delete;
    function_cache& operator=(const function_cache&) = delete;

    /// Writes the identity and code version into a key being built.
    void seed(key_hasher& h) const noexcept;
    [[nodiscard]] bool ignores(std::size_t position) const noexcept;

    /// Loads entry `key` through `load`; false on a miss, or when the entry is invalid (then
    /// removed and reported once) or refused by the validation callback.
    bool load(const key128& key, loader load, void* context);
    /// Whether a valid entry exists (header, checksum, validation callback).
    [[nodiscard]] bool contains(const key128& key);
    /// Serializes computations of `key` across threads and processes (not held if the
    /// directory cannot be written).
    [[nodiscard]] entry_lock lock(const key128& key);
    /// Verbose "[Memory] Calling ..." lines, before the computation.
    void calling(const std::vector<std::string>& arguments) const;
    /// Writes the sink's bytes (header room + payload; its gathered arrays must still be alive)
    /// as entry `key`, with its metadata; never throws for I/O errors (reported once, the call
    /// still returns its result).
    void store(const key128& key, byte_sink& sink, std::chrono::duration<double> took,
               const std::vector<std::string>& arguments);
    void remove(const key128& key);
    void clear();

    /// Short name (`costly_compute`), for messages.
    [[nodiscard]] const std::string& name() const noexcept;
    /// Where code changes are detected from, e.g. "machine code of costly_compute(...), 312 bytes".
    [[nodiscard]] const std::string& code_source() const noexcept;
    /// The directory of entry `key` (exists only once stored).
    [[nodiscard]] std::string entry_path(const key128& key) const;
    /// What a worker process makes it again from. @throws cojob::error when a validation
    /// callback is set: a callback cannot travel to another process.
    [[nodiscard]] cache_spec spec() const;

private:
    struct state;
    std::unique_ptr<state> s_;
};

/// The share of the store `spec` names, for the callable `facts` describes (a worker decoding a
/// `cached_function`): made once per process and spec, then shared by every task naming it.
[[nodiscard]] std::shared_ptr<function_cache> cache_for(const cache_spec& spec, const callable_facts& facts);

/// Throws cojob::error for an argument that cereal cannot serialize and that is not ignored.
[[noreturn]] void unkeyable_argument(std::size_t position, const char* type_name);
/// Refuses, when the cached function is made, a declared parameter of F that cannot be part of
/// a key (cereal cannot write it, or it is a pointer) and is not ignored, naming it. Callables
/// whose parameters cannot be known (generic lambdas) are checked argument by argument per call.
template <class F>
void check_keyable_parameters(const function_cache& cache) {
    using Params = typename parameters<F>::type;
    if constexpr (!std::is_void_v<Params>) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            const auto check = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
                using P = std::tuple_element_t<J, Params>;
                if (!cache_keyable<P> && !cache.ignores(J)) unkeyable_argument(J, typeid(P).name());
            };
            (check(std::integral_constant<std::size_t, I>{}), ...);
        }(std::make_index_sequence<std::tuple_size_v<Params>>{});
    }
}
/// Throws cojob::error: a shelved result is no longer in the cache.
[[noreturn]] void shelved_result_gone(const std::string& name);
/// The type's name, as written in a key (mangled, stable across builds of one compiler).
template <class T>
void key_type(byte_sink& sink) {
    const char* n = typeid(T).name();
    const std::uint32_t length = static_cast<std::uint32_t>(std::char_traits<char>::length(n));
    sink.write(&length, sizeof length);
    sink.write(n, length);
}

}  // namespace cojob::detail
