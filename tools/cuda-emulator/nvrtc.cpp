// nvrtc.cpp — libnvrtc of the CUDA emulator: "compiles" a kernel file by building it as host C++
// with emu_runtime.h in front and one exported wrapper per kernel behind, using the system's g++
// ($GHOSTNET_EMU_CXX to choose another). The "cubin" is image_format.h's header followed by the
// shared object. Compiler errors come back as NVRTC_ERROR_COMPILATION with g++'s log.
// GHOSTNET_EMU_RACECHECK=1 builds modules with the shared-memory race detector (emu_racecheck.h):
// g++ -fsanitize=thread, without libtsan, and a table of the __shared__ variables' names. The
// option -DEMU_RACECHECK=1 (or =0) turns it on (or off) for one program whatever the variable
// says (to a real NVRTC it is an unused macro).
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "emu_order.h"
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

bool racecheck()
{
    const char* v = getenv("GHOSTNET_EMU_RACECHECK");
    return v && *v && strcmp(v, "0") != 0;
}

bool racecheck(const std::vector<std::string>& options)
{
    for (auto& o : options)
        if (o == "-DEMU_RACECHECK=1" || o == "-DEMU_RACECHECK=0") return o.back() == '1';
    return racecheck();
}

// Runs a shell command, appending what it prints to `log`; its exit status.
int run(const std::string& command, std::string& log)
{
    int status = -1;
    if (FILE* out = popen((command + " 2>&1").c_str(), "r"))
    {
        char buffer[4096];
        size_t n;
        while ((n = fread(buffer, 1, sizeof buffer, out)) > 0) log.append(buffer, n);
        status = pclose(out);
    }
    if (status != 0 && log.empty()) log = "could not run " + command;
    return status;
}

// Every __shared__ variable goes to one output section, emu_shared, with its bounds (see
// emu_runtime.h). __shared__ is `static` and modules are compiled with -fdata-sections, so each
// zero-initialised static of the kernel file has its own section: .bss._ZZ<function><name> for a
// function-local one (device code has no other non-const function-local statics), .bss._ZL<name>
// at file scope.
constexpr const char* SharedScript = R"(SECTIONS
{
  emu_shared : { PROVIDE_HIDDEN(__start_emu_shared = .); *(.bss._ZZ*) *(.bss._ZL*) PROVIDE_HIDDEN(__stop_emu_shared = .); }
}
INSERT AFTER .data;
)";

std::string c_string(const std::string& s)
{
    std::string q = "\"";
    for (char c : s) q += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    return q + "\"";
}

