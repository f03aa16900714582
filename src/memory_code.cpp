// src/memory_code.cpp - a cached function's identity and code version: its symbol (dynamic
// symbol table, else the ELF .symtab of its file) and a hash of its machine code; the XXH3
// helpers the rest of memory uses.
#include <cojob/detail/cache_archive.hpp>

#include "memory_internal.hpp"

#include <cojob/detail/describe.hpp>
#include <cojob/errors.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace cojob::detail {

// ---- XXH3 ----------------------------------------------------------------------------------------

key_hasher::key_hasher() : state_(XXH3_createState()) {
    if (!state_) throw std::bad_alloc();
    XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}

key_hasher::~key_hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void key_hasher::update(const void* data, std::size_t size) noexcept {
    XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}

key128 key_hasher::digest() const noexcept {
    const XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
    return {h.low64, h.high64};
}

void byte_source::truncated() { throw cojob::error("cojob: a stored value is truncated (its bytes end before the value does)"); }

void byte_source::implausible_count(std::uint64_t count, std::size_t left) {
    throw cojob::error("cojob: a stored value is damaged (a container claims " + std::to_string(count) +
                       " elements with only " + std::to_string(left) + " bytes after it)");
}

key128 hash128(std::string_view bytes) noexcept {
    const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
    return {h.low64, h.high64};
}

std::uint64_t hash64(const void* data, std::size_t size) noexcept { return XXH3_64bits(data, size); }

std::string hex(const key128& k) {
    // On every hit (the entry's path): by hand, snprintf cost ~7% of a hit.
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(32, '0');
    for (int i = 0; i < 16; ++i) {
        out[static_cast<std::size_t>(15 - i)] = digits[(k.high >> (4 * i)) & 0xf];
        out[static_cast<std::size_t>(31 - i)] = digits[(k.low >> (4 * i)) & 0xf];
    }
    return out;
}

// ---- modules and symbols -------------------------------------------------------------------------

namespace {

struct elf_segment {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    unsigned flags = 0;  // PF_R | PF_W | PF_X
};

struct module_info {
    bool found = false;
    std::uintptr_t bias = 0;    // load bias: run-time address minus ELF address
    std::string path;           // the file, "/proc/self/exe" for the program itself
    std::vector<elf_segment> segments;
    std::string build_id;       // hex, "" when the module has none
};

struct module_query {
    std::uintptr_t address;
    module_info* out;
};

std::string build_id_of(const dl_phdr_info* info, const ElfW(Phdr)& ph) {
    const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const auto* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        ElfW(Nhdr) note;
        std::memcpy(&note, p, sizeof note);
        const auto* name = p + sizeof note;
        const auto* desc = name + ((note.n_namesz + 3u) & ~3u);
        const auto* next = desc + ((note.n_descsz + 3u) & ~3u);
        if (next > end) break;
        if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
            std::string out;
            char byte[3];
            for (unsigned i = 0; i < note.n_descsz; ++i) {
                std::snprintf(byte, sizeof byte, "%02x", desc[i]);
                out += byte;
            }
            return out;
        }
        p = next;
    }
    return {};
}

int find_module(dl_phdr_info* info, std::size_t, void* data) {
    auto& q = *static_cast<module_query*>(data);
    bool contains = false;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        const std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
        if (q.address >= begin && q.address < begin + ph.p_memsz) contains = true;
    }
    if (!contains) return 0;
    module_info& m = *q.out;
    m.found = true;
    m.bias = info->dlpi_addr;
    m.path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_LOAD)
            m.segments.push_back({info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz, ph.p_flags});
        else if (ph.p_type == PT_NOTE && m.build_id.empty())
            m.build_id = build_id_of(info, ph);
    }
    return 1;
}

module_info module_of(const void* address) {
    module_info m;
    module_query q{reinterpret_cast<std::uintptr_t>(address), &m};
    dl_iterate_phdr(&find_module, &q);
    return m;
}

