// Joining a data-parallel job. A job is WORLD_SIZE processes; each learns its place from the
// environment its launcher set, the same variables torchrun uses:
//   RANK         0..WORLD_SIZE-1, unique in the job
//   WORLD_SIZE   number of processes
//   LOCAL_RANK   index on this machine (GPU choice for NCCL)
//   LOCAL_WORLD_SIZE  processes on this machine (optional; `resin train --dist-backend auto`)
//   MASTER_ADDR  host of rank 0, which serves the rendezvous store (default 127.0.0.1)
//   MASTER_PORT  its port (default 29500)
// `resin launch` sets them; under mpirun (Open MPI: OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK) or srun
// (SLURM_PROCID/NTASKS/LOCALID) RANK/WORLD_SIZE come from the launcher's own variables, and
// MASTER_ADDR must name rank 0's host when the job spans machines.
// Optional: RESIN_DIST_TIMEOUT (seconds, default 60), GLOO_SOCKET_IFNAME (the network interface
// for Gloo's connections between machines).
#pragma once
#include <chrono>
#include <string>

#include "resin/distributed/communicator.h"

namespace resin::distributed {

struct DistConfig {
  int rank = 0, world_size = 1, local_rank = 0;
  int local_world_size = 0;  // processes on this machine (LOCAL_WORLD_SIZE); 0 when the launcher did not say
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{60000};
  std::string backend = "gloo";  // gloo (CPU) | nccl (GPU; needs a build with RESIN_WITH_NCCL)
  int gpu = -1;                  // NCCL's GPU for this rank; -1: LOCAL_RANK modulo the GPUs there are
  std::string iface;             // GLOO_SOCKET_IFNAME
  bool distributed() const { return world_size > 1; }
};

// Reads the variables above; world_size 1 (one process, no communication) when none is set.
// Malformed or inconsistent values throw resin::Error naming the variable.
DistConfig dist_config_from_env();

// Connects the group described by c (blocks until every rank joined; throws after c.timeout with
// what is missing). world_size 1 gives make_single_process_communicator(). Once per job and
// MASTER_PORT: the rendezvous keys are not namespaced, so a second group on the same port while
// the first one's store still serves would read stale addresses.
CommunicatorPtr init_process_group(const DistConfig& c);

bool gloo_available();  // built with libgloo-dev
bool nccl_available();  // built with RESIN_WITH_NCCL

}  // namespace resin::distributed
