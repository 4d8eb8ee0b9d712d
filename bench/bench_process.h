// The start of every benchmark binary's main: the server's process settings
// (so no side of a comparison runs with other malloc or Mutex settings), a
// usage line and a --help that lists the flags of bench/ (Abseil's default
// lists only flags from files named after the program, which none of ours
// are).
#ifndef SIDESTREAM_BENCH_BENCH_PROCESS_H_
#define SIDESTREAM_BENCH_BENCH_PROCESS_H_

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

#include "server/common/process_tuning.h"

namespace sidestream::bench {

// TuneProcess(), then sets the usage text and parses argv (exits on --help
// or a bad flag). Call first thing in main.
inline void InitBenchProcess(int argc, char** argv, absl::string_view usage) {
  TuneProcess();
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "bench/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
}

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_BENCH_PROCESS_H_