struct symbol {
    std::string mangled;
    std::uintptr_t start = 0;  // run-time address
    std::size_t size = 0;
};

/// The function symbol containing `address`, from the module file's .symtab (which also holds
/// local symbols: static functions, lambdas' call operators), else its .dynsym.
std::optional<symbol> symbol_from_file(const module_info& m, std::uintptr_t address) {
    const int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    struct stat st{};
    void* map = MAP_FAILED;
    if (::fstat(fd, &st) == 0 && st.st_size > static_cast<off_t>(sizeof(ElfW(Ehdr))))
        map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) return std::nullopt;
    const auto size = static_cast<std::size_t>(st.st_size);
    const auto* base = static_cast<const unsigned char*>(map);
    std::optional<symbol> found;
    const auto in_file = [&](std::uint64_t off, std::uint64_t len) { return off <= size && len <= size - off; };

    ElfW(Ehdr) eh;
    std::memcpy(&eh, base, sizeof eh);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
        eh.e_shentsize == sizeof(ElfW(Shdr)) && in_file(eh.e_shoff, std::uint64_t(eh.e_shnum) * sizeof(ElfW(Shdr)))) {
        std::vector<ElfW(Shdr)> sh(eh.e_shnum);
        std::memcpy(sh.data(), base + eh.e_shoff, sh.size() * sizeof(ElfW(Shdr)));
        const std::uintptr_t wanted = address - m.bias;
        for (const std::uint32_t kind : {std::uint32_t(SHT_SYMTAB), std::uint32_t(SHT_DYNSYM)}) {
            for (const auto& s : sh) {
                if (s.sh_type != kind || s.sh_entsize != sizeof(ElfW(Sym)) || s.sh_link >= sh.size()) continue;
                const auto& strtab = sh[s.sh_link];
                if (!in_file(s.sh_offset, s.sh_size) || !in_file(strtab.sh_offset, strtab.sh_size)) continue;
                const std::size_t count = s.sh_size / sizeof(ElfW(Sym));
                for (std::size_t i = 0; i < count && !found; ++i) {
                    ElfW(Sym) sym;
                    std::memcpy(&sym, base + s.sh_offset + i * sizeof sym, sizeof sym);
                    if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_size == 0 || sym.st_shndx == SHN_UNDEF) continue;
                    if (wanted < sym.st_value || wanted >= sym.st_value + sym.st_size) continue;
                    if (sym.st_name >= strtab.sh_size) continue;
                    const char* name = reinterpret_cast<const char*>(base + strtab.sh_offset + sym.st_name);
                    const std::size_t max = strtab.sh_size - sym.st_name;
                    found = symbol{std::string(name, strnlen(name, max)), m.bias + sym.st_value, sym.st_size};
                }
            }
            if (found) break;
        }
    }
    ::munmap(map, size);
    return found;
}

std::optional<symbol> symbol_of(const void* address, const module_info& m) {
    Dl_info info{};
    void* extra = nullptr;
    const int found = dladdr1(address, &info, &extra, RTLD_DL_SYMENT);
    const auto* sym = static_cast<const ElfW(Sym)*>(extra);
    if (found != 0 && sym && info.dli_sname &&
        info.dli_saddr && sym->st_size > 0 && ELF64_ST_TYPE(sym->st_info) == STT_FUNC) {
        const auto start = reinterpret_cast<std::uintptr_t>(info.dli_saddr);
        const auto at = reinterpret_cast<std::uintptr_t>(address);
        if (at >= start && at < start + sym->st_size) return symbol{info.dli_sname, start, sym->st_size};
    }
    return symbol_from_file(m, reinterpret_cast<std::uintptr_t>(address));
}

const elf_segment* segment_of(const module_info& m, std::uintptr_t address) {
    for (const auto& s : m.segments)
        if (address >= s.begin && address < s.end) return &s;
    return nullptr;
}

