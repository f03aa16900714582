// tests/process/children.hpp - what the process tests check after a fault: the children of
// this process (worker processes alive, or exited and not reaped) and its open descriptors.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace children {

/// Whether a /proc/<pid>/stat line is that of the llvm-symbolizer a clang sanitizer starts as a
/// child of the program (kit.cpp): not one of cojob's.
inline bool is_symbolizer(const std::string& stat_line) {
    return stat_line.find("(llvm-symbolizer") != std::string::npos;
}

/// This process's children by state: all of them, and the zombies among them.
struct counts {
    int all = 0;
    int zombies = 0;
};

inline counts of_this_process() {
    counts c;
    const int self = static_cast<int>(::getpid());
    DIR* d = ::opendir("/proc");
    if (!d) return c;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
        std::string line;
        if (!std::getline(f, line)) continue;
        const auto close = line.rfind(')');  // the command name may hold spaces and parentheses
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        int ppid = 0;
        rest >> state >> ppid;
        if (ppid != self || is_symbolizer(line)) continue;
        ++c.all;
        c.zombies += state == 'Z';
    }
    ::closedir(d);
    return c;
}

inline int zombies() { return of_this_process().zombies; }
inline int all() { return of_this_process().all; }

/// Descriptors this process has open.
inline int open_descriptors() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return -1;
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    return n - 1;  // the directory's own descriptor
}

}  // namespace children
