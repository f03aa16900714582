// src/memory.cpp - the store behind one cojob::memory object, and each cached function's share
// of it (identity, code version, directory, load/lock/store). The object's own members are in
// memory_object.cpp.
#include <cojob/memory.hpp>

#include "memory_internal.hpp"
#include "pieces.hpp"
#include "util.hpp"

#include <cojob/detail/describe.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace cojob::detail {

namespace {

/// `(anonymous namespace)::costly_compute(std::vector<double> const&, int)` -> `costly_compute`:
/// cut at the function's parameter list (outside braces and angle brackets). The parameter lists
/// of enclosing functions go (`f(int)::{lambda(int)#1}::operator()(int) const` ->
/// `f::{lambda(int)#1}`), lambdas keep their braces, call operators lose their `::operator`.
std::string short_name(std::string name) {
    static const std::string anonymous = "(anonymous namespace)::";
    for (auto at = name.find(anonymous); at != std::string::npos; at = name.find(anonymous))
        name.erase(at, anonymous.size());
    int depth = 0;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        if (c == '{' || c == '<') ++depth;
        if (c == '}' || c == '>') --depth;
        if (c != '(' || depth != 0 || i == 0) continue;
        std::size_t close = i;
        for (int parens = 0; close < name.size(); ++close) {
            if (name[close] == '(') ++parens;
            if (name[close] == ')' && --parens == 0) break;
        }
        if (close + 2 < name.size() && name.compare(close + 1, 2, "::") == 0) {
            name.erase(i, close + 1 - i);  // an enclosing function's parameters
            --i;
            continue;
        }
        name.resize(i);
        break;
    }
    static const std::string call_operator = "::operator";
    if (name.size() > call_operator.size() &&
        name.compare(name.size() - call_operator.size(), call_operator.size(), call_operator) == 0)
        name.resize(name.size() - call_operator.size());
    return name;
}

/// A directory name from a function name: `ns::f` -> `ns.f`, unsafe characters -> '_'.
std::string directory_name(const std::string& name) {
    std::string out;
    for (std::size_t i = 0; i < name.size() && out.size() < 64; ++i) {
        const char c = name[i];
        if (c == ':' && i + 1 < name.size() && name[i + 1] == ':') {
            out += '.';
            ++i;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                   c == '.') {
            out += c;
        } else {
            out += '_';
        }
    }
    if (out.empty() || out[0] == '.') out.insert(out.begin(), 'f');
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string errno_text(int e) { return std::strerror(e); }

}  // namespace

// ---- memory_store ------------------------------------------------------------------------------

memory_store::memory_store(std::filesystem::path loc, memory_options opts)
    : location(std::move(loc)), root((location / "cojob").string()), options(std::move(opts)) {}

void memory_store::warn(const std::string& topic, const std::string& message) {
    {
        std::lock_guard lock(mutex_);
        if (!warned_.insert(topic).second) return;
    }
    if (options.on_warning) {
        options.on_warning(message);
    } else {
        const std::string line = "cojob::memory warning: " + message + "\n";
        std::fwrite(line.data(), 1, line.size(), stderr);
    }
}

