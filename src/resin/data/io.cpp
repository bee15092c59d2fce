#include "resin/data/io.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "resin/core/error.h"

namespace resin::data {

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool dir_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

namespace {

std::vector<uint8_t> read_raw(const std::string& path) {
  RESIN_CHECK(file_exists(path), "cannot open ", path, ": no such file");
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  RESIN_CHECK(f != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  std::error_code ec;
  const auto expected = std::filesystem::file_size(path, ec);
  std::vector<uint8_t> out(ec ? 0 : static_cast<size_t>(expected));
  size_t have = std::fread(out.data(), 1, out.size(), f.get());
  RESIN_CHECK(!std::ferror(f.get()), "error reading ", path, ": ", std::strerror(errno));
  out.resize(have);
  // The file may have grown since the size query; read any rest in chunks.
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.insert(out.end(), buf, buf + got);
  RESIN_CHECK(!std::ferror(f.get()), "error reading ", path, ": ", std::strerror(errno));
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Inflates every gzip member in `in`. inflate() verifies the CRC-32 and length trailer itself.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path, uint64_t max_bytes) {
  const char* redownload = " (the file is damaged; download or reinstall it)";
  z_stream zs{};
  RESIN_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "zlib: inflateInit2 failed for ", path);
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, &inflateEnd);
  // Inflate straight into `out`. The trailer's ISIZE (length mod 2^32) is only a size hint, capped
  // by deflate's maximum ratio (~1032:1) so a damaged trailer cannot cause a huge allocation.
  const uint64_t isize = in.size() >= 4
                             ? (uint64_t{in[in.size() - 4]} | uint64_t{in[in.size() - 3]} << 8 |
                                uint64_t{in[in.size() - 2]} << 16 | uint64_t{in[in.size() - 1]} << 24)
                             : 0;
  const uint64_t hint = std::min({isize, uint64_t{1032} * in.size(), max_bytes});
  std::vector<uint8_t> out(static_cast<size_t>(hint) + 1);  // +1: room to see the stream end without growing
  size_t have = 0;
  size_t pos = 0;
  while (true) {
    // zlib counts in uInt; feed at most 1 GiB at a time so huge files cannot overflow it.
    zs.next_in = const_cast<Bytef*>(in.data() + pos);
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size() - pos, size_t{1} << 30));
    const size_t fed = zs.avail_in;
    int rc = Z_OK;
    do {
      if (out.size() == have) out.resize(have + std::max(have, size_t{1} << 16));
      const size_t room = std::min<size_t>(out.size() - have, size_t{1} << 30);
      zs.next_out = out.data() + have;
      zs.avail_out = static_cast<uInt>(room);
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
        RESIN_FAIL("corrupt gzip data in ", path, ": ", zs.msg ? zs.msg : "invalid stream", redownload);
      }
      RESIN_CHECK(rc != Z_MEM_ERROR, "zlib: out of memory while decompressing ", path);
      have += room - zs.avail_out;
      RESIN_CHECK(have <= max_bytes, "decompressed ", path, " exceeds ", max_bytes,
                  " bytes; refusing to continue");
    } while (rc == Z_OK && (zs.avail_in > 0 || zs.avail_out == 0));
    pos += fed - zs.avail_in;
    if (rc == Z_STREAM_END) {
      // Another member may follow (as written by `cat a.gz b.gz`); trailing zero padding is ignored.
      while (pos < in.size() && in[pos] == 0) ++pos;
      if (pos == in.size()) {
        out.resize(have);
        return out;
      }
      RESIN_CHECK(in.size() - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b, "corrupt gzip data in ",
                  path, ": trailing garbage after the compressed stream", redownload);
      RESIN_CHECK(inflateReset(&zs) == Z_OK, "zlib: inflateReset failed for ", path);
      continue;
    }
    // Z_OK or Z_BUF_ERROR with all input consumed (or no progress): the stream stopped early.
    RESIN_CHECK(pos < in.size() && fed != zs.avail_in, "truncated gzip file ", path,
                ": the compressed stream ends early after ", have, " decompressed bytes", redownload);
  }
}

}  // namespace

std::vector<uint8_t> read_file_maybe_gz(const std::string& path, uint64_t max_bytes) {
  return decode_maybe_gz(read_raw(path), path, max_bytes);
}

std::vector<uint8_t> decode_maybe_gz(std::vector<uint8_t> raw, const std::string& path, uint64_t max_bytes) {
  const bool gz_magic = raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
  if (gz_magic) return gunzip(raw, path, max_bytes);
  RESIN_CHECK(!ends_with(path, ".gz"), "corrupt gzip file ", path, ": it does not start with the gzip ",
              "magic bytes 1f 8b (the file is damaged; download or reinstall it)");
  RESIN_CHECK(raw.size() <= max_bytes, path, " has ", raw.size(), " bytes, more than the limit ", max_bytes);
  return raw;
}

}  // namespace resin::data
