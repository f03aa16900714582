// src/memory_object.cpp - cojob::memory itself: its options checked, where it stores, clear,
// reduce_size (which entries go when the store is over its limits), and expires_after.
#include <cojob/memory.hpp>

#include "memory_internal.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace cojob {

validation_callback expires_after(std::chrono::duration<double> age) {
    return [age](const entry_metadata& m) {
        return std::chrono::duration<double>(std::chrono::system_clock::now() - m.time) < age;
    };
}

memory::memory(std::filesystem::path location, memory_options options) {
    const std::string& m = options.mmap_mode;
    if (!m.empty() && m != "r" && m != "c")
        throw error("cojob::memory: mmap_mode must be \"\", \"r\" or \"c\", not \"" + m + "\"");
    if (options.compress < 0 || options.compress > 19)
        throw error("cojob::memory: compress must be 0 (off) or a zstd level 1-19, not " +
                    std::to_string(options.compress));
    if (location.empty()) throw error("cojob::memory: empty location (use cojob::memory{} to cache nothing)");
    const bool warn_mixed = !m.empty() && options.compress > 0;
    store_ = std::make_shared<detail::memory_store>(std::move(location), std::move(options));
    if (warn_mixed)
        store_->warn("compress+mmap", "compressed results cannot be memory-mapped: with compress > 0, mmap_mode is "
                                      "ignored and entries are read");
}

std::optional<std::filesystem::path> memory::location() const {
    if (!store_) return std::nullopt;
    return store_->location;
}

void memory::clear() const {
    if (!store_) return;
    detail::remove_tree(store_->root, store_->location.string());
}

reduce_report memory::reduce_size(std::optional<std::uint64_t> bytes_limit, std::optional<std::size_t> items_limit,
                                  std::optional<std::chrono::duration<double>> age_limit) const {
    if (age_limit && age_limit->count() < 0)
        throw error("cojob::memory::reduce_size: age_limit must not be negative");
    reduce_report report;
    if (!store_) return report;
    namespace fs = std::filesystem;
    struct item {
        std::string path;
        std::int64_t used_ns;
        std::uint64_t bytes;
    };
    std::vector<item> items;
    const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    constexpr std::int64_t stale_ns = 3600LL * 1'000'000'000;  // leftovers of crashed writers
    const auto mtime_ns = [](const std::string& p) {
        struct stat st{};
        if (::stat(p.c_str(), &st) != 0) return std::int64_t(0);
        return std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    };
    std::error_code ec;
    for (const auto& fdir : fs::directory_iterator(store_->root, ec)) {
        const std::string fname = fdir.path().filename().string();
        if (fname.rfind(".trash", 0) == 0) {  // an interrupted removal
            if (now_ns - mtime_ns(fdir.path().string()) > stale_ns) fs::remove_all(fdir.path(), ec);
            continue;
        }
        if (!fdir.is_directory(ec)) continue;
        for (const auto& edir : fs::directory_iterator(fdir.path(), ec)) {
            if (!edir.is_directory(ec)) continue;
            const std::string entry = edir.path().string();
            std::uint64_t bytes = 0;
            for (const auto& f : fs::directory_iterator(edir.path(), ec)) {
                const std::string fn = f.path().filename().string();
                if (fn.size() > 4 && fn.compare(fn.size() - 4, 4, ".tmp") == 0 &&
                    now_ns - mtime_ns(f.path().string()) > stale_ns) {
                    fs::remove(f.path(), ec);
                    continue;
                }
                const auto n = f.file_size(ec);
                if (!ec) bytes += n;
            }
            struct stat st{};
            if (::stat((entry + "/output.bin").c_str(), &st) != 0) {
                if (now_ns - mtime_ns(entry) > stale_ns) detail::remove_tree(entry, store_->root);  // a failed store
                continue;
            }
            items.push_back({entry, std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec, bytes});
        }
    }
    std::sort(items.begin(), items.end(), [](const item& a, const item& b) { return a.used_ns < b.used_ns; });
    std::uint64_t total = 0;
    for (const auto& i : items) total += i.bytes;
    std::size_t count = items.size();
    const auto age_ns = age_limit ? static_cast<std::int64_t>(age_limit->count() * 1e9) : std::int64_t(0);
    for (const auto& i : items) {
        const bool too_old = age_limit && now_ns - i.used_ns >= age_ns;
        const bool over = (items_limit && count > *items_limit) || (bytes_limit && total > *bytes_limit);
        if (!too_old && !over) {
            ++report.kept_items;
            report.kept_bytes += i.bytes;
            continue;
        }
        detail::remove_tree(i.path, store_->root);
        --count;
        total -= i.bytes;
        ++report.removed_items;
        report.removed_bytes += i.bytes;
    }
    return report;
}

}  // namespace cojob