void memory_store::print(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

bool memory_store::ensure_root() {
    std::error_code ec;
    std::filesystem::create_directories(location, ec);
    int e = make_directory(location.string());
    if (e == 0) {
        const std::string ignore = (location / ".gitignore").string();
        if (::access(ignore.c_str(), F_OK) != 0) (void)write_atomically(ignore, "*\n");
        e = make_directory(root);
    }
    if (e == 0) return true;
    warn("unwritable", "cannot create the cache directory " + root + " (" + errno_text(e) +
                           "); results are computed without caching");
    return false;
}

// ---- function_cache ----------------------------------------------------------------------------

struct function_cache::state {
    std::shared_ptr<memory_store> store;
    std::string name;          // short, for messages
    std::string identity;      // full, hashed
    std::string dir;           // <root>/<name>-<id>
    key128 identity_hash{};
    key128 code_version{};
    std::string code_source;
    bool code_detected = false;
    cache_options options;
    int verbose = 0;
    bool map = false;

    [[nodiscard]] std::string entry_dir(const key128& k) const { return dir + "/" + hex(k); }

    /// The record of what the code version was derived from, next to the entries.
    [[nodiscard]] std::string func_code_json() const {
        return "{\n  \"function\": \"" + json_escape(identity) + "\",\n  \"code_version\": \"" + hex(code_version) +
               "\",\n  \"code_source\": \"" + json_escape(code_source) + "\",\n  \"format\": " +
               std::to_string(entry_format) + "\n}\n";
    }

    /// Creates the function's directory (and the root) when missing; false after a warning.
    bool ensure_dir() {
        int e = make_directory(dir);
        if (e == ENOENT) {
            if (!store->ensure_root()) return false;
            e = make_directory(dir);
        }
        if (e != 0) {
            store->warn("unwritable", "cannot create the cache directory " + dir + " (" + errno_text(e) +
                                          "); results are computed without caching");
            return false;
        }
        const std::string record = dir + "/func_code.json";
        if (::access(record.c_str(), F_OK) != 0) (void)write_atomically(record, func_code_json());
        return true;
    }

    /// Creates the entry's directory; false after a warning.
    bool ensure_entry_dir(const std::string& entry) {
        int e = make_directory(entry);
        if (e == ENOENT) {
            if (!ensure_dir()) return false;
            e = make_directory(entry);
        }
        if (e != 0) {
            store->warn("unwritable", "cannot create the cache directory " + entry + " (" + errno_text(e) +
                                          "); results are computed without caching");
            return false;
        }
        return true;
    }

    /// Entries stored by another code version are never found (the version is in the key);
    /// they are removed the first time the new version is seen, as joblib does.
    void drop_other_versions() {
        const std::string text = read_file(dir + "/func_code.json");
        if (text.empty() || text.find("\"code_version\": \"" + hex(code_version) + "\"") != std::string::npos) return;
        if (verbose >= 1)
            memory_store::print("[Memory] Function " + name + " has changed (code version " + code_source +
                                "); removing its stored results\n");
        remove_tree(dir, store->root);
    }
};

function_cache::function_cache(std::shared_ptr<memory_store> store, const callable_facts& facts, cache_options options)
    : s_(std::make_unique<state>()) {
    s_->store = std::move(store);
    s_->options = std::move(options);
    s_->verbose = s_->options.verbose.value_or(s_->store->options.verbose);
    s_->map = !s_->store->options.mmap_mode.empty();
    const code_facts code = inspect_code(facts);
    if (!s_->options.name.empty()) {
        s_->identity = s_->options.name;
    } else if (!code.symbol.empty()) {
        s_->identity = code.symbol;
    } else {
        s_->identity = demangle(facts.type_name);
        if (facts.code && !code.module.empty()) {  // a function without symbol: where it is
            char offset[32];
            std::snprintf(offset, sizeof offset, "+0x%llx", static_cast<unsigned long long>(code.module_offset));
            s_->identity += "@" + std::filesystem::path(code.module).filename().string() + offset;
        }
    }
    s_->name = s_->options.name.empty() ? short_name(s_->identity) : s_->options.name;
    s_->identity_hash = hash128(s_->identity);
    if (!s_->options.version.empty()) {
        s_->code_version = hash128("version-tag:" + s_->options.version);
        s_->code_source = "version tag '" + s_->options.version + "'";
        s_->code_detected = true;
    } else {
        s_->code_version = code.version;
        s_->code_source = code.source;
        s_->code_detected = code.detected;
        if (!code.detected)
            s_->store->warn("undetectable:" + s_->identity,
                            "cannot detect code changes of " + s_->name + ": found " + code.source +
                                "; set cache_options::version to invalidate its results by hand");
    }
    s_->dir = s_->store->root + "/" + directory_name(s_->name) + "-" + hex(s_->identity_hash).substr(16);
    s_->drop_other_versions();
}

function_cache::~function_cache() = default;

void function_cache::seed(key_hasher& h) const noexcept {
    h.update(&s_->identity_hash, sizeof s_->identity_hash);
    h.update(&s_->code_version, sizeof s_->code_version);
}

bool function_cache::ignores(std::size_t position) const noexcept {
    const auto& ig = s_->options.ignore;
    return std::find(ig.begin(), ig.end(), position) != ig.end();
}

bool function_cache::load(const key128& key, loader load, void* context) {
    const std::string entry = s_->entry_dir(key);
    const std::string path = entry + "/output.bin";
    entry_file file;
    const auto status = file.open(path, key, s_->map);
    if (status == entry_file::status::missing) return false;
    std::string why;
    if (status == entry_file::status::ok) {
        const auto& h = file.header();
        if (s_->options.validate) {
            entry_metadata meta;
            meta.time = std::chrono::system_clock::time_point(
                std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(h.time_ns)));
            meta.duration = std::chrono::nanoseconds(h.duration_ns);
            if (!s_->options.validate(meta)) {
                if (s_->verbose >= 2) memory_store::print("[Memory] Result of " + s_->name + " expired; recomputing\n");
                remove_tree(entry, s_->store->root);
                return false;
            }
        }
        if (!load) return true;  // contains(): checked, not loaded
        try {
            byte_source source(file.payload(), file.payload() + file.payload_size(), header_bytes, file.layout());
            load(context, source);
            if (!source.at_end()) throw cojob::error("trailing bytes");
            file.touch();
            if (s_->verbose >= 2) {
                const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - s_->store->created).count();
                char buf[64];
                std::snprintf(buf, sizeof buf, "[Memory]%.1fs, %.1fmin    : Loading ", t, t / 60.0);
                memory_store::print(buf + s_->name + "...\n");
            }
            return true;
        } catch (const std::exception& e) {
            why = std::string("cannot be deserialized (") + e.what() + ")";
        }
    } else {
        why = file.why();
    }
    s_->store->warn("corrupt:" + path, "cache entry " + path + " " + why + "; recomputing it");
    return false;
}

