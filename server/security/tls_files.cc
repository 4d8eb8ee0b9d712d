#include "server/security/tls_files.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "server/security/config_file.h"

namespace sidestream {
namespace {

// The last OpenSSL error on this thread, as text; clears the queue.
std::string OpenSslError() {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof(buf));
  return buf;
}

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

std::string Describe(X509* cert) {
  std::string subject = "?";
  if (char* s = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0)) {
    subject = s;
    OPENSSL_free(s);
  }
  std::string expires = "?";
  struct tm tm;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
    expires = absl::FormatTime(absl::RFC3339_sec, absl::FromTM(tm, absl::UTCTimeZone()),
                               absl::UTCTimeZone());
  }
  return absl::StrCat("subject=", subject, " expires=", expires);
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view flag) {
  return ReadConfigFile(path, absl::StrCat("--", flag));
}

absl::StatusOr<std::string> CheckCertificateAndKey(const std::string& cert_file,
                                                   const std::string& key_file,
                                                   absl::string_view flag_prefix) {
  const std::string cert_flag = absl::StrCat("--", flag_prefix, "_cert_file");
  const std::string key_flag = absl::StrCat("--", flag_prefix, "_key_file");
  // Readability first, for the usual NOT_FOUND / PERMISSION_DENIED codes.
  if (absl::StatusOr<std::string> s = ReadConfigFile(cert_file, cert_flag); !s.ok()) {
    return s.status();
  }
  if (absl::StatusOr<std::string> s = ReadConfigFile(key_file, key_flag); !s.ok()) {
    return s.status();
  }
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return absl::InternalError("cannot create an OpenSSL context");
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert_flag, " ", cert_file, ": not a PEM certificate chain (", OpenSslError(), ")"));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(key_flag, " ", key_file,
                                                   ": not a PEM private key matching ", cert_flag,
                                                   " (", OpenSslError(), ")"));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(key_flag, " ", key_file,
                                                   " is not the key of the certificate in ",
                                                   cert_flag, " ", cert_file));
  }
  X509* leaf = SSL_CTX_get0_certificate(ctx.get());
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(cert_flag, " ", cert_file, ": no certificate"));
  }
  return Describe(leaf);
}

absl::StatusOr<std::string> CheckCaFile(const std::string& ca_file, absl::string_view flag) {
  absl::StatusOr<std::string> pem = ReadPemFile(ca_file, flag);
  if (!pem.ok()) return pem.status();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())), &BIO_free);
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    ++count;
    X509_free(cert);
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", ca_file, ": no PEM certificate found"));
  }
  return absl::StrCat(count, " CA certificate(s)");
}

}  // namespace sidestream
