// The block cache behind Storage::allocate. Freed blocks of >= 256 KiB are kept (up to 2 GiB in
// all) and handed to the next request of a similar size (at most 1/8 larger), so a training loop,
// which allocates the same activation sizes every step, stops unmapping its buffers and faulting
// fresh zeroed pages back in. allocator_stats() counts live storages only; this is the rest.
#pragma once
#include <cstdint>

namespace resin {

int64_t storage_cache_bytes();
// Returns every cached block to the system allocator.
void trim_storage_cache();

}  // namespace resin
