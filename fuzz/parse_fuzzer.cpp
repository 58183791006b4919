// libFuzzer target: everything fusco parses from text or bytes it did not make itself in this
// process: routing specs, dtype / dedup / relay names, FUSCO_* environment values,
// fusco_bench's and fusco_plan's command lines, cluster specs (fusco_plan --topology), .npy
// routing files, and the planner's wire messages from peers (expert counts, staged
// metadata), which must be rejected with an error, never crash or over-allocate.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "bench_args.hpp"
#include "core/env.hpp"
#include "fusco/fusco.hpp"
#include "model/cost_model.hpp"
#include "plan/planner.hpp"
#include "plan_args.hpp"
#include "testing/npy.hpp"
#include "testing/routing.hpp"

namespace fusco::fuzz {
namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "parse_fuzzer: %s\n", what.c_str());
  std::abort();
}

void names(const std::string& text) {
  (void)testing::parse_routing(text);
  (void)dtype_from_name(text);
  (void)dedup_from_name(text);
  (void)relay_policy_from_name(text);
}

void environment(const std::string& text) {
  for (const char* name : {"FUSCO_DEDUP", "FUSCO_CHUNK_BYTES", "FUSCO_RELAY", "FUSCO_TIMEOUT_MS",
                           "FUSCO_SHM_SLOT_BYTES", "FUSCO_COMBINE_BUFFER_BYTES",
                           "FUSCO_UCX_PROTOCOL", "FUSCO_PROCESS_RELAYS", "FUSCO_NCCL_WINDOW_BYTES",
                           "FUSCO_NCCL_CHECK_CALLS", "FUSCO_NCCL_PATH"}) {
    setenv(name, text.c_str(), 1);  // NOLINT(concurrency-mt-unsafe): single-threaded target
    Result<PlanOptions> options = PlanOptions::from_env();
    if (options.ok() && !options.value().validate().ok()) {
      fail(std::string("from_env accepted an invalid value of ") + name);
    }
    (void)core::shm_slot_bytes_from_env();
    Result<int32_t> protocol = core::ucx_protocol_from_env();
    Result<int32_t> path = core::nccl_path_from_env(0);
    Result<int64_t> window = core::nccl_window_bytes_from_env(4096);
    (void)core::nccl_check_calls_from_env(true);
    if ((protocol.ok() && (protocol.value() < 0 || protocol.value() > 2)) ||
        (path.ok() && (path.value() < 0 || path.value() > 2)) ||
        (window.ok() && window.value() < 4096)) {
      fail(std::string("an environment parser accepted an out-of-range value of ") + name);
    }
    unsetenv(name);  // NOLINT(concurrency-mt-unsafe)
  }
}

void command_line(const std::string& text) {
  std::vector<std::string> words{"fusco_bench"};
  std::string word;
  for (const char ch : text) {
    if (ch == ' ') {
      words.push_back(word);
      word.clear();
    } else {
      word.push_back(ch);
    }
  }
  words.push_back(word);
  std::vector<char*> argv;
  for (std::string& w : words) {
    argv.push_back(w.data());
  }
  (void)bench::parse_bench_args(static_cast<int>(argv.size()), argv.data());
  if (text.find('@') == std::string::npos) {  // --topology @FILE would read a file
    words[0] = "fusco_plan";
    argv[0] = words[0].data();
    (void)bench::parse_plan_args(static_cast<int>(argv.size()), argv.data());
  }
}

void cluster_spec(const std::string& text) {
  Result<plan::ClusterSpec> spec = plan::parse_cluster_spec(text, plan::ClusterSpec());
  if (!spec.ok()) return;
  if (static_cast<int64_t>(spec.value().nodes) * spec.value().ranks_per_node > 65536) {
    fail("parse_cluster_spec accepted more than 65536 ranks");
  }
  Result<plan::ClusterSpec> again = plan::parse_cluster_spec(spec.value().to_string(), {});
  if (!again.ok()) fail("a parsed cluster spec does not parse again: " + spec.value().to_string());
}

void npy_file(FuzzedDataProvider& in) {
  std::string bytes = in.ConsumeBool() ? std::string("\x93NUMPY\x01\x00", 8) : std::string();
  bytes += in.ConsumeRandomLengthString(512);
  Result<testing::NpyArray> array = testing::parse_npy(bytes);
  if (!array.ok()) return;
  int64_t count = 1;
  for (int64_t dim : array.value().shape) count *= dim;
  if (count != static_cast<int64_t>(array.value().values.size())) {
    fail("parse_npy returned a shape that does not match its values");
  }
}

void wire(FuzzedDataProvider& in) {
  const int sources = in.ConsumeIntegralInRange(1, 8);
  const int64_t local = in.ConsumeIntegralInRange<int64_t>(0, 16);
  std::vector<transport::Bytes> counts;
  for (int s = 0; s < sources; ++s) {
    const std::vector<uint8_t> raw = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange(0, 256));
    counts.emplace_back(reinterpret_cast<const std::byte*>(raw.data()),
                        reinterpret_cast<const std::byte*>(raw.data()) + raw.size());
  }
  (void)plan::compute_receiver_offsets(counts, local);
  detail::PlanData plan;
  plan.partial_sums = in.ConsumeBool();
  const std::vector<uint8_t> raw = in.ConsumeRemainingBytes<uint8_t>();
  const transport::Bytes metadata(reinterpret_cast<const std::byte*>(raw.data()),
                                  reinterpret_cast<const std::byte*>(raw.data()) + raw.size());
  (void)plan::decode_staged_in(plan, 0, metadata);
}

}  // namespace
}  // namespace fusco::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string text = in.ConsumeRandomLengthString(256);
  fusco::fuzz::names(text);
  fusco::fuzz::environment(text);
  fusco::fuzz::command_line(text);
  fusco::fuzz::cluster_spec(text);
  fusco::fuzz::npy_file(in);
  fusco::fuzz::wire(in);
  return 0;
}
