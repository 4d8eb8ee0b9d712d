#include "client/sample_events.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "server/common/stripe_ids.h"

namespace sidestream {
namespace {

constexpr absl::string_view kThinType = "v1.billing.meter.error_report_triggered";
// Stripe's usual id length after the prefix ("po_1PqZ2bQx7RkB2mLcB1cD2eF3").
constexpr size_t kIdSuffixLength = 24;

// Seeding a generator is costly and benchmarks build many events, so each
// thread keeps one.
absl::BitGen& Gen() {
  thread_local absl::BitGen gen;
  return gen;
}

std::string RandomAlnum(size_t length) {
  static constexpr char kChars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(length, '0');
  for (char& c : out) c = kChars[absl::Uniform<size_t>(Gen(), 0, sizeof(kChars) - 1)];
  return out;
}

std::string RandomId(absl::string_view prefix, size_t length = kIdSuffixLength) {
  return absl::StrCat(prefix, RandomAlnum(length));
}

// A version-4 style UUID, as Stripe's SDKs use for idempotency keys.
std::string RandomIdempotencyKey() {
  const std::string hex =
      absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(Gen()), absl::Uniform<uint64_t>(Gen()));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-4", hex.substr(13, 3), "-a",
                      hex.substr(17, 3), "-", hex.substr(20, 12));
}

// `s` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// What the per-type builders share.
struct Context {
  int64_t created;
  const char* livemode;  // "true" or "false"
  bool connect;
  // The connected account, or an invented id for the platform's own account
  // (objects such as `person` always name an account).
  std::string account;
  // `"sidestream_padding":"xxx..."`, or empty.
  std::string padding_entry;
};

// A metadata object with `entries` (JSON members, may be empty) and the
// padding, if any.
std::string Metadata(const Context& c, absl::string_view entries = "") {
  if (c.padding_entry.empty()) return absl::StrCat("{", entries, "}");
  return absl::StrCat("{", entries, entries.empty() ? "" : ",", c.padding_entry, "}");
}

// For objects that have no metadata of their own: a member to append, only
// when padding is requested.
std::string PaddingMember(const Context& c) {
  return c.padding_entry.empty() ? "" : absl::StrCat(R"(,"metadata":)", Metadata(c));
}

struct SampleObject {
  std::string object;
  std::string previous_attributes;  // empty: none
  // Whether an API request caused the event (else `request` has null ids,
  // as for automatic payouts and balance changes).
  bool from_api_request;
};

SampleObject Application(const Context& c) {
  return {absl::StrFormat(
              R"({"id":"%s","object":"application","name":"Sidestream Example Platform"%s})",
              RandomId("ca_"), PaddingMember(c)),
          "", false};
}

SampleObject BankAccount(const Context& c) {
  return {
      absl::StrFormat(R"({"id":"%1$s","object":"bank_account","account":%2$s,)"
                      R"("account_holder_name":"Jenny Rosen","account_holder_type":"individual",)"
                      R"("account_type":null,"available_payout_methods":["standard","instant"],)"
                      R"("bank_name":"STRIPE TEST BANK","country":"US","currency":"usd",)"
                      R"("default_for_currency":true,"fingerprint":"%3$s",)"
                      R"("future_requirements":{"currently_due":[],"errors":[],"past_due":[],)"
                      R"("pending_verification":[]},"last4":"6789","metadata":%4$s,)"
                      R"("requirements":{"currently_due":[],"errors":[],"past_due":[],)"
                      R"("pending_verification":[]},"routing_number":"110000000","status":"new"})",
                      RandomId("ba_"), JsonString(c.account), RandomAlnum(16), Metadata(c)),
      R"({"status":"errored"})", true};
}

