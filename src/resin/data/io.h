// Whole-file reading for dataset loaders, with transparent gzip decompression.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace resin::data {

bool file_exists(const std::string& path);  // a regular file (following symlinks)
bool dir_exists(const std::string& path);

// Reads a whole file. When the content starts with the gzip magic (1f 8b) it is decompressed
// (concatenated gzip members are joined, as gunzip does); otherwise the bytes are returned as they
// are. A file whose name ends in ".gz" must be gzip. Throws resin::Error naming the path for a
// missing/unreadable file, a corrupt or truncated gzip stream (including CRC and length trailer
// mismatches), or a decompressed size above max_bytes.
std::vector<uint8_t> read_file_maybe_gz(const std::string& path, uint64_t max_bytes = uint64_t{1} << 34);

// The same on bytes already in memory; `name` stands for the path (in messages, and for the ".gz"
// rule). read_file_maybe_gz(path) == decode_maybe_gz(<the file's bytes>, path).
std::vector<uint8_t> decode_maybe_gz(std::vector<uint8_t> raw, const std::string& name,
                                     uint64_t max_bytes = uint64_t{1} << 34);

}  // namespace resin::data
