// The CPU communicator: Gloo collectives over TCP (Debian libgloo-dev, the library behind
// PyTorch's CPU data parallelism). Gloo's operations block, so — as PyTorch's ProcessGroupGloo —
// one worker thread per communicator runs them in issue order; *_async return at once and the
// caller overlaps computation with the transfer.
//
// Rendezvous: every rank publishes its TCP address in `store` and connects to every other rank
// (a full mesh). Failures: Gloo reports a closed peer connection at once and a silent peer after
// `timeout` (per operation); the communicator then marks itself broken (communicator.h).
#pragma once
#include <chrono>
#include <string>

#include "resin/distributed/communicator.h"
#include "resin/distributed/tcp_store.h"

namespace resin::distributed {

struct GlooOptions {
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{60000};
  // The address this rank listens on for its peers: a network interface name (GLOO_SOCKET_IFNAME)
  // or else a host name / IP address. Empty: 127.0.0.1 when `loopback`, else this host's name.
  std::string iface, hostname;
  bool loopback = true;
};

// Connects the group (blocks until every rank joined, or throws after the timeout). The
// communicator keeps `store` alive: rank 0 serves it until the group is destroyed, since peers may
// still be reading addresses when rank 0 is done.
CommunicatorPtr make_gloo_communicator(std::shared_ptr<Store> store, const GlooOptions& o);

}  // namespace resin::distributed
