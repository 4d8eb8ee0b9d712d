// Source-address checks for the webhook path: a list of networks allowed to
// post (Stripe publishes the addresses its webhooks come from), and the rule
// for finding the client's address behind a reverse proxy.
//
// File format (--webhook_allowed_ips_file, --trusted_proxies): one address
// or CIDR network per line ("3.18.12.63", "10.0.0.0/8", "2001:db8::/32");
// '#' starts a comment, blank lines are skipped. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d) are treated as the IPv4 address.
//
// Client address: the TCP peer, unless a proxy header is configured AND the
// peer is a trusted proxy. Then the header (X-Forwarded-For style: a comma
// list, each proxy appending the address it received the request from) is
// read from the right, skipping addresses that are themselves trusted
// proxies; the first other address is the client. Addresses left of it were
// written by the client and are never believed. A trusted peer that sends no
// usable header is refused rather than taken as the client.
#ifndef SIDESTREAM_SERVER_SECURITY_IP_ALLOW_LIST_H_
#define SIDESTREAM_SERVER_SECURITY_IP_ALLOW_LIST_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sidestream {

// An IPv4 or IPv6 address; IPv4 is kept as its IPv4-mapped IPv6 form.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4 = false;

  // "1.2.3.4", "2001:db8::1" (no brackets, no port). nullopt otherwise.
  static std::optional<IpAddress> Parse(absl::string_view text);
  // The host of a peer as HttpServerRequest.peer spells it: "1.2.3.4:5678"
  // or "[2001:db8::1]:5678".
  static std::optional<IpAddress> ParsePeer(absl::string_view peer);
  std::string ToString() const;
};

// An immutable set of networks.
class CidrList {
 public:
  // One entry per line as described above. INVALID_ARGUMENT naming `source`
  // and the line for a bad entry (prefix length beyond 32/128, host bits set
  // below the prefix, not an address).
  static absl::StatusOr<CidrList> Parse(absl::string_view text, absl::string_view source);
  // The same entries as a comma list ("10.0.0.0/8,192.168.1.1").
  static absl::StatusOr<CidrList> ParseCommaList(absl::string_view text, absl::string_view source);
  // Reads and parses a file; errors name `flag`.
  static absl::StatusOr<CidrList> Load(const std::string& path, absl::string_view flag);

  bool Contains(const IpAddress& address) const;
  size_t size() const { return networks_.size(); }
  bool empty() const { return networks_.empty(); }

 private:
  struct Network {
    IpAddress base;
    int prefix_bits;  // of the 128-bit (mapped) form
  };
  absl::Status Add(absl::string_view entry);
  std::vector<Network> networks_;
};

// Who may post webhooks, and how the client address is found. Immutable;
// replaced as a whole on reload.
struct WebhookSourcePolicy {
  CidrList allowed;
  // Peers whose `proxy_header` is believed. Empty: the header is ignored.
  CidrList trusted_proxies;
  // Lower-case header name such as "x-forwarded-for"; empty: off.
  std::string proxy_header;

  // The client address for a request from `peer` carrying `header_value`
  // (the proxy header, all occurrences joined by ","), per the rule above.
  // PERMISSION_DENIED when it cannot be determined.
  absl::StatusOr<IpAddress> ClientAddress(absl::string_view peer,
                                          const std::optional<std::string>& header_value) const;
  // OK when the client is allowed; PERMISSION_DENIED saying which address
  // was refused otherwise.
  absl::Status Check(absl::string_view peer, const std::optional<std::string>& header_value) const;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_SECURITY_IP_ALLOW_LIST_H_
