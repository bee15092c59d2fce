#include "resin/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "resin/core/error.h"

namespace resin::io {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

// Closes the fd and unlinks the temporary unless released (the rename succeeded).
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes now, reporting the error (NFS and some filesystems report write errors at close).
  int close_now() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }
  void release() { path_.clear(); }

 private:
  std::string path_;
  int fd_;
};

std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" +
         std::to_string(rng() & 0xffffffu);
}

// RESIN_FAULT_AT (see the header): parsed once per process.
struct FaultPlan {
  std::string stage, file;
  long long n = 0;  // 0: no fault planned
};

const FaultPlan& fault_plan() {
  static const FaultPlan plan = [] {
    FaultPlan p;
    const char* env = std::getenv("RESIN_FAULT_AT");
    if (!env || !*env) return p;
    const std::string v = env;
    const size_t c1 = v.find(':');
    const size_t c2 = c1 == std::string::npos ? std::string::npos : v.find(':', c1 + 1);
    p.stage = v.substr(0, c1);
    char* end = nullptr;
    const std::string count =
        c1 == std::string::npos ? "" : v.substr(c1 + 1, c2 == std::string::npos ? c2 : c2 - c1 - 1);
    p.n = std::strtoll(count.c_str(), &end, 10);
    if (c2 != std::string::npos) p.file = v.substr(c2 + 1);
    const bool stage_ok = p.stage == "partial" || p.stage == "after_tmp" || p.stage == "after_rename";
    if (!stage_ok || count.empty() || *end != '\0' || p.n < 1) {
      std::fprintf(stderr,
                   "resin: ignoring malformed RESIN_FAULT_AT='%s' "
                   "(expected <partial|after_tmp|after_rename>:<n>[:<file name>])\n",
                   env);
      p = FaultPlan{};
    }
    return p;
  }();
  return plan;
}

// Which call of atomic_write_file this is, for the fault plan (0 when the plan ignores it).
long long fault_call_number(const std::string& base) {
  static std::atomic<long long> calls{0};
  const FaultPlan& p = fault_plan();
  if (p.n == 0 || (!p.file.empty() && p.file != base)) return 0;
  return calls.fetch_add(1) + 1;
}

void maybe_fault(long long call, const char* stage) {
  if (call != 0 && call == fault_plan().n && fault_plan().stage == stage) ::kill(::getpid(), SIGKILL);
}

}  // namespace

void atomic_write_file(const std::string& path, const std::string& bytes) {
  RESIN_CHECK(!path.empty(), "atomic_write_file: empty path");
  RESIN_CHECK(path.back() != '/', "atomic_write_file: '", path, "' names a directory, expected a file path");
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);

  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  RESIN_CHECK(!exists || !S_ISDIR(st.st_mode), "atomic_write_file: '", path, "' is a directory");

  int fd = -1;
  std::string tmp;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = dir + "/." + base + ".tmp-" + unique_suffix();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST)
      RESIN_FAIL("atomic_write_file: cannot create a temporary file in '", dir, "' to write '", path,
                 "': ", errno_text(errno));
  }
  RESIN_CHECK(fd >= 0, "atomic_write_file: could not find a free temporary name in '", dir, "'");
  TempFile guard(tmp, fd);
  const long long fault_call = fault_call_number(base);
  // Keep the permissions of the file being replaced.
  if (exists && ::fchmod(fd, st.st_mode & 07777) != 0)
    RESIN_FAIL("atomic_write_file: cannot set permissions on the temporary for '", path, "': ",
               errno_text(errno));

  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    // With a fault planned the first write takes only half the bytes, so `partial` finds a torn file.
    if (left < bytes.size()) maybe_fault(fault_call, "partial");
    const size_t chunk = fault_call != 0 && left == bytes.size() ? std::max<size_t>(1, left / 2) : left;
    const ssize_t n = ::write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      RESIN_FAIL("atomic_write_file: writing '", path, "' failed after ", bytes.size() - left, " of ",
                 bytes.size(), " bytes: ", errno_text(errno), " (the existing file is unchanged)");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0)
    RESIN_FAIL("atomic_write_file: fsync of '", path, "' failed: ", errno_text(errno),
               " (the existing file is unchanged)");
  if (guard.close_now() != 0)
    RESIN_FAIL("atomic_write_file: closing '", path, "' failed: ", errno_text(errno),
               " (the existing file is unchanged)");
  maybe_fault(fault_call, "after_tmp");
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    RESIN_FAIL("atomic_write_file: renaming the temporary over '", path, "' failed: ", errno_text(errno),
               " (the existing file is unchanged)");
  guard.release();
  maybe_fault(fault_call, "after_rename");

  // Make the rename itself durable.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    RESIN_FAIL("atomic_write_file: '", path, "' was replaced but its directory '", dir,
               "' could not be opened to fsync it: ", errno_text(errno), " (the new contents may not be durable)");
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  // Some filesystems cannot fsync a directory (EINVAL); there is nothing more to do on them.
  if (rc != 0 && err != EINVAL)
    RESIN_FAIL("atomic_write_file: '", path, "' was replaced but fsync of its directory '", dir, "' failed: ",
               errno_text(err), " (the new contents may not be durable)");
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) RESIN_FAIL("read_file: cannot open '", path, "': ", errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) RESIN_FAIL("read_file: cannot stat '", path, "': ", errno_text(errno));
  RESIN_CHECK(!S_ISDIR(st.st_mode), "read_file: '", path, "' is a directory, expected a file");
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      RESIN_FAIL("read_file: reading '", path, "' failed after ", out.size(), " bytes: ", errno_text(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace resin::io