/// Hashes the function's bytes so that the hash depends on its own instructions only, not on
/// where the linker put it and the things it refers to: on x86-64, 32-bit displacements that
/// lead out of the function into the module (calls, jumps, RIP-relative operands) are masked,
/// and the 8 bytes a RIP-relative load (not a `lea`) reads from read-only data are mixed in,
/// so a changed floating-point constant counts. The scan is byte-wise, without decoding, so
/// it is a heuristic: a rare immediate that looks like such a displacement is masked too.
key128 hash_code(const symbol& s, const module_info& m) {
    std::string bytes(reinterpret_cast<const char*>(s.start), s.size);
    std::string constants;
#if defined(__x86_64__)
    const auto u = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
    const auto displacement_target = [&](std::size_t at, std::size_t instruction_end) {
        std::int32_t d;
        std::memcpy(&d, bytes.data() + at, 4);
        return s.start + instruction_end + static_cast<std::uintptr_t>(static_cast<std::intptr_t>(d));
    };
    const auto outside = [&](std::uintptr_t t) { return (t < s.start || t >= s.start + s.size) && segment_of(m, t); };
    std::size_t first = 0;
    // clang's -fsanitize=function (in UBSan up to clang 16) puts 8 bytes before the code: `jmp .+8`,
    // "v2", and a 32-bit offset from there to the function's type information.
    if (bytes.size() >= 8 && bytes.compare(0, 4, "\xEB\x06\x76\x32", 4) == 0) {
        std::memset(bytes.data() + 4, 0, 4);
        first = 8;
    }
    for (std::size_t i = first; i + 5 <= bytes.size(); ++i) {
        const unsigned char b = u(i);
        if (b == 0xE8 || b == 0xE9) {  // call / jmp rel32
            if (outside(displacement_target(i + 1, i + 5))) {
                std::memset(bytes.data() + i + 1, 0, 4);
                i += 4;
            }
        } else if (b == 0x0F && (u(i + 1) & 0xF0) == 0x80 && i + 6 <= bytes.size()) {  // jcc rel32 (to .cold parts)
            if (outside(displacement_target(i + 2, i + 6))) {
                std::memset(bytes.data() + i + 2, 0, 4);
                i += 5;
            }
        } else if ((b & 0xC7) == 0x05 && i > 0) {  // ModRM [rip + disp32]
            const std::uintptr_t t = displacement_target(i + 1, i + 5);
            if (!outside(t)) continue;
            if (u(i - 1) != 0x8D) {  // not lea: the instruction reads what is there
                const elf_segment* seg = segment_of(m, t);
                if (seg && seg->flags == PF_R && t + 8 <= seg->end)
                    constants.append(reinterpret_cast<const char*>(t), 8);
            }
            std::memset(bytes.data() + i + 1, 0, 4);
            i += 4;
        }
    }
#else
    (void)m;
#endif
    return hash128(bytes + constants);
}

}  // namespace

code_facts inspect_code(const callable_facts& c) {
    code_facts f;
    const void* where = c.code ? c.code : c.anchor;
    if (!where) {
        f.source = "nothing (no code address)";
        return f;
    }
    const module_info m = module_of(where);
    if (!m.found) {
        f.source = "nothing (code outside every loaded module)";
        return f;
    }
    f.module = m.path;
    f.module_offset = reinterpret_cast<std::uintptr_t>(where) - m.bias;
    if (c.code) {
        if (auto s = symbol_of(c.code, m)) {
            f.symbol = demangle(s->mangled.c_str());
            f.version = hash_code(*s, m);
            f.detected = true;
            f.source = "machine code of " + f.symbol + ", " + std::to_string(s->size) + " bytes";
            return f;
        }
    }
    if (!m.build_id.empty()) {
        f.version = hash128("build-id:" + m.build_id);
        f.detected = true;
        f.source = "build-id " + m.build_id + " of " + m.path + " (any rebuild of it invalidates)";
        return f;
    }
    f.source = "nothing (no symbol and no build-id)";
    return f;
}

}  // namespace cojob::detail
