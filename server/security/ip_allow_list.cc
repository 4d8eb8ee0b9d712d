#include "server/security/ip_allow_list.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include <arpa/inet.h>
#include <netinet/in.h>

#include "server/security/config_file.h"

namespace sidestream {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// True when the bits of `a` after the first `bits` are all zero.
bool HostBitsZero(const IpAddress& a, int bits) {
  for (int i = bits; i < 128; ++i) {
    if (a.bytes[i / 8] & (0x80 >> (i % 8))) return false;
  }
  return true;
}

bool SamePrefix(const IpAddress& a, const IpAddress& b, int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), whole) != 0) return false;
  if (bits % 8 == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits % 8));
  return (a.bytes[whole] & mask) == (b.bytes[whole] & mask);
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(absl::string_view text) {
  const std::string s(text);
  IpAddress out;
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    std::memcpy(out.bytes.data(), kMappedPrefix, 12);
    std::memcpy(out.bytes.data() + 12, &v4, 4);
    out.is_v4 = true;
    return out;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.bytes.data(), &v6, 16);
    out.is_v4 = std::memcmp(out.bytes.data(), kMappedPrefix, 12) == 0;
    return out;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::ParsePeer(absl::string_view peer) {
  if (absl::StartsWith(peer, "[")) {
    const size_t close = peer.find(']');
    if (close == absl::string_view::npos) return std::nullopt;
    return Parse(peer.substr(1, close - 1));
  }
  const size_t colon = peer.rfind(':');
  return Parse(colon == absl::string_view::npos ? peer : peer.substr(0, colon));
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

absl::Status CidrList::Add(absl::string_view entry) {
  absl::string_view address = entry;
  int bits = -1;
  if (const size_t slash = entry.find('/'); slash != absl::string_view::npos) {
    address = entry.substr(0, slash);
    const absl::string_view len = entry.substr(slash + 1);
    if (len.empty() || len.size() > 3 || !absl::SimpleAtoi(len, &bits) || bits < 0 ||
        !absl::ascii_isdigit(len[0])) {
      return absl::InvalidArgumentError(absl::StrCat("\"", entry, "\": bad prefix length"));
    }
  }
  std::optional<IpAddress> ip = IpAddress::Parse(address);
  if (!ip.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", entry,
        "\" is not an IP address or CIDR network (1.2.3.4, 10.0.0.0/8, 2001:db8::/32)"));
  }
  const int max_bits = ip->is_v4 ? 32 : 128;
  if (bits < 0) bits = max_bits;
  if (bits > max_bits) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", entry, "\": prefix length above ", max_bits));
  }
  const int mapped_bits = ip->is_v4 ? bits + 96 : bits;
  if (!HostBitsZero(*ip, mapped_bits)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", entry, "\" has bits set below its /", bits,
        " prefix; write the network address (a typo here would allow the wrong range)"));
  }
  networks_.push_back(Network{*ip, mapped_bits});
  return absl::OkStatus();
}

absl::StatusOr<CidrList> CidrList::Parse(absl::string_view text, absl::string_view source) {
  CidrList list;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (absl::Status s = list.Add(line); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, " line ", line_number, ": ", s.message()));
    }
  }
  return list;
}

absl::StatusOr<CidrList> CidrList::ParseCommaList(absl::string_view text,
                                                  absl::string_view source) {
  CidrList list;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    if (absl::Status s = list.Add(absl::StripAsciiWhitespace(entry)); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
    }
  }
  return list;
}

absl::StatusOr<CidrList> CidrList::Load(const std::string& path, absl::string_view flag) {
  absl::StatusOr<std::string> text = ReadConfigFile(path, flag);
  if (!text.ok()) return text.status();
  absl::StatusOr<CidrList> list = Parse(*text, absl::StrCat(flag, " ", path));
  if (list.ok() && list->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path,
        ": no addresses; every webhook would be refused. Add networks, or "
        "remove the flag to accept webhooks from anywhere (they are still signature-checked)"));
  }
  return list;
}

bool CidrList::Contains(const IpAddress& address) const {
  for (const Network& n : networks_) {
    if (SamePrefix(n.base, address, n.prefix_bits)) return true;
  }
  return false;
}

absl::StatusOr<IpAddress> WebhookSourcePolicy::ClientAddress(
    absl::string_view peer, const std::optional<std::string>& header_value) const {
  std::optional<IpAddress> direct = IpAddress::ParsePeer(peer);
  if (!direct.has_value()) {
    return absl::PermissionDeniedError(absl::StrCat("unknown peer address ", peer));
  }
  if (proxy_header.empty() || !trusted_proxies.Contains(*direct)) return *direct;
  if (!header_value.has_value()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "request from trusted proxy ", direct->ToString(), " has no ", proxy_header, " header"));
  }
  std::vector<absl::string_view> hops = absl::StrSplit(*header_value, ',');
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    std::optional<IpAddress> hop = IpAddress::Parse(absl::StripAsciiWhitespace(*it));
    if (!hop.has_value()) {
      return absl::PermissionDeniedError(absl::StrCat(proxy_header, " from trusted proxy ",
                                                      direct->ToString(),
                                                      " holds an entry that is not an IP address"));
    }
    if (!trusted_proxies.Contains(*hop)) return *hop;
  }
  return absl::PermissionDeniedError(absl::StrCat(proxy_header, " from trusted proxy ",
                                                  direct->ToString(),
                                                  " names only trusted proxies, no client"));
}

absl::Status WebhookSourcePolicy::Check(absl::string_view peer,
                                        const std::optional<std::string>& header_value) const {
  absl::StatusOr<IpAddress> client = ClientAddress(peer, header_value);
  if (!client.ok()) return client.status();
  if (allowed.Contains(*client)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("source address ", client->ToString(), " is not in --webhook_allowed_ips_file"));
}

}  // namespace sidestream
