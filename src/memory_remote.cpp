// src/memory_remote.cpp - a cached function that travels with a task to a worker process or
// rank: the worker makes the function's share of the same store again, once per spec.
#include <cojob/memory.hpp>

#include "memory_internal.hpp"

#include <map>
#include <mutex>
#include <tuple>

namespace cojob::detail {

std::shared_ptr<function_cache> cache_for(const cache_spec& spec, const callable_facts& facts) {
    using key_type = std::tuple<cache_spec, const void*, std::string>;
    const key_type key{spec, facts.code, facts.type_name};
    static std::mutex mutex;
    static std::map<key_type, std::shared_ptr<function_cache>> made;  // a worker decodes one per task
    const std::lock_guard lock(mutex);
    if (auto it = made.find(key); it != made.end()) return it->second;
    memory_options m;
    m.verbose = spec.verbose;
    m.mmap_mode = spec.mmap_mode;
    m.compress = spec.compress;
    cache_options c;
    c.name = spec.name;
    c.version = spec.version;
    c.ignore.assign(spec.ignore.begin(), spec.ignore.end());
    if (spec.function_verbose >= 0) c.verbose = spec.function_verbose;
    auto store = std::make_shared<memory_store>(spec.location, std::move(m));
    auto cache = std::make_shared<function_cache>(std::move(store), facts, std::move(c));
    made.emplace(key, cache);
    return cache;
}

}  // namespace cojob::detail
