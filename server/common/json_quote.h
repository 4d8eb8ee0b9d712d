// JSON string literals for the JSON Sidestream writes by hand (HTTP error
// bodies, log lines).
#ifndef SIDESTREAM_SERVER_COMMON_JSON_QUOTE_H_
#define SIDESTREAM_SERVER_COMMON_JSON_QUOTE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sidestream {

// `text` as a JSON string literal, quotes included. Control characters and
// every byte outside printable ASCII are escaped as \u00XX, so the result is
// valid JSON (and ASCII) whatever bytes `text` holds.
std::string JsonQuote(absl::string_view text);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_JSON_QUOTE_H_