bool function_cache::contains(const key128& key) { return load(key, nullptr, nullptr); }

entry_lock function_cache::lock(const key128& key) {
    // One lock file per function, one byte of it per key: an open file description lock
    // (F_OFD_SETLKW) on byte `key % 2^31` excludes other threads (each opens its own
    // description) and other processes, and the kernel drops it when the descriptor is closed,
    // also when the holder dies. No file is created per key, so a miss costs one inode less than
    // a lock file per entry would. Two keys on the same byte only wait for each other.
    const std::string path = s_->dir + "/lock";
    for (int attempt = 0; attempt < 2; ++attempt) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            struct flock range{};
            range.l_type = F_WRLCK;
            range.l_whence = SEEK_SET;
            range.l_start = static_cast<off_t>(key.low & 0x7fff'ffffu);
            range.l_len = 1;
            int r = 0;
            while ((r = ::fcntl(fd, F_OFD_SETLKW, &range)) != 0 && errno == EINTR) {
            }
            if (r == 0) return entry_lock(fd);
            ::close(fd);  // no locks here (some network file systems): compute without waiting
            return {};
        }
        if ((errno != ENOENT && errno != ENOTDIR) || !s_->ensure_dir()) break;
    }
    return {};
}

entry_lock::~entry_lock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
}

void function_cache::calling(const std::vector<std::string>& arguments) const {
    if (s_->verbose < 1) return;
    std::string text(80, '_');
    text += "\n[Memory] Calling " + s_->identity + "...\n" + s_->name + "(";
    for (std::size_t i = 0; i < arguments.size(); ++i) text += (i ? ", " : "") + arguments[i];
    text += ")\n";
    memory_store::print(text);
}

