"""Why large CPU tensors fault their pages in again (issue 16): glibc, measured without torch.

Usage: python bench/glibc_faults.py [tuned]
  tuned  first mallopt(M_MMAP_THRESHOLD 128 MB, M_TRIM_THRESHOLD 1 GB) and, with a second word "arena1",
         M_ARENA_MAX 1 (the same as MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_ARENA_MAX)
Allocate-fill-free cycles of 16 and 64 MB blocks with malloc and with posix_memalign(64) (what torch's CPU
allocator calls), on the main thread and on a second thread (where the engine synthesises); prints minor page
faults per 4 KB page (0 = the memory was reused, 1 = every page mapped and zeroed afresh).
"""
import ctypes
import resource
import sys
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MB = 1 << 20
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def cycle(kind: str, size: int) -> None:
    if kind == "malloc":
        block = libc.malloc(size)
    else:
        out = ctypes.c_void_p()
        libc.posix_memalign(ctypes.byref(out), 64, size)
        block = out.value
    libc.memset(block, 1, size)
    libc.free(block)


def faults_per_page(kind: str, size: int, cycles: int = 20) -> float:
    for _ in range(3):  # the first cycles grow the heap: not counted
        cycle(kind, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        cycle(kind, size)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles / (size / 4096)


def on_thread(fn, *args) -> float:
    result: list[float] = []
    worker = threading.Thread(target=lambda: result.append(fn(*args)))
    worker.start()
    worker.join()
    return result[0]


def main() -> None:
    if "tuned" in sys.argv[1:]:
        libc.mallopt(M_MMAP_THRESHOLD, 128 * MB)
        libc.mallopt(M_TRIM_THRESHOLD, 1024 * MB)
        if "arena1" in sys.argv[1:]:
            libc.mallopt(M_ARENA_MAX, 1)
    for size in (16 * MB, 64 * MB):
        cells = []
        for kind in ("malloc", "memalign64"):
            main_thread, second = faults_per_page(kind, size), on_thread(faults_per_page, kind, size)
            cells.append(f"{kind}: main {main_thread:.2f}, second thread {second:.2f}")
        print(f"{size // MB} MB | " + " | ".join(cells))


if __name__ == "__main__":
    main()
