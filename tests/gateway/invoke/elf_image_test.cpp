// checkSharedObjectImage: a whole ELF shared object of this machine passes; one cut short anywhere, or
// something else altogether, is refused with what is wrong, before dlopen maps it (a cut one was a SIGBUS).
#include "elf_image.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

using namespace wsgw;

namespace {
// This test binary: a position-independent executable is an ELF object of type ET_DYN, as a .so is. Read in
// one call: a sanitizer build's binary is over 100 MB, and a byte at a time through an unoptimised
// istreambuf_iterator took 20 s of each of the two test cases under ASan and ThreadSanitizer.
std::string ownImage() {
    std::ifstream in("/proc/self/exe", std::ios::binary | std::ios::ate);
    REQUIRE(in);
    std::string image(static_cast<size_t>(in.tellg()), '\0');
    in.seekg(0);
    in.read(image.data(), static_cast<std::streamsize>(image.size()));
    REQUIRE(in.gcount() == static_cast<std::streamsize>(image.size()));
    return image;
}
}  // namespace

TEST_SUITE("elf_image") {
    TEST_CASE("a whole image passes; cut short at any of many points it is refused, naming the part") {
        std::string image = ownImage();
        REQUIRE(image.size() > 100000);
        REQUIRE(checkSharedObjectImage(image) == "");
        for (size_t cut : {size_t(3000), size_t(8000), size_t(12000), image.size() / 2, image.size() - 1}) {
            std::string why = checkSharedObjectImage(std::string_view(image).substr(0, cut));
            CHECK_MESSAGE(why.find("is cut short") != std::string::npos, cut << ": " << why);
            CHECK(why.find("but the file has " + std::to_string(cut) + " bytes") != std::string::npos);
        }
        CHECK(checkSharedObjectImage(std::string_view(image).substr(0, 40)).find("ELF header") != std::string::npos);
    }

    TEST_CASE("not ELF, another class, byte order, type or machine: refused with what to do") {
        CHECK(checkSharedObjectImage("").find("has 0 bytes") != std::string::npos);
        CHECK(checkSharedObjectImage("#!/bin/sh\necho hi\n").find("no ELF header") != std::string::npos);
        std::string image = ownImage();
        std::string c32 = image;
        c32[4] = 1;  // ELFCLASS32
        CHECK(checkSharedObjectImage(c32).find("64-bit") != std::string::npos);
        std::string be = image;
        be[5] = 2;  // ELFDATA2MSB
        CHECK(checkSharedObjectImage(be).find("byte order") != std::string::npos);
        std::string exec = image;
        exec[16] = 2;  // ET_EXEC
        exec[17] = 0;
        CHECK(checkSharedObjectImage(exec).find("link it with -shared") != std::string::npos);
        std::string arm = image;
        arm[18] = 40;  // EM_ARM
        arm[19] = 0;
        CHECK(checkSharedObjectImage(arm).find("another architecture") != std::string::npos);
    }
}
