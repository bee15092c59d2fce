// The rendezvous store: a tiny key-value service over TCP through which the ranks of a job find
// each other (each publishes its transport address, then reads everyone else's) — the role of
// PyTorch's TCPStore behind MASTER_ADDR/MASTER_PORT. Gloo 0.5 (Debian) ships only file and Redis
// stores, so resin brings this one: rank 0 serves it on MASTER_PORT (all interfaces), every rank
// (rank 0 included) is a client of MASTER_ADDR:MASTER_PORT.
//
// Protocol (host byte order; every rank runs the same build): a request is
//   u8 op ('S' set | 'G' get), u32 key length, key bytes, and for 'S' u32 value length, value bytes;
// 'S' is answered with one byte, 'G' with u32 length + value as soon as the key exists.
// Values are overwritten by a later set. The server lives as long as its TcpStore.
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace resin::distributed {

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& value) = 0;
  // Blocks until `key` has been set (by any rank); throws resin::Error naming the key after `timeout`.
  virtual std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) = 0;
};

class TcpStore final : public Store {
 public:
  // serve: also host the store on `port` (0: any free port, see port()). Connecting retries until
  // `timeout` (the server may start later); then throws with the address it tried.
  TcpStore(const std::string& host, int port, bool serve, std::chrono::milliseconds timeout);
  ~TcpStore() override;
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  void set(const std::string& key, const std::vector<char>& value) override;
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override;
  int port() const { return port_; }

 private:
  class Server;
  std::unique_ptr<Server> server_;
  std::string host_;
  int port_ = 0;
  int fd_ = -1;
  std::mutex mu_;  // one request at a time on the client connection
};

}  // namespace resin::distributed