SampleObject Account(const Context& c) {
  return {
      absl::StrFormat(
          R"({"id":%1$s,"object":"account","business_profile":{"mcc":"5734",)"
          R"("name":"Rosen Software","product_description":null,)"
          R"("support_email":"support@rosen.example.com","url":"https://rosen.example.com"},)"
          R"("business_type":"individual","capabilities":{"card_payments":"active",)"
          R"("transfers":"active"},"charges_enabled":true,)"
          R"("controller":{"is_controller":true,"type":"application"},"country":"US",)"
          R"("created":%2$d,"default_currency":"usd","details_submitted":true,)"
          R"("email":"jenny.rosen@example.com","external_accounts":{"object":"list",)"
          R"("data":[],"has_more":false,"total_count":1,"url":"/v1/accounts/%3$s/external_accounts"},)"
          R"("future_requirements":{"alternatives":[],"current_deadline":null,)"
          R"("currently_due":[],"disabled_reason":null,"errors":[],"eventually_due":[],)"
          R"("past_due":[],"pending_verification":[]},"metadata":%4$s,"payouts_enabled":true,)"
          R"("requirements":{"alternatives":[],"current_deadline":null,"currently_due":[],)"
          R"("disabled_reason":null,"errors":[],"eventually_due":["individual.ssn_last_4"],)"
          R"("past_due":[],"pending_verification":[]},"settings":{"payouts":{)"
          R"("debit_negative_balances":true,"schedule":{"delay_days":2,"interval":"daily"},)"
          R"("statement_descriptor":null}},"tos_acceptance":{"date":%5$d},"type":"express"})",
          JsonString(c.account), c.created - 900, c.account, Metadata(c), c.created - 800),
      R"({"charges_enabled":false,"requirements":{)"
      R"("currently_due":["individual.verification.document"],)"
      R"("disabled_reason":"requirements.past_due",)"
      R"("past_due":["individual.verification.document"]}})",
      false};
}

SampleObject Balance(const Context& c) {
  return {absl::StrFormat(R"({"object":"balance","available":[{"amount":2217713,"currency":"usd",)"
                          R"("source_types":{"bank_account":0,"card":2217713}}],)"
                          R"("connect_reserved":[{"amount":0,"currency":"usd"}],"livemode":%s,)"
                          R"("pending":[{"amount":16175,"currency":"usd",)"
                          R"("source_types":{"bank_account":0,"card":16175}}]%s})",
                          c.livemode, PaddingMember(c)),
          "", false};
}

SampleObject PaymentIntent(const Context& c) {
  const std::string id = RandomId("pi_");
  // A direct charge on a connected account carries the platform's fee.
  const std::string application =
      c.connect ? absl::StrCat(R"(")", RandomId("ca_"), R"(")") : "null";
  return {absl::StrFormat(
              R"({"id":"%1$s","object":"payment_intent","amount":2000,"amount_capturable":0,)"
              R"("amount_details":{"tip":{}},"amount_received":2000,"application":%2$s,)"
              R"("application_fee_amount":%3$s,)"
              R"("automatic_payment_methods":{"allow_redirects":"always","enabled":true},)"
              R"("canceled_at":null,"cancellation_reason":null,"capture_method":"automatic_async",)"
              R"("client_secret":"%1$s_secret_%4$s","confirmation_method":"automatic",)"
              R"("created":%5$d,"currency":"usd","customer":null,"description":"Order #1042",)"
              R"("last_payment_error":null,"latest_charge":"%6$s","livemode":%7$s,)"
              R"("metadata":%8$s,"next_action":null,"on_behalf_of":null,"payment_method":"%9$s",)"
              R"("payment_method_options":{"card":{"installments":null,"mandate_options":null,)"
              R"("network":null,"request_three_d_secure":"automatic"}},)"
              R"("payment_method_types":["card"],"processing":null,)"
              R"("receipt_email":"jenny.rosen@example.com","review":null,)"
              R"("setup_future_usage":null,"shipping":null,"source":null,)"
              R"("statement_descriptor":null,"statement_descriptor_suffix":null,)"
              R"("status":"succeeded","transfer_data":null,"transfer_group":null})",
              id, application, c.connect ? "123" : "null", RandomAlnum(25), c.created - 2,
              RandomId("ch_"), c.livemode, Metadata(c, R"("order_id":"1042")"), RandomId("pm_")),
          "", true};
}

SampleObject Payout(const Context& c) {
  return {
      absl::StrFormat(R"({"id":"%1$s","object":"payout","amount":1100,"application_fee":null,)"
                      R"("application_fee_amount":null,"arrival_date":%2$d,"automatic":true,)"
                      R"("balance_transaction":"%3$s","created":%4$d,"currency":"usd",)"
                      R"("description":"STRIPE PAYOUT","destination":"%5$s",)"
                      R"("failure_balance_transaction":"%6$s","failure_code":"account_closed",)"
                      R"("failure_message":"The bank account has been closed.","livemode":%7$s,)"
                      R"("metadata":%8$s,"method":"standard","original_payout":null,)"
                      R"("reconciliation_status":"not_applicable","reversed_by":null,)"
                      R"("source_type":"card","statement_descriptor":null,"status":"failed",)"
                      R"("type":"bank_account"})",
                      RandomId("po_"), c.created + 86400, RandomId("txn_"), c.created - 86400,
                      RandomId("ba_"), RandomId("txn_"), c.livemode, Metadata(c)),
      "", false};
}

