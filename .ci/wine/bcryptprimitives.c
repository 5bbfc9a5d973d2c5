/* A stand-in for Windows' bcryptprimitives.dll, for running Rust's Windows test binaries under
 * Wine 8.0: Rust's standard library (1.78+) imports ProcessPrng from it, which Wine added only
 * in 8.13. It forwards to RtlGenRandom (advapi32's SystemFunction036). Built with mingw by
 * .ci/setup-wine; never shipped. */
#include <windows.h>

typedef BOOLEAN(WINAPI *RtlGenRandomFn)(PVOID, ULONG);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    static RtlGenRandomFn gen;
    if (!gen) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi) return FALSE;
        gen = (RtlGenRandomFn)GetProcAddress(advapi, "SystemFunction036");
        if (!gen) return FALSE;
    }
    while (len) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!gen(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
