#include "server/common/malloc_tuning.h"

#include <malloc.h>

#include <cstdlib>

namespace sidestream {

void TuneMalloc() {
  if (std::getenv("GLIBC_TUNABLES") != nullptr) return;
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
}

}  // namespace sidestream
