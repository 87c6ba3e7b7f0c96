// image_format.h — what the emulator's "cubin" is: this header, then a shared object built from
// one kernel file. The driver checks the magic, so a real cubin is refused as an invalid image.
#pragma once
#include <cstdint>

namespace emu_image
{
constexpr char Magic[8] = {'G', 'N', 'E', 'M', 'U', 'S', 'O', '1'};

struct Header
{
    char magic[8];
    uint64_t bytes; // of the shared object that follows
};

// The exported wrapper of kernel `name` is WrapperPrefix + name.
constexpr const char* WrapperPrefix = "emu_kernel_";
// And emu_params_ + name gives its parameters' byte sizes (int f(unsigned* sizes, int max): the count).
constexpr const char* ParamsPrefix = "emu_params_";
} // namespace emu_image
