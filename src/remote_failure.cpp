// src/remote_failure.cpp - a task's failure as it crosses a process boundary: written in the
// worker (its exception's type, message, function, arguments, pid, host and time), read in the
// parent, and rebuilt there as the original exception type where cojob can make one.
#include "util.hpp"
#include "wire.hpp"
#include "worker.hpp"

#include <cojob/errors.hpp>

#include <cxxabi.h>

#include <ctime>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <unordered_map>

namespace cojob::detail {

std::string local_time_text() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&now, &tm);
    char buf[64] = {};
    std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
    return buf;
}

void encode_current_failure(wire_out& out, std::size_t index, const std::string& function,
                            const std::string& arguments) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    std::string mangled = t ? t->name() : "";
    std::string type, message;
    describe_exception(std::current_exception(), type, message);
    out(std::uint8_t{1}, static_cast<std::uint64_t>(index), mangled, type, message, function, arguments,
        static_cast<std::int32_t>(current_pid()), host_name(), local_time_text());
}

void decode_failure(wire_in& in, std::string& mangled_type, task_failure& f) {
    std::uint64_t index = 0;
    std::int32_t pid = 0;
    in(index, mangled_type, f.exception, f.message, f.function, f.arguments, pid, f.host, f.time);
    f.index = static_cast<std::size_t>(index);
    f.pid = pid;
    if (mangled_type == typeid(memory_limit_reached).name()) {  // a rank under its memory limit
        f.kind = failure_kind::worker_died;
        f.oom_suspected = true;
    }
}

namespace {

using factory = std::exception_ptr (*)(const std::string&);

struct factory_table {
    factory_table();
    std::mutex mutex;
    std::unordered_map<std::string, factory> by_type;
};

template <class E>
void add(std::unordered_map<std::string, factory>& m) {
    m.emplace(typeid(E).name(), [](const std::string& msg) { return std::make_exception_ptr(E(msg)); });
}

factory_table::factory_table() {
    auto& m = by_type;
    add<std::logic_error>(m);
    add<std::domain_error>(m);
    add<std::invalid_argument>(m);
    add<std::length_error>(m);
    add<std::out_of_range>(m);
    add<std::runtime_error>(m);
    add<std::range_error>(m);
    add<std::overflow_error>(m);
    add<std::underflow_error>(m);
    add<cojob::error>(m);
    add<cojob::remote_error>(m);
    add<cojob::worker_died>(m);
    add<cojob::timeout_error>(m);
    add<cojob::cancelled>(m);
    add<cojob::decode_error>(m);
    m.emplace(typeid(std::bad_alloc).name(), [](const std::string&) { return std::make_exception_ptr(std::bad_alloc()); });
    m.emplace(typeid(memory_limit_reached).name(),
              [](const std::string& msg) { return std::make_exception_ptr(cojob::worker_died(msg)); });
}

factory_table& factories() {
    static factory_table t;
    return t;
}

}  // namespace

std::exception_ptr rebuild_exception(const std::string& mangled_type, const task_failure& facts) {
    auto& t = factories();
    factory make = nullptr;
    {
        std::lock_guard lock(t.mutex);
        if (auto it = t.by_type.find(mangled_type); it != t.by_type.end()) make = it->second;
    }
    const std::string report = facts.report();
    if (make) return make(facts.message + "\n\n" + report);
    return std::make_exception_ptr(remote_error(facts.exception + (facts.message.empty() ? "" : ": " + facts.message) +
                                                "\n\n" + report));
}

void register_exception_factory(const std::type_info& type, std::exception_ptr (*make)(const std::string& message)) {
    auto& t = factories();
    std::lock_guard lock(t.mutex);
    t.by_type[type.name()] = make;
}

}  // namespace cojob::detail