// names.cpp for a linked racecheck module: the variables inside emu_shared, as emu::SharedName
// (emu_racecheck.h) {offset from the section's start, bytes, demangled name}, from nm and readelf.
std::string shared_names(const fs::path& so, std::string& log)
{
    std::string sections, symbols;
    if (run("readelf -SW " + quote(so.string()), sections) != 0 || run("nm -S -C --defined-only " + quote(so.string()), symbols) != 0)
    {
        log += sections + symbols;
        return {};
    }
    unsigned long long start = 0, bytes = 0;
    std::smatch m;
    if (std::regex_search(sections, m, std::regex(R"(\] emu_shared\s+\w+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+))")))
        start = std::stoull(m[1], nullptr, 16), bytes = std::stoull(m[2], nullptr, 16);
    std::ostringstream table;
    int count = 0;
    table << "struct SharedName { unsigned offset, bytes; const char* name; }; // as emu::SharedName\n"
          << "extern \"C\" __attribute__((visibility(\"hidden\"))) const SharedName emu_shared_names[] = {\n";
    static const std::regex line(R"(^([0-9a-f]+) ([0-9a-f]+) [bBdD] (.+)$)");
    std::istringstream in(symbols);
    for (std::string text; std::getline(in, text);)
        if (std::regex_match(text, m, line))
        {
            unsigned long long at = std::stoull(m[1], nullptr, 16), size = std::stoull(m[2], nullptr, 16);
            if (at < start || at >= start + bytes || size == 0) continue;
            table << "    {" << at - start << "u, " << size << "u, " << c_string(m[3]) << "},\n";
            count++;
        }
    table << "    {0u, 0u, nullptr}};\nextern \"C\" __attribute__((visibility(\"hidden\"))) const int emu_shared_name_count = " << count << ";\n";
    return table.str();
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
             << "(void** a) { emu::wm::begin_thread(); emu::invoke(&" << k << ", a); }\n"
             << "extern \"C\" __attribute__((visibility(\"default\"))) int " << emu_image::ParamsPrefix << k
             << "(unsigned* s, int max) { return emu::param_sizes(&" << k << ", s, max); }\n";
    std::ofstream(dir / "unit.cpp") << unit.str();
    std::ofstream(dir / "emu_shared.ld") << SharedScript;

    // -fsanitize=alignment: a misaligned typed access (a float4 load from a pointer that is only
    // 4-byte aligned) calls emu_warp_matrix.h's handler, which fails the launch. Compiled and
    // linked in two steps, so the link does not add libubsan (that handler replaces it).
    const char* cxx = getenv("GHOSTNET_EMU_CXX");
    std::string compiler = cxx && *cxx ? cxx : "g++";
    std::string command = compiler + " -std=c++17 -O2 -march=native -fPIC -fvisibility=hidden -fno-strict-aliasing -fdata-sections -fsanitize=alignment -w";
    for (auto& o : options)
        if ((o.rfind("-D", 0) == 0 && o.rfind("-DEMU_RACECHECK", 0) != 0) || o.rfind("-I", 0) == 0) command += " " + quote(o);
    command += " -I" + quote(dir.string());
    std::string so = quote((dir / "module.so").string()), link = " -shared -Wl,-T," + quote((dir / "emu_shared.ld").string()) + " -o " + so;
    std::string object = quote((dir / "unit.o").string());
    p.log.clear();
    int status;
    if (!racecheck(options))
    {
        status = run(command + " -c -o " + object + " " + quote((dir / "unit.cpp").string()), p.log);
        if (status == 0) status = run(compiler + link + " " + object, p.log);
    }
    else
    {
        // Instrumented without libtsan: emu_racecheck.h defines the hooks. Linked once to find
        // where the shared variables landed, then again with their names.
        std::string names = quote((dir / "names.cpp").string());
        status = run(command + " -fsanitize=thread --param=tsan-instrument-func-entry-exit=0 -DEMU_RACECHECK=1 -c -o " + object + " " +
                         quote((dir / "unit.cpp").string()),
                     p.log);
        if (status == 0) status = run(compiler + link + " " + object, p.log);
        if (status == 0)
        {
            std::ofstream(dir / "names.cpp") << shared_names(dir / "module.so", p.log);
            status = run(compiler + " -std=c++17 -fPIC -w" + link + " " + object + " " + names, p.log);
        }
        std::string undefined;
        if (status == 0 && run("nm -u " + so, undefined) == 0)
        {
            std::istringstream in(undefined);
            for (std::string symbol; in >> symbol;)
                if (symbol.rfind("__tsan_", 0) == 0)
                {
                    p.log += "racecheck: the instrumentation calls " + symbol + ", which emu_racecheck.h does not define\n";
                    status = 1;
                }
        }
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
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    return result;
}
} // namespace

// Version 0.<checksum of the runtime headers and this file><racecheck 0 or 1>: not a real NVRTC,
// so kernel cache keys never collide with real cubins, a changed runtime header or build
// invalidates modules built with the old one, and instrumented and plain modules never mix. The
// kernel cache asks for the version before it loads any module, so this is also where a random
// thread order's seed is announced, once per process (every module draws the same seed, emu_order.h).
#ifndef EMU_RUNTIME_CHECKSUM
#error "build with -DEMU_RUNTIME_CHECKSUM=... (build.sh does)"
#endif
EXPORT int nvrtcVersion(int* major, int* minor)
{
    static std::once_flag announced;
    std::call_once(announced, [] {
        emu_order::Order o = emu_order::parse(getenv("GHOSTNET_EMU_ORDER"));
        if (o.kind == emu_order::Random)
            fprintf(stderr, "cuda emulator: GHOSTNET_EMU_ORDER=%s (blocks, and the threads of each pass, in a seeded random order; the same value replays it)\n", o.text);
    });
    *major = 0;
    *minor = EMU_RUNTIME_CHECKSUM * 10 + (racecheck() ? 1 : 0);
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
