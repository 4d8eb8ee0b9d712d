// glibc malloc settings for processes that move large buffers through many
// threads: the server, and the benchmark's load generator and baselines, so
// that every process of a benchmark run allocates the same way.
#ifndef SIDESTREAM_SERVER_COMMON_MALLOC_TUNING_H_
#define SIDESTREAM_SERVER_COMMON_MALLOC_TUNING_H_

namespace sidestream {

// glibc's defaults hand freed memory back to the kernel eagerly: buffers
// went through sbrk/madvise and fresh pages faulted in again, about 20% of
// the server's CPU in a profile at 16 connections. Keeps up to 256 MiB of
// free heap, grows it 64 MiB at a time and serves blocks under 8 MiB from
// the heap (docs/performance.md: -25% server CPU per webhook); untouched
// reserve costs no RSS. Does nothing when GLIBC_TUNABLES is set: an
// operator's own settings win. Call first thing in main.
void TuneMalloc();

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_MALLOC_TUNING_H_
