// The subscriber filters the benchmarks use, shared by the load generator
// (real Subscribe streams) and the in-process stage benchmark (fan-out
// instruction counts), so both measure the same mix.
#ifndef SIDESTREAM_BENCH_FILTERS_H_
#define SIDESTREAM_BENCH_FILTERS_H_

#include <string>
#include <vector>

#include "sidestream/v1/event.pb.h"

namespace sidestream::bench {

struct NamedFilter {
  std::string label;
  v1::EventFilter filter;
};

// `count` filters. "all": every one matches every event. "mixed": a
// realistic spread over the generated events (webhook_requests.h): four in
// ten take everything, the others a type prefix, Connect only, one
// account, live only, or two exact platform types.
std::vector<NamedFilter> BenchFilters(const std::string& kind, int count);

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_FILTERS_H_
