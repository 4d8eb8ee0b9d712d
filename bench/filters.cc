#include "bench/filters.h"

#include "bench/webhook_requests.h"

namespace sidestream::bench {

std::vector<NamedFilter> BenchFilters(const std::string& kind, int count) {
  std::vector<NamedFilter> filters;
  for (int i = 0; i < count; ++i) {
    NamedFilter f;
    f.label = "all";
    if (kind == "mixed") {
      switch (i % 10) {
        case 4:
          f.label = "payout.*,account.*";
          f.filter.add_types("payout.*");
          f.filter.add_types("account.*");
          break;
        case 5:
          f.label = "payment_intent.succeeded";
          f.filter.add_types("payment_intent.succeeded");
          break;
        case 6:
          f.label = "connect";
          f.filter.set_origin(v1::ORIGIN_CONNECT);
          break;
        case 7:
          f.label = "one account";
          f.filter.add_accounts(LoadAccounts()[0]);
          break;
        case 8:
          f.label = "live";
          f.filter.set_livemode(v1::LIVEMODE_LIVE);
          break;
        case 9:
          f.label = "platform charge/invoice";
          f.filter.set_origin(v1::ORIGIN_PLATFORM);
          f.filter.add_types("charge.succeeded");
          f.filter.add_types("invoice.paid");
          break;
        default:
          break;
      }
    }
    filters.push_back(std::move(f));
  }
  return filters;
}

}  // namespace sidestream::bench
