#include "resin/distributed/tcp_store.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <thread>

#include "resin/core/error.h"

namespace resin::distributed {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text() { return std::strerror(errno); }

// Waits until fd is readable (or writable); false when the deadline passed first.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // let the read/write report the error
  }
}

// Reads exactly n bytes. Returns false on EOF/error, or when the deadline passed (timed_out set).
bool read_all(int fd, void* buf, size_t n, Clock::time_point deadline, bool* timed_out = nullptr) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      if (timed_out) *timed_out = true;
      return false;
    }
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

constexpr auto kForever = Clock::time_point::max();

bool read_string(int fd, std::string& s) {
  uint32_t len = 0;
  if (!read_all(fd, &len, sizeof len, kForever) || len > (64u << 20)) return false;
  s.resize(len);
  return read_all(fd, s.data(), len, kForever);
}

bool write_blob(int fd, const char* data, uint32_t len) {
  return write_all(fd, &len, sizeof len) && write_all(fd, data, len);
}

}  // namespace

// Accepts connections and serves each on its own thread (a job has tens of ranks, not thousands).
class TcpStore::Server {
 public:
  explicit Server(int port) {
    fd_ = ::socket(AF_INET6, SOCK_STREAM, 0);
    const bool v6 = fd_ >= 0;
    if (!v6) fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    RESIN_CHECK(fd_ >= 0, "rendezvous: cannot create a socket: ", errno_text());
    const int one = 1, zero = 0;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
      ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 clients too
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(static_cast<uint16_t>(port));
      rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<uint16_t>(port));
      rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0 || ::listen(fd_, 128) != 0) {
      const std::string why = errno_text();
      ::close(fd_);
      RESIN_FAIL("rendezvous: rank 0 cannot listen on port ", port, ": ", why,
                 errno == EADDRINUSE ? " (another job holds MASTER_PORT? choose another port)" : "");
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~Server() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      for (int c : conns_) ::shutdown(c, SHUT_RDWR);  // wakes their blocked reads
    }
    cv_.notify_all();
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    for (auto& t : threads_) t.join();
    for (int c : conns_) ::close(c);
    ::close(fd_);
  }

  int port() const { return port_; }

 private:
  void accept_loop() {
    while (true) {
      const int c = ::accept(fd_, nullptr, nullptr);
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) {
        if (c >= 0) ::close(c);
        return;
      }
      if (c < 0) continue;
      const int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns_.push_back(c);
      threads_.emplace_back([this, c] { serve(c); });
    }
  }

  void serve(int c) {
    while (true) {
      char op = 0;
      std::string key;
      if (!read_all(c, &op, 1, kForever) || !read_string(c, key)) return;
      if (op == 'S') {
        std::string value;
        if (!read_string(c, value)) return;
        {
          std::lock_guard<std::mutex> lk(mu_);
          data_[key] = std::move(value);
        }
        cv_.notify_all();
        const char ack = 1;
        if (!write_all(c, &ack, 1)) return;
      } else if (op == 'G') {
        std::string value;
        {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return stop_ || data_.count(key) > 0; });
          if (stop_) return;
          value = data_[key];
        }
        if (!write_blob(c, value.data(), static_cast<uint32_t>(value.size()))) return;
      } else {
        return;  // not a resin client: drop it
      }
    }
  }

  int fd_ = -1, port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::string> data_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

TcpStore::TcpStore(const std::string& host, int port, bool serve, std::chrono::milliseconds timeout)
    : host_(host), port_(port) {
  RESIN_CHECK(port >= 0 && port < 65536, "rendezvous: port ", port, " outside [0, 65535]");
  RESIN_CHECK(serve || port > 0, "rendezvous: a client needs the server's port (MASTER_PORT)");
  if (serve) {
    server_ = std::make_unique<Server>(port);
    port_ = server_->port();
  }
  const auto deadline = Clock::now() + timeout;
  std::string last_error = "no address";
  while (fd_ < 0) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port_).c_str(), &hints, &res);
    if (rc != 0) {
      last_error = ::gai_strerror(rc);
    } else {
      for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
        const int s = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (s < 0) continue;
        if (::connect(s, a->ai_addr, a->ai_addrlen) == 0) {
          fd_ = s;
        } else {
          last_error = errno_text();
          ::close(s);
        }
      }
      ::freeaddrinfo(res);
    }
    if (fd_ >= 0) break;
    if (Clock::now() >= deadline)
      RESIN_FAIL("rendezvous: could not reach rank 0 at ", host, ":", port_, " within ", timeout.count() / 1000.0,
                 " s (", last_error, "). Is rank 0 running, and do all ranks use the same MASTER_ADDR/MASTER_PORT?");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) ::close(fd_);
  server_.reset();
}

void TcpStore::set(const std::string& key, const std::vector<char>& value) {
  std::lock_guard<std::mutex> lk(mu_);
  RESIN_CHECK(fd_ >= 0, "rendezvous: the connection to rank 0 was lost earlier");
  const char op = 'S';
  char ack = 0;
  const bool ok = write_all(fd_, &op, 1) && write_blob(fd_, key.data(), static_cast<uint32_t>(key.size())) &&
                  write_blob(fd_, value.data(), static_cast<uint32_t>(value.size())) &&
                  read_all(fd_, &ack, 1, Clock::now() + std::chrono::seconds(60));
  if (!ok) {
    ::close(fd_);
    fd_ = -1;
    RESIN_FAIL("rendezvous: lost the connection to rank 0 at ", host_, ":", port_, " while setting '", key,
               "' (did rank 0 exit?)");
  }
}

std::vector<char> TcpStore::get(const std::string& key, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lk(mu_);
  RESIN_CHECK(fd_ >= 0, "rendezvous: the connection to rank 0 was lost earlier");
  const char op = 'G';
  uint32_t len = 0;
  bool timed_out = false;
  const auto deadline = Clock::now() + timeout;
  bool ok = write_all(fd_, &op, 1) && write_blob(fd_, key.data(), static_cast<uint32_t>(key.size())) &&
            read_all(fd_, &len, sizeof len, deadline, &timed_out);
  std::vector<char> value(ok ? len : 0);
  ok = ok && read_all(fd_, value.data(), len, deadline, &timed_out);
  if (!ok) {
    ::close(fd_);  // a late answer would desynchronise the stream
    fd_ = -1;
    if (timed_out)
      RESIN_FAIL("rendezvous: timed out after ", timeout.count() / 1000.0, " s waiting for '", key,
                 "': not every rank of the job has started (check WORLD_SIZE and that each RANK runs once)");
    RESIN_FAIL("rendezvous: lost the connection to rank 0 at ", host_, ":", port_, " while waiting for '", key,
               "' (did rank 0 exit?)");
  }
  return value;
}

}  // namespace resin::distributed
