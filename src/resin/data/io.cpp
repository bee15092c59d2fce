#include "resin/data/io.h"

#include <zlib.h>

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
  std::vector<uint8_t> out;
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
  std::vector<uint8_t> out;
  z_stream zs{};
  RESIN_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "zlib: inflateInit2 failed for ", path);
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, &inflateEnd);
  size_t pos = 0;
  uint8_t buf[1 << 16];
  while (true) {
    // zlib counts in uInt; feed at most 1 GiB at a time so huge files cannot overflow it.
    zs.next_in = const_cast<Bytef*>(in.data() + pos);
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size() - pos, size_t{1} << 30));
    const size_t fed = zs.avail_in;
    int rc = Z_OK;
    do {
      zs.next_out = buf;
      zs.avail_out = sizeof buf;
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
        RESIN_FAIL("corrupt gzip data in ", path, ": ", zs.msg ? zs.msg : "invalid stream", redownload);
      }
      RESIN_CHECK(rc != Z_MEM_ERROR, "zlib: out of memory while decompressing ", path);
      const size_t produced = sizeof buf - zs.avail_out;
      RESIN_CHECK(out.size() + produced <= max_bytes, "decompressed ", path, " exceeds ", max_bytes,
                  " bytes; refusing to continue");
      out.insert(out.end(), buf, buf + produced);
    } while (rc == Z_OK && (zs.avail_in > 0 || zs.avail_out == 0));
    pos += fed - zs.avail_in;
    if (rc == Z_STREAM_END) {
      // Another member may follow (as written by `cat a.gz b.gz`); trailing zero padding is ignored.
      while (pos < in.size() && in[pos] == 0) ++pos;
      if (pos == in.size()) return out;
      RESIN_CHECK(in.size() - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b, "corrupt gzip data in ",
                  path, ": trailing garbage after the compressed stream", redownload);
      RESIN_CHECK(inflateReset(&zs) == Z_OK, "zlib: inflateReset failed for ", path);
      continue;
    }
    // Z_OK or Z_BUF_ERROR with all input consumed (or no progress): the stream stopped early.
    RESIN_CHECK(pos < in.size() && fed != zs.avail_in, "truncated gzip file ", path, ": the compressed stream ends early after ",
                out.size(), " decompressed bytes", redownload);
  }
}

}  // namespace

std::vector<uint8_t> read_file_maybe_gz(const std::string& path, uint64_t max_bytes) {
  std::vector<uint8_t> raw = read_raw(path);
  const bool gz_magic = raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
  if (gz_magic) return gunzip(raw, path, max_bytes);
  RESIN_CHECK(!ends_with(path, ".gz"), "corrupt gzip file ", path, ": it does not start with the gzip ",
              "magic bytes 1f 8b (the file is damaged; download or reinstall it)");
  RESIN_CHECK(raw.size() <= max_bytes, path, " has ", raw.size(), " bytes, more than the limit ", max_bytes);
  return raw;
}

}  // namespace resin::data