void function_cache::store(const key128& key, byte_sink& sink, std::chrono::duration<double> took,
                           const std::vector<std::string>& arguments) {
    const auto now = std::chrono::system_clock::now();
    if (s_->verbose >= 1) {
        const std::string tail = s_->name + " - " + format_duration(took.count());
        memory_store::print(std::string(tail.size() < 80 ? 80 - tail.size() : 0, '_') + tail + "\n");
    }
    const std::string packed = seal_entry(sink, key, s_->store->options.compress, now, took);
    const std::string entry = s_->entry_dir(key);
    if (!s_->ensure_entry_dir(entry)) return;  // warned
    // Uncompressed, the result's large arrays go to the file straight from the result.
    const std::vector<std::string_view> pieces = packed.empty() ? pieces_of(sink) : std::vector<std::string_view>{packed};
    const std::size_t output_bytes = packed.empty() ? sink.size() : packed.size();
    const int e = write_atomically(entry + "/output.bin", pieces);
    if (e != 0) {
        s_->store->warn("unwritable", "cannot store a result in " + entry + " (" + errno_text(e) +
                                          "); results are computed without caching");
        return;
    }
    stamp_use(entry + "/output.bin");
    std::string meta = "{\n  \"function\": \"" + json_escape(s_->identity) + "\",\n  \"key\": \"" + hex(key) + "\",\n";
    char numbers[160];
    std::snprintf(numbers, sizeof numbers, "  \"duration\": %.6f,\n  \"time\": %.6f,\n  \"output_bytes\": %zu,\n",
                  took.count(), std::chrono::duration<double>(now.time_since_epoch()).count(), output_bytes);
    meta += numbers;
    meta += "  \"compressed\": " + std::string(s_->store->options.compress > 0 ? "true" : "false") + ",\n";
    meta += "  \"code_version\": \"" + hex(s_->code_version) + "\",\n  \"input_args\": [";
    for (std::size_t i = 0; i < arguments.size(); ++i) meta += (i ? ", \"" : "\"") + json_escape(arguments[i]) + "\"";
    meta += "]\n}\n";
    (void)write_atomically(entry + "/metadata.json", meta);
}

void function_cache::remove(const key128& key) { remove_tree(s_->entry_dir(key), s_->store->root); }

void function_cache::clear() { remove_tree(s_->dir, s_->store->root); }

const std::string& function_cache::name() const noexcept { return s_->name; }
const std::string& function_cache::code_source() const noexcept { return s_->code_source; }
std::string function_cache::entry_path(const key128& key) const { return s_->entry_dir(key); }

cache_spec function_cache::spec() const {
    if (s_->options.validate)
        throw cojob::error("cojob::memory: " + s_->name + " has a validation callback, which cannot travel to a worker "
                           "process; cache it without one to call it from backend=processes or mpi");
    const memory_options& m = s_->store->options;
    cache_spec c{s_->store->location.string(), m.verbose, m.mmap_mode, m.compress, s_->options.name,
                 s_->options.version, {}, s_->options.verbose.value_or(-1)};
    c.ignore.assign(s_->options.ignore.begin(), s_->options.ignore.end());
    return c;
}

void unkeyable_argument(std::size_t position, const char* type_name) {
    throw cojob::error("cojob::memory: argument " + std::to_string(position) + " (" + demangle(type_name) +
                       ") cannot be part of a cache key: cereal cannot serialize it, or it is a pointer (keys are "
                       "made of values); give it a serialize function, pass the value, or list its position in "
                       "cache_options::ignore");
}

void shelved_result_gone(const std::string& name) {
    throw cojob::error("cojob::memory: the shelved result of " + name + " is no longer in the cache");
}

}  // namespace cojob::detail
