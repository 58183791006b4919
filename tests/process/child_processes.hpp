#pragma once

// Multi-process tests without a launcher: the test forks one child per rank, every child
// joins a shared-memory group under a fresh name and reports through its exit code (0 = the
// rank's checks passed; its messages go to stderr). The parent's wait is bounded: children
// still running at the limit are killed and reported as hung.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "fusco/communicator.hpp"

namespace fusco::testing {

/// How one child ended.
struct ChildEnd {
  int rank = 0;
  bool exited = false;  // exited normally with `code`
  int code = -1;
  int signal = 0;     // the signal that ended it, when not exited
  bool hung = false;  // still running at the limit (then killed)
  std::string describe() const;
};

/// A shared-memory name no other group of this machine uses.
std::string fresh_group_name();

/// Forks `world` children; child r runs body(r) and exits with its return value (an escaping
/// exception exits with 3). `meanwhile(pids)` runs in the parent after the fork (to stop or
/// kill a child). Returns when all children ended or `limit` passed.
std::vector<ChildEnd> run_children(
    int world, const std::function<int(int rank)>& body, std::chrono::milliseconds limit,
    const std::function<void(const std::vector<pid_t>&)>& meanwhile = nullptr);

/// A child's verdict on a group that must not be made: 0 when `comm` failed with `code` and a
/// message containing `text`; otherwise 1, with what it got on stderr.
int expect_failure(int rank, const Result<Communicator>& comm, StatusCode code,
                   const std::string& text);

/// True when every child exited with code 0; otherwise lists the others.
bool all_passed(const std::vector<ChildEnd>& ends, std::string* why);

}  // namespace fusco::testing
