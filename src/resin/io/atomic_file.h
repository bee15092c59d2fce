// Whole-file reads and crash-safe whole-file writes.
//
// atomic_write_file: after it returns, `path` holds exactly `bytes`, durably (file and directory
// entry fsync'ed); if it throws, `path` is unchanged (the old file, or still absent) and no
// temporary file is left behind. It writes a uniquely named temporary in the same directory,
// fsyncs it, renames it over `path` (atomic on POSIX filesystems), then fsyncs the directory.
// A new file gets mode 0666 minus the umask; an existing file's permission bits are kept.
// Errors (resin::Error) name the path, the failing step and strerror(errno). One exception to
// "unchanged on throw": if only the final directory fsync fails, the new contents are in place
// but may not survive a crash, and the error says so.
//
// Test hook (crash-safety tests, tests/crash): the environment variable
//   RESIN_FAULT_AT=<stage>:<n>[:<file name>]
// makes the n-th call (1-based, counting only writes to files with that base name when one is
// given) SIGKILL its own process at <stage>: `partial` (half the bytes are in the temporary file),
// `after_tmp` (the temporary is complete and fsync'ed, not yet renamed) or `after_rename` (renamed,
// directory not yet fsync'ed). A malformed value is ignored with a warning on stderr. Unset, it
// costs one getenv per process.
#pragma once
#include <string>

namespace resin::io {

void atomic_write_file(const std::string& path, const std::string& bytes);

// The whole contents of a regular file. Throws naming the path when it is missing, is a
// directory, or cannot be read.
std::string read_file(const std::string& path);

}  // namespace resin::io
