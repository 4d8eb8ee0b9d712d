// Names the calling thread, so that `top -H`, `ps -L`, perf and
// /proc/PID/task/*/comm tell Sidestream's threads apart (the HTTP event loop,
// the log writer, the checkpointer, the reader pool...). The benchmark's load
// generator reports the server's CPU per thread by these names.
#ifndef SIDESTREAM_SERVER_COMMON_THREAD_NAME_H_
#define SIDESTREAM_SERVER_COMMON_THREAD_NAME_H_

#include "absl/strings/string_view.h"

namespace sidestream {

// Linux keeps at most 15 bytes of a thread's name: longer names are cut.
// Names start with "ss-" so that they stand out beside gRPC's own threads.
void SetCurrentThreadName(absl::string_view name);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_THREAD_NAME_H_
