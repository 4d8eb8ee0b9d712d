// Command-line parsing shared by the benchmark binaries: each gets a usage
// line and a --help that lists the flags of bench/ (Abseil's default lists
// only flags from files named after the program, which none of ours are).
#ifndef SIDESTREAM_BENCH_FLAGS_H_
#define SIDESTREAM_BENCH_FLAGS_H_

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace sidestream::bench {

// Sets the usage text, then parses argv (exits on --help or a bad flag).
inline void ParseBenchFlags(int argc, char** argv, absl::string_view usage) {
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

#endif  // SIDESTREAM_BENCH_FLAGS_H_
