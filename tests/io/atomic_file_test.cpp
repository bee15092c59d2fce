#include "resin/io/atomic_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "temp_dir.h"

namespace resin::io {
namespace {

using resin::testing::TempDir;

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs f and returns the resin::Error message it throws (fails the test when nothing is thrown).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a resin::Error";
  return "";
}

TEST(AtomicFile, WritesAndReplaces) {
  TempDir dir;
  const std::string p = dir.file("a.bin");
  std::string bytes("x\0y", 3);
  atomic_write_file(p, bytes);
  EXPECT_EQ(read_file(p), bytes);
  atomic_write_file(p, "second");
  EXPECT_EQ(read_file(p), "second");
  atomic_write_file(p, "");
  EXPECT_EQ(read_file(p), "");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"a.bin"});  // no temporaries left
}

TEST(AtomicFile, RelativePathInCurrentDirectory) {
  TempDir dir;
  struct Cwd {
    std::filesystem::path old = std::filesystem::current_path();
    ~Cwd() { std::filesystem::current_path(old); }
  } restore;
  std::filesystem::current_path(dir.path());
  atomic_write_file("rel.bin", "relative");
  EXPECT_EQ(read_file(dir.file("rel.bin")), "relative");
}

TEST(AtomicFile, KeepsPermissionsOfReplacedFile) {
  TempDir dir;
  const std::string p = dir.file("perm.bin");
  atomic_write_file(p, "one");
  ASSERT_EQ(::chmod(p.c_str(), 0640), 0);
  atomic_write_file(p, "two");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST(AtomicFile, MissingDirectoryFailsNamingPath) {
  TempDir dir;
  const std::string p = dir.file("no/such/dir/f.bin");
  const std::string msg = error_of([&] { atomic_write_file(p, "data"); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST(AtomicFile, FileUsedAsDirectoryFails) {
  TempDir dir;
  atomic_write_file(dir.file("plain"), "I am a file");
  const std::string p = dir.file("plain/f.bin");
  const std::string msg = error_of([&] { atomic_write_file(p, "data"); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;
  EXPECT_EQ(read_file(dir.file("plain")), "I am a file");
}

TEST(AtomicFile, TargetIsDirectoryFails) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("d"));
  const std::string msg = error_of([&] { atomic_write_file(dir.file("d"), "data"); });
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("d")));
}

// A write error in the middle of the data (as on a full disk), provoked in a way that also works
// as root: RLIMIT_FSIZE caps file size for every user, and write() then fails with EFBIG.
TEST(AtomicFile, WriteFailureLeavesOldFileIntact) {
  TempDir dir;
  const std::string p = dir.file("model.bin");
  atomic_write_file(p, "old contents");
  struct Restore {
    rlimit saved{};
    sighandler_t old_handler;
    Restore() {
      ::getrlimit(RLIMIT_FSIZE, &saved);
      old_handler = ::signal(SIGXFSZ, SIG_IGN);  // otherwise the process is killed
    }
    ~Restore() {
      ::setrlimit(RLIMIT_FSIZE, &saved);
      ::signal(SIGXFSZ, old_handler);
    }
  } restore;
  rlimit small = restore.saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(1 << 20, 'n');
  const std::string msg = error_of([&] { atomic_write_file(p, big); });
  ::setrlimit(RLIMIT_FSIZE, &restore.saved);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_EQ(read_file(p), "old contents");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"model.bin"});  // temporary removed
}

TEST(ReadFile, MissingFile) {
  TempDir dir;
  const std::string p = dir.file("absent.bin");
  const std::string msg = error_of([&] { read_file(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST(ReadFile, DirectoryIsNotAFile) {
  TempDir dir;
  const std::string msg = error_of([&] { read_file(dir.path()); });
  EXPECT_NE(msg.find(dir.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
}

TEST(ReadFile, LargeFileRoundTrip) {
  TempDir dir;
  std::string big(3 * 65536 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  atomic_write_file(dir.file("big"), big);
  EXPECT_EQ(read_file(dir.file("big")), big);
}

}  // namespace
}  // namespace resin::io
