// Owns: checking a handler's .so bytes before dlopen (elf_image.h).
#include "elf_image.h"

#include <cstring>
#include <elf.h>

namespace wsgw {
namespace {

#if defined(__x86_64__)
constexpr uint16_t kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kMachine = EM_AARCH64;
#else
constexpr uint16_t kMachine = EM_NONE;  // not checked
#endif

// Whether [offset, offset + count * size) lies within `total`, without overflow.
bool within(uint64_t offset, uint64_t count, uint64_t size, uint64_t total) {
    if (offset > total) return false;
    if (size != 0 && count > (total - offset) / size) return false;
    return true;
}

std::string cutShort(const char *what, uint64_t end, size_t size) {
    return std::string("is cut short: its ") + what + " ends at byte " + std::to_string(end) + " but the file has " +
           std::to_string(size) + " bytes (a copy still being written, or one that failed: copy it again)";
}

}  // namespace

std::string checkSharedObjectImage(std::string_view bytes) {
    const size_t size = bytes.size();
    if (size < EI_NIDENT || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0)
        return size < SELFMAG ? "is not a shared object: it has " + std::to_string(size) + " bytes"
                              : "is not a shared object (no ELF header): build it with -shared -fPIC";
    if (static_cast<unsigned char>(bytes[EI_CLASS]) != ELFCLASS64)
        return "is not a 64-bit shared object: build it for this machine";
    if (static_cast<unsigned char>(bytes[EI_DATA]) != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
        return "is built for the other byte order: build it for this machine";
    if (size < sizeof(Elf64_Ehdr)) return cutShort("ELF header", sizeof(Elf64_Ehdr), size);
    Elf64_Ehdr eh;
    std::memcpy(&eh, bytes.data(), sizeof eh);
    if (eh.e_type != ET_DYN) return "is not a shared object (ELF type " + std::to_string(eh.e_type) + "): link it with -shared";
    if (kMachine != EM_NONE && eh.e_machine != kMachine)
        return "is built for another architecture (ELF machine " + std::to_string(eh.e_machine) + "): build it for this machine";
    if (eh.e_phnum == 0) return "has no program headers: it cannot be loaded";
    if (eh.e_phentsize != sizeof(Elf64_Phdr)) return "has malformed program headers (entry size " + std::to_string(eh.e_phentsize) + ")";
    if (!within(eh.e_phoff, eh.e_phnum, sizeof(Elf64_Phdr), size))
        return cutShort("program header table", eh.e_phoff + uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), size);
    for (uint16_t i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, bytes.data() + eh.e_phoff + uint64_t{i} * sizeof ph, sizeof ph);
        if (ph.p_filesz == 0) continue;
        if (!within(ph.p_offset, 1, ph.p_filesz, size)) {
            std::string what = "segment " + std::to_string(i);
            return cutShort(what.c_str(), ph.p_offset + ph.p_filesz, size);
        }
    }
    if (eh.e_shoff != 0 && eh.e_shnum != 0) {
        if (eh.e_shentsize != sizeof(Elf64_Shdr)) return "has malformed section headers (entry size " + std::to_string(eh.e_shentsize) + ")";
        if (!within(eh.e_shoff, eh.e_shnum, sizeof(Elf64_Shdr), size))
            return cutShort("section header table", eh.e_shoff + uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr), size);
    }
    return "";
}

}  // namespace wsgw