SampleObject Person(const Context& c) {
  return {absl::StrFormat(
              R"({"id":"%1$s","object":"person","account":%2$s,"address":{)"
              R"("city":"San Francisco","country":"US","line1":"510 Townsend St","line2":null,)"
              R"("postal_code":"94103","state":"CA"},"created":%3$d,)"
              R"("dob":{"day":1,"month":1,"year":1901},"email":"jenny.rosen@example.com",)"
              R"("first_name":"Jenny","id_number_provided":false,"last_name":"Rosen",)"
              R"("metadata":%4$s,"phone":null,"relationship":{"director":false,)"
              R"("executive":false,"owner":false,"percent_ownership":null,)"
              R"("representative":true,"title":null},"requirements":{"alternatives":[],)"
              R"("currently_due":[],"errors":[],"eventually_due":[],"past_due":[],)"
              R"("pending_verification":[]},"ssn_last_4_provided":true,"verification":{)"
              R"("additional_document":{"back":null,"details":null,"details_code":null,)"
              R"("front":null},"details":null,"details_code":null,"document":{"back":null,)"
              R"("details":null,"details_code":null,"front":"%5$s"},"status":"verified"}})",
              RandomId("person_"), JsonString(c.account), c.created - 600, Metadata(c),
              RandomId("file_")),
          R"({"verification":{"status":"pending"}})", true};
}

SampleObject Customer(const Context& c) {
  return {absl::StrFormat(
              R"({"id":"%1$s","object":"customer","address":null,"balance":0,"created":%2$d,)"
              R"("currency":null,"default_source":null,"delinquent":false,"description":null,)"
              R"("discount":null,"email":"jenny.rosen@example.com","invoice_prefix":"%3$s",)"
              R"("invoice_settings":{"custom_fields":null,"default_payment_method":null,)"
              R"("footer":null,"rendering_options":null},"livemode":%4$s,"metadata":%5$s,)"
              R"("name":"Jenny Rosen","next_invoice_sequence":1,"phone":null,)"
              R"("preferred_locales":[],"shipping":null,"tax_exempt":"none","test_clock":null})",
              RandomId("cus_", 14), c.created - 1, absl::AsciiStrToUpper(RandomAlnum(8)),
              c.livemode, Metadata(c)),
          "", true};
}

SampleObject Invoice(const Context& c) {
  const std::string id = RandomId("in_");
  const int64_t period_start = c.created - 30 * 86400;
  return {absl::StrFormat(
              R"({"id":"%1$s","object":"invoice","account_country":"US",)"
              R"("account_name":"Sidestream Example","amount_due":1500,"amount_paid":1500,)"
              R"("amount_remaining":0,"attempt_count":1,"attempted":true,)"
              R"("billing_reason":"subscription_cycle","charge":"%2$s",)"
              R"("collection_method":"charge_automatically","created":%3$d,"currency":"usd",)"
              R"("customer":"%4$s","customer_email":"jenny.rosen@example.com",)"
              R"("hosted_invoice_url":"https://invoice.stripe.com/i/%5$s",)"
              R"("lines":{"object":"list","data":[{"id":"%6$s","object":"line_item",)"
              R"j("amount":1500,"currency":"usd","description":"1 × Pro (at $15.00 / month)",)j"
              R"("period":{"end":%7$d,"start":%3$d},"quantity":1,"type":"subscription"}],)"
              R"("has_more":false,"total_count":1,"url":"/v1/invoices/%1$s/lines"},)"
              R"("livemode":%8$s,"metadata":%9$s,"number":"0759376C-0002","paid":true,)"
              R"("period_end":%3$d,"period_start":%10$d,"status":"paid","status_transitions":{)"
              R"("finalized_at":%11$d,"marked_uncollectible_at":null,"paid_at":%11$d,)"
              R"("voided_at":null},"subscription":"%12$s","subtotal":1500,"total":1500})",
              id, RandomId("ch_"), c.created - 3600, RandomId("cus_", 14), RandomAlnum(32),
              RandomId("il_"), c.created - 3600 + 30 * 86400, c.livemode, Metadata(c),
              period_start - 3600, c.created - 1, RandomId("sub_")),
          "", false};
}

