#include "process/simulated_machines.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace fusco::testing {

namespace {

// Runs `args` (a program and its arguments, found through PATH) and waits for it; its output
// goes to this process's stderr only when it fails.
Status run(const std::vector<std::string>& args) {
  std::string line;
  for (const std::string& arg : args) line += (line.empty() ? "" : " ") + arg;
  const pid_t pid = fork();
  if (pid < 0) return Status(StatusCode::kUnsupported, "fork failed for: " + line);
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status(StatusCode::kUnsupported,
                  "'" + line + "' failed (exit " +
                      std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
  return Status();
}

// The second octet of the machines' subnet: different for concurrent test processes.
int subnet() { return 100 + static_cast<int>(getpid() % 100); }

}  // namespace

Result<std::unique_ptr<SimulatedMachines>> SimulatedMachines::create(int machines) {
  if (geteuid() != 0) {
    return Status(StatusCode::kUnsupported, "simulated machines need root (network namespaces)");
  }
  std::unique_ptr<SimulatedMachines> made(
      new SimulatedMachines("fusco-sim-" + std::to_string(getpid()), machines));
  const std::string hub = made->hub_ns();
  FUSCO_RETURN_IF_ERROR(run({"ip", "netns", "add", hub}));
  FUSCO_RETURN_IF_ERROR(run({"ip", "-n", hub, "link", "add", "br0", "type", "bridge"}));
  FUSCO_RETURN_IF_ERROR(run({"ip", "-n", hub, "link", "set", "br0", "up"}));
  for (int m = 0; m < machines; ++m) {
    const std::string ns = made->machine_ns(m);
    const std::string port = "m" + std::to_string(m);
    const std::string address =
        "10." + std::to_string(subnet()) + ".0." + std::to_string(m + 1) + "/24";
    FUSCO_RETURN_IF_ERROR(run({"ip", "netns", "add", ns}));
    FUSCO_RETURN_IF_ERROR(run({"ip", "link", "add", "fsim0", "netns", ns, "type", "veth", "peer",
                               "name", port, "netns", hub}));
    FUSCO_RETURN_IF_ERROR(run({"ip", "-n", ns, "addr", "add", address, "dev", "fsim0"}));
    FUSCO_RETURN_IF_ERROR(run({"ip", "-n", ns, "link", "set", "fsim0", "up"}));
    FUSCO_RETURN_IF_ERROR(run({"ip", "-n", ns, "link", "set", "lo", "up"}));
    FUSCO_RETURN_IF_ERROR(run({"ip", "-n", hub, "link", "set", port, "master", "br0", "up"}));
  }
  return made;
}

SimulatedMachines::~SimulatedMachines() {
  for (int m = 0; m < machines_; ++m) (void)run({"ip", "netns", "del", machine_ns(m)});
  (void)run({"ip", "netns", "del", hub_ns()});
}

std::string SimulatedMachines::machine_ns(int machine) const {
  return prefix_ + "-m" + std::to_string(machine);
}

Status SimulatedMachines::enter(int machine) const {
  const std::string path = "/run/netns/" + machine_ns(machine);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status(StatusCode::kUnsupported, "cannot open " + path);
  const bool entered = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  if (!entered || unshare(CLONE_NEWUTS | CLONE_NEWNS) != 0) {
    return Status(StatusCode::kUnsupported, "cannot enter " + path);
  }
  // As `ip netns exec` does: a /sys of the machine's network namespace (UCX lists the network
  // devices there), in a mount namespace of this child's own; /dev/shm stays shared.
  if (mount("", "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0 ||
      umount2("/sys", MNT_DETACH) != 0 ||
      mount(machine_ns(machine).c_str(), "/sys", "sysfs", 0, nullptr) != 0) {
    return Status(StatusCode::kUnsupported, "cannot mount the /sys of " + path);
  }
  const std::string host = "sim-machine-" + std::to_string(machine);
  if (sethostname(host.c_str(), host.size()) != 0) {
    return Status(StatusCode::kUnsupported, "cannot set the host name " + host);
  }
  // NOLINTBEGIN(concurrency-mt-unsafe): a forked child, one thread
  setenv("UCX_TLS", "tcp", 1);
  setenv("UCX_NET_DEVICES", "fsim0", 1);
  // NOLINTEND(concurrency-mt-unsafe)
  return Status();
}

Status SimulatedMachines::set_link(int machine, bool up) const {
  // The port leaves (or rejoins) the bridge: the machine's link keeps its carrier, as when a
  // switch or a route fails further away, and its packets go nowhere.
  const std::string port = "m" + std::to_string(machine);
  if (up) return run({"ip", "-n", hub_ns(), "link", "set", port, "master", "br0"});
  return run({"ip", "-n", hub_ns(), "link", "set", port, "nomaster"});
}

Status SimulatedMachines::limit_rate(const std::string& rate) const {
  for (int m = 0; m < machines_; ++m) {
    FUSCO_RETURN_IF_ERROR(run({"tc", "-n", machine_ns(m), "qdisc", "replace", "dev", "fsim0",
                               "root", "tbf", "rate", rate, "burst", "256kb", "latency", "100ms"}));
  }
  return Status();
}

std::string simulated_machines_unavailable(const Result<std::unique_ptr<SimulatedMachines>>& made) {
  return made.ok() ? "" : made.status().message();
}

}  // namespace fusco::testing
