// Process-wide settings that Sidestream's binaries take first thing in main:
// the server, and the benchmark's load generator, baselines and stage bench,
// so that every process of a benchmark run allocates and locks the same way
// (a baseline left with the defaults would be measured with a handicap).
#ifndef SIDESTREAM_SERVER_COMMON_PROCESS_TUNING_H_
#define SIDESTREAM_SERVER_COMMON_PROCESS_TUNING_H_

namespace sidestream {

// Two settings (docs/performance.md has the measurements):
//  - glibc malloc: the defaults hand freed memory back to the kernel
//    eagerly, so buffers went through sbrk/madvise and fresh pages faulted
//    in again (about 20% of the server's CPU in a profile at 16
//    connections; the load generator's reader was the catch-up's bound for
//    the same reason). Keeps up to 256 MiB of free heap, grows it 64 MiB at
//    a time and serves blocks under 8 MiB from the heap; untouched reserve
//    costs no RSS. Skipped when GLIBC_TUNABLES is set: an operator's own
//    settings win.
//  - Abseil Mutex deadlock detection off: Debian builds Abseil without
//    NDEBUG, which leaves it on, a lock-order graph updated on every lock
//    (gRPC's locks included): 17% of the fan-out stage's instructions, 8% of
//    the load generator's samples while reading 100 streams. Our locking is
//    checked by the tests and sanitizer runs instead.
void TuneProcess();

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_PROCESS_TUNING_H_