SampleObject Charge(const Context& c) {
  return {absl::StrFormat(
              R"({"id":"%1$s","object":"charge","amount":2000,"amount_captured":2000,)"
              R"("amount_refunded":0,"balance_transaction":"%2$s","billing_details":{)"
              R"("address":{"city":null,"country":null,"line1":null,"line2":null,)"
              R"("postal_code":"42424","state":null},"email":null,"name":null,"phone":null},)"
              R"("captured":true,"created":%3$d,"currency":"usd","customer":null,)"
              R"("description":null,"disputed":false,"failure_code":null,)"
              R"("failure_message":null,"fraud_details":{},"livemode":%4$s,"metadata":%5$s,)"
              R"("outcome":{"network_status":"approved_by_network","reason":null,)"
              R"("risk_level":"normal","risk_score":32,"seller_message":"Payment complete.",)"
              R"("type":"authorized"},"paid":true,"payment_intent":"%6$s",)"
              R"("payment_method":"%7$s","payment_method_details":{"card":{"brand":"visa",)"
              R"("checks":{"address_line1_check":null,"address_postal_code_check":"pass",)"
              R"("cvc_check":"pass"},"country":"US","exp_month":8,"exp_year":2027,)"
              R"("fingerprint":"%8$s","funding":"credit","last4":"4242","network":"visa",)"
              R"("three_d_secure":null,"wallet":null},"type":"card"},)"
              R"("receipt_url":"https://pay.stripe.com/receipts/payment/%9$s",)"
              R"("refunded":false,"status":"succeeded"})",
              RandomId("ch_"), RandomId("txn_"), c.created - 1, c.livemode, Metadata(c),
              RandomId("pi_"), RandomId("pm_"), RandomAlnum(16), RandomAlnum(40)),
          "", true};
}

SampleObject CheckoutSession(const Context& c) {
  const bool live = absl::string_view(c.livemode) == "true";
  return {absl::StrFormat(
              R"({"id":"%1$s","object":"checkout.session","amount_subtotal":2198,)"
              R"("amount_total":2198,"automatic_tax":{"enabled":false,"status":null},)"
              R"("cancel_url":"https://example.com/cancel","client_reference_id":null,)"
              R"("created":%2$d,"currency":"usd","customer":"%3$s","customer_details":{)"
              R"("email":"jenny.rosen@example.com","name":"Jenny Rosen","phone":null,)"
              R"("tax_exempt":"none","tax_ids":[]},"expires_at":%4$d,"livemode":%5$s,)"
              R"("metadata":%6$s,"mode":"payment","payment_intent":"%7$s",)"
              R"("payment_method_types":["card"],"payment_status":"paid","status":"complete",)"
              R"("success_url":"https://example.com/success","url":null})",
              RandomId(live ? "cs_live_" : "cs_test_", 58), c.created - 120, RandomId("cus_", 14),
              c.created - 120 + 86400, c.livemode, Metadata(c), RandomId("pi_")),
          "", false};
}

// Any other type: a minimal resource named after the type's first part.
SampleObject Generic(const Context& c, absl::string_view type) {
  const absl::string_view resource = type.substr(0, type.find('.'));
  return {absl::StrFormat(R"({"id":"%s","object":%s,"created":%d,"livemode":%s,"metadata":%s})",
                          RandomId(absl::StrCat(resource, "_")), JsonString(resource), c.created,
                          c.livemode, Metadata(c)),
          "", true};
}

struct TypeBuilder {
  absl::string_view type;
  SampleObject (*build)(const Context&);
};

constexpr TypeBuilder kBuilders[] = {
    {"account.application.deauthorized", Application},
    {"account.external_account.updated", BankAccount},
    {"account.updated", Account},
    {"balance.available", Balance},
    {"payment_intent.succeeded", PaymentIntent},
    {"payout.failed", Payout},
    {"person.updated", Person},
    {"customer.created", Customer},
    {"invoice.paid", Invoice},
    {"charge.succeeded", Charge},
    {"checkout.session.completed", CheckoutSession},
};

std::string RequestJson(bool from_api_request) {
  if (!from_api_request) return R"({"id":null,"idempotency_key":null})";
  return absl::StrFormat(R"({"id":"%s","idempotency_key":"%s"})", RandomId("req_", 14),
                         RandomIdempotencyKey());
}

