// A small JSON object writer for the benchmark reports: keys in insertion
// order, numbers and strings, nested objects as raw JSON.
#ifndef SIDESTREAM_BENCH_JSON_H_
#define SIDESTREAM_BENCH_JSON_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace sidestream::bench {

class JsonObject {
 public:
  JsonObject& Int(absl::string_view key, int64_t value) { return Raw(key, absl::StrCat(value)); }
  JsonObject& Uint(absl::string_view key, uint64_t value) { return Raw(key, absl::StrCat(value)); }
  // Three decimals: enough for rates, milliseconds and ratios.
  JsonObject& Double(absl::string_view key, double value) {
    return Raw(key, absl::StrFormat("%.3f", value));
  }
  JsonObject& Bool(absl::string_view key, bool value) { return Raw(key, value ? "true" : "false"); }
  JsonObject& String(absl::string_view key, absl::string_view value) {
    return Raw(key, Quote(value));
  }
  // `json` must already be valid JSON (an object, array or number).
  JsonObject& Raw(absl::string_view key, absl::string_view json) {
    absl::StrAppend(&body_, body_.empty() ? "" : ",", Quote(key), ":", json);
    return *this;
  }
  std::string str() const { return absl::StrCat("{", body_, "}"); }

  static std::string Quote(absl::string_view text) {
    std::string out = "\"";
    for (unsigned char c : text) {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        absl::StrAppendFormat(&out, "\\u%04x", c);
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
    out.push_back('"');
    return out;
  }

 private:
  std::string body_;
};

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_JSON_H_
