#include "process/child_processes.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <thread>

namespace fusco::testing {

std::string ChildEnd::describe() const {
  std::string text = "rank " + std::to_string(rank) + ": ";
  if (hung) {
    return text + "still running at the limit (hung; killed)";
  }
  if (exited) {
    return text + "exited with " + std::to_string(code);
  }
  return text + "killed by signal " + std::to_string(signal);
}

std::string fresh_group_name() {
  static std::atomic<int> counter{0};
  return "/fusco-test-" + std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

std::vector<ChildEnd> run_children(
    int world, const std::function<int(int rank)>& body, std::chrono::milliseconds limit,
    const std::function<void(const std::vector<pid_t>&)>& meanwhile) {
  std::fflush(nullptr);  // children must not repeat the parent's buffered output
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 3;
      try {
        code = body(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: exception: %s\n", r, e.what());
      }
      std::fflush(nullptr);
      _exit(code);
    }
    pids.push_back(pid);
  }
  if (meanwhile) {
    meanwhile(pids);
  }
  std::vector<ChildEnd> ends(static_cast<size_t>(world));
  std::vector<bool> done(static_cast<size_t>(world), pids.empty());
  const auto until = std::chrono::steady_clock::now() + limit;
  size_t left = pids.size();
  while (left > 0 && std::chrono::steady_clock::now() < until) {
    for (size_t r = 0; r < pids.size(); ++r) {
      int status = 0;
      if (done[r] || waitpid(pids[r], &status, WNOHANG) != pids[r]) {
        continue;
      }
      done[r] = true;
      --left;
      ends[r].rank = static_cast<int>(r);
      ends[r].exited = WIFEXITED(status);
      ends[r].code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      ends[r].signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (size_t r = 0; r < pids.size(); ++r) {
    if (!done[r]) {
      kill(pids[r], SIGKILL);
      waitpid(pids[r], nullptr, 0);
      ends[r].rank = static_cast<int>(r);
      ends[r].hung = true;
    }
  }
  return ends;
}

int expect_failure(int rank, const Result<Communicator>& comm, StatusCode code,
                   const std::string& text) {
  if (!comm.ok() && comm.status().code() == code &&
      comm.status().message().find(text) != std::string::npos) {
    return 0;
  }
  std::fprintf(stderr, "rank %d: %s\n", rank,
               comm.ok() ? "joined" : comm.status().to_string().c_str());
  return 1;
}

bool all_passed(const std::vector<ChildEnd>& ends, std::string* why) {
  why->clear();
  for (const ChildEnd& end : ends) {
    if (!end.exited || end.code != 0) {
      *why += end.describe() + "; ";
    }
  }
  return why->empty();
}

}  // namespace fusco::testing