// An API v2 thin event: no data, the resource named by `related_object`.
// Thin events carry no metadata, so `padding_bytes` does not apply.
std::string BuildThinEvent(const SampleEventOptions& options, const Context& c) {
  const absl::Time created =
      options.created != 0 ? absl::FromUnixSeconds(options.created) : absl::Now();
  const bool live = absl::string_view(c.livemode) == "true";
  const std::string id =
      options.id.empty() ? RandomId(live ? "evt_65" : "evt_test_65", 42) : options.id;
  const std::string meter = RandomId(live ? "mtr_61" : "mtr_test_61", 30);
  return absl::StrFormat(
      R"({"id":%1$s,"object":"v2.core.event","type":%2$s,"livemode":%3$s,"created":"%4$s",)"
      R"("context":%5$s,"related_object":{"id":"%6$s","type":"billing.meter",)"
      R"("url":"/v1/billing/meters/%6$s"},"reason":{"type":"request","request":)"
      R"({"id":"%7$s","idempotency_key":"%8$s"}}})",
      JsonString(id), JsonString(options.type), c.livemode,
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", created, absl::UTCTimeZone()),
      options.account.empty() ? "null" : JsonString(options.account), meter, RandomId("req_", 14),
      RandomIdempotencyKey());
}

}  // namespace

const std::vector<std::string>& SampleEventTypes() {
  static const std::vector<std::string>* const kTypes = [] {
    auto* types = new std::vector<std::string>();
    for (const TypeBuilder& builder : kBuilders) types->emplace_back(builder.type);
    types->emplace_back(kThinType);
    return types;
  }();
  return *kTypes;
}

absl::StatusOr<std::string> BuildSampleEvent(const SampleEventOptions& options) {
  if (!IsEventType(options.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("event type ", JsonString(options.type.substr(0, 64)),
                     " is not dotted lower-case words (such as \"payout.failed\")"));
  }
  if (!options.account.empty() && !IsAccountId(options.account)) {
    return absl::InvalidArgumentError(
        absl::StrCat("account ", JsonString(options.account.substr(0, 64)),
                     " is not a connected account id (\"acct_\" and letters or digits)"));
  }
  if (!options.id.empty() && !IsStripeId(options.id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("event id ", JsonString(options.id.substr(0, 64)),
                     " must be 1 to 255 letters, digits or underscores"));
  }
  if (options.created < 0) {
    return absl::InvalidArgumentError("created must be Unix seconds (0 means now)");
  }

  Context c;
  c.created = options.created != 0 ? options.created : absl::ToUnixSeconds(absl::Now());
  c.livemode = options.livemode ? "true" : "false";
  c.connect = !options.account.empty();
  c.account = c.connect ? options.account : RandomId("acct_", 16);
  if (options.padding_bytes > 0) {
    c.padding_entry =
        absl::StrCat(R"("sidestream_padding":")", std::string(options.padding_bytes, 'x'), "\"");
  }

  if (options.type == kThinType) return BuildThinEvent(options, c);

  SampleObject object;
  bool found = false;
  for (const TypeBuilder& builder : kBuilders) {
    if (builder.type == options.type) {
      object = builder.build(c);
      found = true;
      break;
    }
  }
  if (!found) object = Generic(c, options.type);

  std::string out;
  out.reserve(object.object.size() + object.previous_attributes.size() + 512);
  absl::StrAppend(&out, R"({"id":)", JsonString(options.id.empty() ? RandomId("evt_") : options.id),
                  R"(,"object":"event")");
  if (c.connect) absl::StrAppend(&out, R"(,"account":)", JsonString(options.account));
  absl::StrAppend(&out, R"(,"api_version":)",
                  options.api_version.empty() ? "null" : JsonString(options.api_version),
                  R"(,"created":)", c.created, R"(,"data":{"object":)", object.object);
  if (!object.previous_attributes.empty()) {
    absl::StrAppend(&out, R"(,"previous_attributes":)", object.previous_attributes);
  }
  absl::StrAppend(&out, R"(},"livemode":)", c.livemode, R"(,"pending_webhooks":1,"request":)",
                  RequestJson(object.from_api_request), R"(,"type":)", JsonString(options.type),
                  "}");
  return out;
}

}  // namespace sidestream
