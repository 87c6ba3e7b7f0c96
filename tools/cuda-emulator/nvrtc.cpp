// nvrtc.cpp — libnvrtc of the CUDA emulator: "compiles" a kernel file by building it as host C++
// with emu_runtime.h in front and one exported wrapper per kernel behind, using the system's g++
// ($GHOSTNET_EMU_CXX to choose another). The "cubin" is image_format.h's header followed by the
// shared object. Compiler errors come back as NVRTC_ERROR_COMPILATION with g++'s log.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "image_format.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace fs = std::filesystem;

namespace
{
enum : int
{
    Success = 0,
    InvalidInput = 3,
    InvalidProgram = 5,
    Compilation = 6,
};

struct Program
{
    std::string source, name;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string log, image;
};

fs::path own_folder()
{
    Dl_info info{};
    dladdr(reinterpret_cast<void*>(&own_folder), &info);
    return fs::path(info.dli_fname).parent_path();
}

std::string read_all(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string quote(const std::string& s)
{
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// Every extern "C" entry point: `KERNEL void name(` (the project's macro) or `__global__ void name(`.
std::vector<std::string> kernel_names(const std::string& source)
{
    static const std::regex pattern(R"((?:^|\n)\s*(?:KERNEL|extern\s+"C"\s+__global__)\s+void\s+(\w+)\s*\()");
    std::vector<std::string> names;
    for (auto it = std::sregex_iterator(source.begin(), source.end(), pattern); it != std::sregex_iterator(); ++it)
        names.push_back((*it)[1]);
    return names;
}

int compile(Program& p, const std::vector<std::string>& options)
{
    char pattern[] = "/tmp/ghostnet-nvrtc-XXXXXX";
    if (!mkdtemp(pattern)) return p.log = "cannot create a temporary folder", InvalidInput;
    fs::path dir(pattern);
    std::string file = fs::path(p.name).filename().string();
    for (auto& [name, content] : p.headers) std::ofstream(dir / name, std::ios::binary) << content;
    std::ofstream(dir / file, std::ios::binary) << p.source;
    std::ostringstream unit;
    unit << "#include \"" << (own_folder() / "emu_runtime.h").string() << "\"\n#include \"" << file << "\"\n";
    for (auto& k : kernel_names(p.source))
        unit << "extern \"C\" __attribute__((visibility(\"default\"))) void " << emu_image::WrapperPrefix << k
             << "(void** a) { emu::wm::begin_thread(); emu::invoke(&" << k << ", a); }\n";
    std::ofstream(dir / "unit.cpp") << unit.str();

    // -fsanitize=alignment: a misaligned typed access (a float4 load from a pointer that is only
    // 4-byte aligned) calls emu_warp_matrix.h's handler, which fails the launch. Compiled and
    // linked in two steps, so the link does not add libubsan (that handler replaces it).
    const char* cxx = getenv("GHOSTNET_EMU_CXX");
    std::string compiler = cxx && *cxx ? cxx : "g++";
    std::string command = compiler + " -std=c++17 -O2 -march=native -fPIC -fvisibility=hidden -fno-strict-aliasing -fsanitize=alignment -w";
    for (auto& o : options)
        if (o.rfind("-D", 0) == 0 || o.rfind("-I", 0) == 0) command += " " + quote(o);
    command += " -I" + quote(dir.string()) + " -c -o " + quote((dir / "unit.o").string()) + " " + quote((dir / "unit.cpp").string()) + " 2>&1 && " +
               compiler + " -shared -o " + quote((dir / "module.so").string()) + " " + quote((dir / "unit.o").string()) + " 2>&1";
    p.log.clear();
    int status = -1;
    if (FILE* out = popen(command.c_str(), "r"))
    {
        char buffer[4096];
        size_t n;
        while ((n = fread(buffer, 1, sizeof buffer, out)) > 0) p.log.append(buffer, n);
        status = pclose(out);
    }
    int result = Compilation;
    if (status == 0)
    {
        std::string so = read_all(dir / "module.so");
        emu_image::Header header{};
        std::copy(std::begin(emu_image::Magic), std::end(emu_image::Magic), header.magic);
        header.bytes = so.size();
        p.image.assign(reinterpret_cast<const char*>(&header), sizeof header);
        p.image += so;
        result = Success;
    }
    else if (p.log.empty()) p.log = "could not run " + command;
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    return result;
}
} // namespace

// Version 0.<checksum of emu_runtime.h, emu_warp_matrix.h and this file>: not a real NVRTC, so
// kernel cache keys never collide with real cubins, and a changed runtime header or build
// invalidates modules built with the old one.
#ifndef EMU_RUNTIME_CHECKSUM
#error "build with -DEMU_RUNTIME_CHECKSUM=... (build.sh does)"
#endif
EXPORT int nvrtcVersion(int* major, int* minor)
{
    *major = 0;
    *minor = EMU_RUNTIME_CHECKSUM;
    return Success;
}

EXPORT int nvrtcGetNumSupportedArchs(int* count) { return *count = 1, Success; }
EXPORT int nvrtcGetSupportedArchs(int* archs) { return archs[0] = 90, Success; }

EXPORT const char* nvrtcGetErrorString(int result)
{
    switch (result)
    {
    case Success: return "NVRTC_SUCCESS";
    case InvalidInput: return "NVRTC_ERROR_INVALID_INPUT";
    case InvalidProgram: return "NVRTC_ERROR_INVALID_PROGRAM";
    case Compilation: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR_INTERNAL_ERROR";
    }
}

EXPORT int nvrtcCreateProgram(void** program, const char* source, const char* name, int count, const char* const* headers, const char* const* names)
{
    if (!program || !source) return InvalidInput;
    auto* p = new Program{source, name ? name : "default_program", {}, {}, {}};
    for (int i = 0; i < count; i++) p->headers.emplace_back(names[i], headers[i]);
    *program = p;
    return Success;
}

EXPORT int nvrtcDestroyProgram(void** program)
{
    if (!program || !*program) return InvalidProgram;
    delete static_cast<Program*>(*program);
    *program = nullptr;
    return Success;
}

EXPORT int nvrtcCompileProgram(void* program, int count, const char* const* options)
{
    if (!program) return InvalidProgram;
    return compile(*static_cast<Program*>(program), std::vector<std::string>(options, options + count));
}

EXPORT int nvrtcGetProgramLogSize(void* program, size_t* size) { return *size = static_cast<Program*>(program)->log.size() + 1, Success; }
EXPORT int nvrtcGetProgramLog(void* program, char* log)
{
    auto& text = static_cast<Program*>(program)->log;
    std::copy(text.begin(), text.end(), log);
    log[text.size()] = 0;
    return Success;
}

EXPORT int nvrtcGetCUBINSize(void* program, size_t* size) { return *size = static_cast<Program*>(program)->image.size(), Success; }
EXPORT int nvrtcGetCUBIN(void* program, char* image)
{
    auto& bytes = static_cast<Program*>(program)->image;
    std::copy(bytes.begin(), bytes.end(), image);
    return Success;
}
// PTX requests get the same image: there is no intermediate form to show.
EXPORT int nvrtcGetPTXSize(void* program, size_t* size) { return nvrtcGetCUBINSize(program, size); }
EXPORT int nvrtcGetPTX(void* program, char* ptx) { return nvrtcGetCUBIN(program, ptx); }
