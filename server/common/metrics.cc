#include "server/common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sidestream {
namespace {

// The shortest %g text that reads back as the same double ("0.000025", not
// "2.5000000000000001e-05"); Prometheus parses every %g form.
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  for (int precision = 6; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(text.c_str(), nullptr) == v) return text;
  }
  return absl::StrFormat("%.17g", v);
}

void AppendEscaped(std::string* out, absl::string_view value, bool quote_too) {
  for (char c : value) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (quote_too && c == '"') {
      *out += "\\\"";
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

void LatencyHistogram::Observe(absl::Duration latency) {
  const double seconds = absl::ToDoubleSeconds(latency);
  const size_t index = std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin();
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(
      static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(latency))),
      std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::Read() const {
  Snapshot s;
  s.cumulative.resize(buckets_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The +Inf bucket and count agree by construction of the snapshot.
  s.count = running;
  s.sum_seconds = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

void PrometheusWriter::Family(absl::string_view name, absl::string_view type,
                              absl::string_view help) {
  absl::StrAppend(&text_, "# HELP ", name, " ");
  AppendEscaped(&text_, help, /*quote_too=*/false);
  absl::StrAppend(&text_, "\n# TYPE ", name, " ", type, "\n");
}

void PrometheusWriter::AppendSeries(absl::string_view name, Labels labels,
                                    absl::string_view extra_label, absl::string_view extra_value) {
  text_.append(name.data(), name.size());
  if (labels.size() == 0 && extra_label.empty()) {
    text_ += ' ';
    return;
  }
  text_ += '{';
  bool first = true;
  auto add = [&](absl::string_view key, absl::string_view value) {
    if (!first) text_ += ',';
    first = false;
    absl::StrAppend(&text_, key, "=\"");
    AppendEscaped(&text_, value, /*quote_too=*/true);
    text_ += '"';
  };
  for (const auto& [key, value] : labels) add(key, value);
  if (!extra_label.empty()) add(extra_label, extra_value);
  text_ += "} ";
}

void PrometheusWriter::Sample(absl::string_view name, Labels labels, uint64_t value) {
  AppendSeries(name, labels);
  absl::StrAppend(&text_, value, "\n");
}

void PrometheusWriter::Sample(absl::string_view name, Labels labels, double value) {
  AppendSeries(name, labels);
  absl::StrAppend(&text_, FormatDouble(value), "\n");
}

void PrometheusWriter::Histogram(absl::string_view name, Labels labels,
                                 const std::vector<double>& bounds,
                                 const std::vector<uint64_t>& cumulative, uint64_t count,
                                 double sum) {
  const std::string bucket = absl::StrCat(name, "_bucket");
  for (size_t i = 0; i < cumulative.size(); ++i) {
    const std::string le = i < bounds.size() ? FormatDouble(bounds[i]) : "+Inf";
    AppendSeries(bucket, labels, "le", le);
    absl::StrAppend(&text_, cumulative[i], "\n");
  }
  AppendSeries(absl::StrCat(name, "_sum"), labels);
  absl::StrAppend(&text_, FormatDouble(sum), "\n");
  AppendSeries(absl::StrCat(name, "_count"), labels);
  absl::StrAppend(&text_, count, "\n");
}

}  // namespace sidestream
