// tests/fuzz/replay_main.cpp: runs a fuzz target's inputs without libFuzzer.
//
//   <target>_replay <file-or-directory>...
//
// Every regular file named (directories: every file in them, sorted by name)
// is passed once to LLVMFuzzerTestOneInput. A broken contract aborts the
// process (the target prints why, and the input's actions); a hang is caught
// by the target's watchdog. The exit status is 0 when every input ran.
// ctest runs this over tests/fuzz/corpus/<target>/ in every flavour.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

bool is_directory(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void collect(const std::string& path, std::vector<std::string>& files)
{
    if (!is_directory(path)) {
        files.push_back(path);
        return;
    }
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) {
        std::fprintf(stderr, "replay: cannot open %s\n", path.c_str());
        return;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            names.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
        const std::string full = path + "/" + n;
        if (!is_directory(full)) {
            files.push_back(full);
        }
    }
}

} // namespace

int main(int argc, char** argv)
{
    if (LLVMFuzzerInitialize != nullptr) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        collect(argv[i], files);
    }
    if (files.empty()) {
        std::fprintf(stderr, "replay: no inputs (usage: %s <file-or-directory>...)\n", argv[0]);
        return 2;
    }
    std::size_t ran = 0;
    for (const std::string& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
            return 2;
        }
        std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), data.size());
        LLVMFuzzerTestOneInput(data.data(), data.size());
        ++ran;
    }
    std::fprintf(stderr, "replay: %zu inputs ran, every contract held\n", ran);
    return 0;
}
