#include "resin/distributed/process_group.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "resin/distributed/tcp_store.h"
#ifdef RESIN_WITH_GLOO
#include "resin/distributed/gloo_communicator.h"
#endif
#ifdef RESIN_WITH_NCCL
#include "resin/distributed/nccl_communicator.h"
#endif

namespace resin::distributed {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int64_t env_int(const char* name, int64_t lo, int64_t hi) {
  const char* v = env(name);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v, &end, 10);
  RESIN_CHECK(errno == 0 && end != v && *end == '\0', "distributed: ", name, " expects an integer, got '", v, "'");
  RESIN_CHECK(x >= lo && x <= hi, "distributed: ", name, " must be in [", lo, ", ", hi, "], got ", x);
  return x;
}

// The first launcher whose rank variable is set provides rank, size and local rank.
struct LauncherVars {
  const char *rank, *size, *local_rank;
};
constexpr LauncherVars kLaunchers[] = {
    {"RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

DistConfig dist_config_from_env() {
  DistConfig c;
  for (const LauncherVars& l : kLaunchers) {
    if (!env(l.rank) && !env(l.size)) continue;
    RESIN_CHECK(env(l.rank) && env(l.size), "distributed: ", env(l.rank) ? l.rank : l.size, " is set but ",
                env(l.rank) ? l.size : l.rank, " is not; a launcher sets both");
    c.world_size = static_cast<int>(env_int(l.size, 1, 1 << 20));
    c.rank = static_cast<int>(env_int(l.rank, 0, c.world_size - 1));
    c.local_rank = env(l.local_rank) ? static_cast<int>(env_int(l.local_rank, 0, 1 << 20)) : 0;
    break;
  }
  if (const char* v = env("LOCAL_WORLD_SIZE"); v && std::atoi(v) > 0) c.local_world_size = std::atoi(v);
  if (const char* a = env("MASTER_ADDR")) c.master_addr = a;
  if (env("MASTER_PORT")) c.master_port = static_cast<int>(env_int("MASTER_PORT", 1, 65535));
  if (const char* t = env("RESIN_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double s = std::strtod(t, &end);
    RESIN_CHECK(end != t && *end == '\0' && std::isfinite(s) && s > 0 && s <= 86400,
                "distributed: RESIN_DIST_TIMEOUT expects seconds in (0, 86400], got '", t, "'");
    c.timeout = std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0));
  }
  if (const char* i = env("GLOO_SOCKET_IFNAME")) c.iface = i;
  return c;
}

bool gloo_available() {
#ifdef RESIN_WITH_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef RESIN_WITH_NCCL
  return true;
#else
  return false;
#endif
}

CommunicatorPtr init_process_group(const DistConfig& c) {
  RESIN_CHECK(c.world_size >= 1 && c.rank >= 0 && c.rank < c.world_size, "distributed: rank ", c.rank,
              " outside [0, ", c.world_size, ")");
  RESIN_CHECK(c.backend == "gloo" || c.backend == "nccl", "distributed: unknown backend '", c.backend,
              "' (expected gloo or nccl)");
  if (c.world_size == 1) return make_single_process_communicator();
  RESIN_CHECK(c.backend != "gloo" || gloo_available(),
              "distributed: this resin was built without Gloo; install libgloo-dev (scripts/install-deps.sh) "
              "and rebuild");
  RESIN_CHECK(c.backend != "nccl" || nccl_available(),
              "distributed: this resin was built without NCCL; configure with -DRESIN_WITH_NCCL=ON on a machine "
              "with CUDA and NCCL");
  auto store = std::make_shared<TcpStore>(c.master_addr, c.master_port, c.rank == 0, c.timeout);
#ifdef RESIN_WITH_NCCL
  if (c.backend == "nccl")
    return make_nccl_communicator(store, c.rank, c.world_size, c.local_rank, c.timeout, c.gpu);
#endif
#ifdef RESIN_WITH_GLOO
  return make_gloo_communicator(store, {.rank = c.rank,
                                        .size = c.world_size,
                                        .timeout = c.timeout,
                                        .iface = c.iface,
                                        .hostname = {},
                                        .loopback = is_loopback(c.master_addr)});
#else
  (void)is_loopback;
  RESIN_FAIL("distributed: no communicator for backend '", c.backend, "' in this build");
#endif
}

}  // namespace resin::distributed
