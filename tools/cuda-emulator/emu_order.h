// emu_order.h — GHOSTNET_EMU_ORDER, read by every module (emu_runtime.h) and by the fake NVRTC
// (nvrtc.cpp, which prints a random order's seed once per process): "forward" (or unset), "reverse",
// "random:<seed>", or "random", whose seed comes from the process id and start time, so that
// every module of one process draws the same seed without talking to the others.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace emu_order
{
enum Kind { Forward, Reverse, Random, Invalid };

struct Order
{
    Kind kind;
    uint64_t seed;
    char text[48]; // as GHOSTNET_EMU_ORDER would replay it: "forward", "reverse", "random:<seed>"
};

// The seed of a bare "random": pid and start time (clock ticks after boot) of this process.
inline uint64_t process_seed()
{
    unsigned long long start = 0;
    if (FILE* f = fopen("/proc/self/stat", "r"))
    {
        char line[1024];
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = 0;
        // Field 22 (starttime) counts from the field after the command, which ends with the last ')'.
        if (const char* p = strrchr(line, ')'))
        {
            int field = 2;
            for (; *p && field < 22; p++)
                if (*p == ' ') field++;
            start = strtoull(p, nullptr, 10);
        }
    }
    uint64_t z = (static_cast<uint64_t>(getpid()) << 32) ^ start;
    z = (z ^ (z >> 31)) * 0x9E3779B97F4A7C15ull;
    return (z ^ (z >> 29)) % 1000000000ull; // short enough to retype
}

inline Order parse(const char* value)
{
    Order o{Forward, 0, "forward"};
    if (!value || !*value || strcmp(value, "forward") == 0) return o;
    if (strcmp(value, "reverse") == 0) return o.kind = Reverse, snprintf(o.text, sizeof o.text, "reverse"), o;
    if (strncmp(value, "random", 6) == 0 && (value[6] == 0 || value[6] == ':'))
    {
        char* end = nullptr;
        if (value[6] == 0) o.seed = process_seed();
        else
        {
            o.seed = strtoull(value + 7, &end, 10);
            if (end == value + 7 || *end != 0) return o.kind = Invalid, o;
        }
        o.kind = Random;
        snprintf(o.text, sizeof o.text, "random:%llu", static_cast<unsigned long long>(o.seed));
        return o;
    }
    o.kind = Invalid;
    return o;
}
} // namespace emu_order
