// pybind11 module fusco._C: the C++ API for the Python package. Arrays cross as raw pointers
// with dtype codes and shapes (the package's Python layer reads them from numpy arrays and
// torch tensors), so this module needs neither numpy nor torch headers and copies nothing.
// Every blocking call releases the GIL. Failures return (code, message) for the package to
// raise as fusco.FuscoError subclasses.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/env.hpp"
#include "fusco/fusco.hpp"

namespace py = pybind11;

namespace fusco::python {

namespace {

using CommHandle = std::shared_ptr<Communicator>;

// A host tensor view from what the Python layer read off an array.
Result<TensorView> make_view(const char* arg, uintptr_t ptr, int32_t dtype,
                             const std::vector<int64_t>& shape, int64_t row_stride = 0) {
  if (!dtype_is_valid(dtype)) {
    return Status(StatusCode::kInvalidArgument,
                  std::string(arg) + ": dtype code " + std::to_string(dtype) + " is not known");
  }
  if (shape.size() > TensorView::kMaxDims) {
    return Status(StatusCode::kInvalidArgument, std::string(arg) + " has " +
                                                    std::to_string(shape.size()) +
                                                    " dimensions; at most 4 are supported");
  }
  TensorView view;
  // The address comes from Python (numpy's __array_interface__ or torch's data_ptr()).
  view.data = reinterpret_cast<void*>(ptr);  // NOLINT(performance-no-int-to-ptr)
  view.dtype = static_cast<DType>(dtype);
  view.ndim = static_cast<int>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    view.shape[d] = shape[d];
  }
  view.row_stride = row_stride;
  return view;
}

py::tuple status_tuple(const Status& status) {
  return py::make_tuple(static_cast<int>(status.code()), status.message());
}

py::dict stats_dict(const PlanStats& s) {
  py::dict d;
  d["num_tokens"] = s.num_tokens;
  d["logical_rows"] = s.logical_rows;
  d["rows_per_destination"] = s.rows_per_destination;
  d["wire_rows_per_destination"] = s.wire_rows_per_destination;
  d["intra_node_rows"] = s.intra_node_rows;
  d["inter_node_rows"] = s.inter_node_rows;
  d["inter_node_rows_without_dedup"] = s.inter_node_rows_without_dedup;
  d["relay_forwarded_rows"] = s.relay_forwarded_rows;
  d["received_rows"] = s.received_rows;
  d["direct_peers"] = s.direct_peers;
  d["dedup_ratio"] = s.dedup_ratio();
  d["received_rows_per_rank_unbalanced"] = s.received_rows_per_rank_unbalanced;
  d["received_rows_per_rank"] = s.received_rows_per_rank;
  return d;
}

// Options from Python keywords on top of the environment's defaults.
// The receive layout from its Python keywords: kind "expert-major" (with an alignment),
// "rank-major" or "capacity" (with a capacity and overflow "drop" or "error").
Result<RecvLayout> recv_layout(const std::optional<std::string>& kind, int64_t alignment,
                               std::optional<int64_t> capacity, const std::string& overflow) {
  const std::string name = kind.value_or(capacity ? "capacity" : "expert-major");
  RecvLayout layout;
  if (name == "expert-major") {
    layout = RecvLayout::expert_major(alignment);
  } else if (name == "rank-major") {
    layout = RecvLayout::rank_major();
    layout.alignment = alignment;  // validated: 1 only
  } else if (name == "capacity") {
    if (!capacity) {
      return Status(StatusCode::kInvalidArgument, "layout 'capacity' needs capacity=<rows>");
    }
    layout = RecvLayout::capacity_bounded(*capacity);
    layout.alignment = alignment;
  } else {
    return Status(StatusCode::kInvalidArgument,
                  "layout '" + name +
                      "' is not known; expected expert-major, rank-major or "
                      "capacity");
  }
  if (capacity && name != "capacity") {
    return Status(StatusCode::kInvalidArgument,
                  "capacity=" + std::to_string(*capacity) + " applies to layout 'capacity' only");
  }
  if (overflow != "drop" && overflow != "error") {
    return Status(StatusCode::kInvalidArgument,
                  "overflow '" + overflow + "' is not known; expected drop or error");
  }
  layout.overflow =
      overflow == "error" ? RecvLayout::Overflow::kError : RecvLayout::Overflow::kDrop;
  FUSCO_RETURN_IF_ERROR(layout.validate());
  return layout;
}

Result<PlanOptions> plan_options(const std::optional<std::string>& dedup,
                                 const std::optional<std::string>& relay,
                                 std::optional<int64_t> chunk_bytes,
                                 std::optional<int64_t> timeout_ms) {
  Result<PlanOptions> options = PlanOptions::from_env();
  FUSCO_RETURN_IF_ERROR(options.status());
  if (dedup) {
    Result<Dedup> parsed = dedup_from_name(*dedup);
    FUSCO_RETURN_IF_ERROR(parsed.status());
    options.value().dedup = parsed.value();
  }
  if (relay) {
    Result<RelayPolicy> parsed = relay_policy_from_name(*relay);
    FUSCO_RETURN_IF_ERROR(parsed.status());
    options.value().relay = parsed.value();
  }
  if (chunk_bytes) options.value().chunk_bytes = *chunk_bytes;
  if (timeout_ms) options.value().timeout_ms = *timeout_ms;
  return options;
}

// How long joining a group may wait: the caller's timeout_ms, else FUSCO_TIMEOUT_MS (only
// that variable: a bad value of another one must not stop a process from joining).
Result<int64_t> join_timeout(std::optional<int64_t> timeout_ms) {
  if (timeout_ms) return *timeout_ms;
  return core::timeout_ms_from_env();
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusco C++ core (use the fusco package)";
  m.attr("__version__") = version();

  py::class_<Plan>(m, "Plan")
      .def(py::init<>())  // an empty plan: what a rank whose arguments were rejected passes on
      .def_property_readonly("num_recv_rows", &Plan::num_recv_rows)
      .def_property_readonly("tokens_per_expert", &Plan::tokens_per_expert)
      .def_property_readonly("num_tokens", &Plan::num_tokens)
      .def_property_readonly("topk", &Plan::topk)
      .def_property_readonly("num_experts", &Plan::num_experts)
      .def_property_readonly("rank", &Plan::rank)
      .def("combine_rounds", &Plan::combine_rounds, py::arg("row_bytes"))
      .def_property_readonly("local_experts", &Plan::local_experts)
      .def_property_readonly("padded_tokens_per_expert", &Plan::padded_tokens_per_expert)
      .def_property_readonly("dropped_per_expert", &Plan::dropped_per_expert)
      .def_property_readonly("recv_local_experts", &Plan::recv_local_experts)
      .def_property_readonly("slot_ranks", &Plan::slot_ranks)
      .def_property_readonly("stats", [](const Plan& p) { return stats_dict(p.stats()); });

  py::class_<Work>(m, "Work")
      .def(py::init<>())
      .def("wait",
           [](const Work& work) {
             Status status;
             {
               py::gil_scoped_release release;
               status = work.wait();
             }
             return status_tuple(status);
           })
      .def("done", &Work::done);

  py::class_<Communicator, CommHandle>(m, "Communicator")
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("world_size", &Communicator::world_size)
      .def_property_readonly("ranks_per_node",
                             [](const Communicator& c) { return c.topology().node_width(); })
      .def_property_readonly("usable", &Communicator::usable)
      .def("abort", &Communicator::abort, py::arg("reason"),
           py::call_guard<py::gil_scoped_release>())
      .def(
          "plan",
          [](Communicator& comm, uintptr_t ptr, int32_t dtype, const std::vector<int64_t>& shape,
             int64_t num_experts, const std::optional<std::vector<int32_t>>& owners,
             const std::optional<std::vector<std::vector<int32_t>>>& replicas,
             const std::optional<std::string>& dedup, const std::optional<std::string>& relay,
             const std::optional<std::string>& layout_kind, int64_t alignment,
             std::optional<int64_t> capacity, const std::string& overflow,
             std::optional<int64_t> chunk_bytes, std::optional<int64_t> timeout_ms,
             std::optional<int64_t> combine_buffer_bytes,
             const std::optional<std::string>& process_relays) -> py::tuple {
            Result<TensorView> idx = make_view("topk_idx", ptr, dtype, shape);
            Result<PlanOptions> options = plan_options(dedup, relay, chunk_bytes, timeout_ms);
            if (options.ok() && combine_buffer_bytes) {
              options.value().combine_buffer_bytes = *combine_buffer_bytes;
            }
            if (options.ok() && process_relays) {
              Result<ProcessRelays> mode = process_relays_from_name(*process_relays);
              if (mode.ok()) {
                options.value().process_relays = mode.value();
              } else {
                options = mode.status();
              }
            }
            Result<RecvLayout> layout = recv_layout(layout_kind, alignment, capacity, overflow);
            if (options.ok() && layout.ok()) options.value().layout = layout.value();
            if (options.ok() && !layout.ok()) options = layout.status();
            const ExpertMap map = replicas ? ExpertMap::with_replicas(*replicas)
                                  : owners ? ExpertMap::from_owners(*owners)
                                           : ExpertMap();
            Status status = idx.ok() ? options.status() : idx.status();
            std::optional<Plan> plan;
            {
              py::gil_scoped_release release;
              // A rank whose arguments failed here still takes part in the collective with an
              // empty view, which the planner rejects locally: no peer waits for it.
              const TensorView view = status.ok() ? idx.value() : TensorView{};
              Result<Plan> made =
                  comm.plan(view, num_experts, map, options.ok() ? options.value() : PlanOptions());
              if (status.ok()) status = made.status();
              if (made.ok()) plan = std::move(made).value();
            }
            if (!status.ok()) return py::make_tuple(status_tuple(status), py::none());
            return py::make_tuple(status_tuple(status), py::cast(*plan));
          },
          py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("num_experts"),
          py::arg("owners"), py::arg("replicas"), py::arg("dedup"), py::arg("relay"),
          py::arg("layout"), py::arg("alignment"), py::arg("capacity"), py::arg("overflow"),
          py::arg("chunk_bytes"), py::arg("timeout_ms"), py::arg("combine_buffer_bytes"),
          py::arg("process_relays"))
      .def("dispatch",
           [](Communicator& comm, const Plan& plan, uintptr_t x, int32_t x_dtype,
              const std::vector<int64_t>& x_shape, int64_t x_row_stride, uintptr_t recv,
              int32_t recv_dtype, const std::vector<int64_t>& recv_shape,
              bool async_op) -> py::tuple {
             Result<TensorView> xv = make_view("x", x, x_dtype, x_shape, x_row_stride);
             Result<TensorView> rv = make_view("recv", recv, recv_dtype, recv_shape);
             const TensorView xa = xv.ok() ? xv.value() : TensorView{};
             const TensorView ra = rv.ok() ? rv.value() : TensorView{};
             Status status;
             Work work;
             {
               py::gil_scoped_release release;
               if (async_op) {
                 work = comm.dispatch_async(plan, xa, ra);
               } else {
                 status = comm.dispatch(plan, xa, ra);
               }
             }
             if (!xv.ok()) status = xv.status();
             if (!rv.ok()) status = rv.status();
             return py::make_tuple(status_tuple(status), work);
           })
      .def("dispatch_with_extra",
           [](Communicator& comm, const Plan& plan, uintptr_t x, int32_t x_dtype,
              const std::vector<int64_t>& x_shape, int64_t x_row_stride, uintptr_t recv,
              int32_t recv_dtype, const std::vector<int64_t>& recv_shape, uintptr_t extra,
              int32_t extra_dtype, const std::vector<int64_t>& extra_shape,
              int64_t extra_row_stride, uintptr_t extra_recv, int32_t extra_recv_dtype,
              const std::vector<int64_t>& extra_recv_shape, bool async_op) -> py::tuple {
             std::vector<Result<TensorView>> views;
             views.push_back(make_view("x", x, x_dtype, x_shape, x_row_stride));
             views.push_back(make_view("recv", recv, recv_dtype, recv_shape));
             views.push_back(make_view("extra", extra, extra_dtype, extra_shape, extra_row_stride));
             views.push_back(
                 make_view("extra_recv", extra_recv, extra_recv_dtype, extra_recv_shape));
             // A view that failed here still joins the collective as one the engine rejects.
             TensorView rejected;
             rejected.ndim = 1;
             std::vector<TensorView> v;
             v.reserve(views.size());
             for (const Result<TensorView>& view : views) {
               v.push_back(view.ok() ? view.value() : rejected);
             }
             Status status;
             Work work;
             {
               py::gil_scoped_release release;
               if (async_op) {
                 work = comm.dispatch_async(plan, v[0], v[1], v[2], v[3]);
               } else {
                 status = comm.dispatch(plan, v[0], v[1], v[2], v[3]);
               }
             }
             for (const Result<TensorView>& view : views) {
               if (!view.ok()) status = view.status();
             }
             return py::make_tuple(status_tuple(status), work);
           })
      .def(
          "combine",
          [](Communicator& comm, const Plan& plan, uintptr_t y, int32_t y_dtype,
             const std::vector<int64_t>& y_shape, int64_t y_row_stride, uintptr_t w,
             int32_t w_dtype, const std::vector<int64_t>& w_shape, uintptr_t out, int32_t out_dtype,
             const std::vector<int64_t>& out_shape, bool async_op) -> py::tuple {
            Result<TensorView> yv = make_view("expert_out", y, y_dtype, y_shape, y_row_stride);
            Result<TensorView> wv = make_view("topk_weights", w, w_dtype, w_shape);
            Result<TensorView> ov = make_view("out", out, out_dtype, out_shape);
            const TensorView ya = yv.ok() ? yv.value() : TensorView{};
            const TensorView wa = wv.ok() ? wv.value() : TensorView{};
            const TensorView oa = ov.ok() ? ov.value() : TensorView{};
            Status status;
            Work work;
            {
              py::gil_scoped_release release;
              if (async_op) {
                work = comm.combine_async(plan, ya, wa, oa);
              } else {
                status = comm.combine(plan, ya, wa, oa);
              }
            }
            for (const auto* v : {&yv, &wv, &ov}) {
              if (!v->ok()) status = v->status();
            }
            return py::make_tuple(status_tuple(status), work);
          });

  m.def(
      "local_group",
      [](int world_size, int ranks_per_node) -> py::tuple {
        Result<std::vector<Communicator>> made =
            Communicator::create_local(world_size, Topology{world_size, ranks_per_node});
        if (!made.ok()) return py::make_tuple(status_tuple(made.status()), py::none());
        py::list comms;
        for (Communicator& comm : made.value()) {
          comms.append(std::make_shared<Communicator>(std::move(comm)));
        }
        return py::make_tuple(status_tuple(Status()), comms);
      },
      py::arg("world_size"), py::arg("ranks_per_node"));

  m.def(
      "join_timeout_ms",
      [](std::optional<int64_t> timeout_ms) {
        const Result<int64_t> timeout = join_timeout(timeout_ms);
        return py::make_tuple(status_tuple(timeout.status()),
                              timeout.ok() ? timeout.value() : int64_t{0});
      },
      py::arg("timeout_ms"),
      "How long joining a group may wait: timeout_ms, else FUSCO_TIMEOUT_MS (default 60000).");

  m.def(
      "ucx_group",
      [](int rank, int world_size, int ranks_per_node, const py::function& allgather,
         std::optional<int64_t> timeout_ms) -> py::tuple {
        const Result<int64_t> timeout = join_timeout(timeout_ms);
        if (!timeout.ok()) return py::make_tuple(status_tuple(timeout.status()), py::none());
        // The bootstrap calls back into Python (torch.distributed) with the GIL held.
        const Communicator::BootstrapAllgather exchange =
            [&allgather](const std::string& mine) -> Result<std::vector<std::string>> {
          py::gil_scoped_acquire gil;
          try {
            std::vector<std::string> all;
            for (const py::handle item : allgather(py::bytes(mine))) {
              all.push_back(item.cast<std::string>());
            }
            return all;
          } catch (py::error_already_set& error) {
            // The caller's exchange failed (a process that never came, a network fault): not
            // a fusco bug, so not kInternal; a timeout stays a timeout.
            const StatusCode code =
                error.matches(PyExc_TimeoutError) ? StatusCode::kTimeout : StatusCode::kAborted;
            return Status(code, std::string("the bootstrap allgather failed: ") + error.what());
          } catch (const std::exception& error) {
            return Status(StatusCode::kAborted,
                          std::string("the bootstrap allgather failed: ") + error.what());
          }
        };
        std::optional<Result<Communicator>> made;
        {
          py::gil_scoped_release release;
          made.emplace(Communicator::create_ucx(rank, Topology{world_size, ranks_per_node},
                                                exchange, timeout.value()));
        }
        if (!made->ok()) return py::make_tuple(status_tuple(made->status()), py::none());
        return py::make_tuple(status_tuple(Status()),
                              std::make_shared<Communicator>(std::move(*made).value()));
      },
      py::arg("rank"), py::arg("world_size"), py::arg("ranks_per_node"), py::arg("allgather"),
      py::arg("timeout_ms"));

  m.def(
      "shared_memory_group",
      [](const std::string& name, int rank, int world_size, int ranks_per_node,
         std::optional<int64_t> timeout_ms) -> py::tuple {
        const Result<int64_t> timeout = join_timeout(timeout_ms);
        if (!timeout.ok()) return py::make_tuple(status_tuple(timeout.status()), py::none());
        std::optional<Result<Communicator>> made;
        {
          py::gil_scoped_release release;  // waits for the other processes to attach
          made.emplace(Communicator::create_shared_memory(
              name, rank, Topology{world_size, ranks_per_node}, timeout.value()));
        }
        if (!made->ok()) return py::make_tuple(status_tuple(made->status()), py::none());
        return py::make_tuple(status_tuple(Status()),
                              std::make_shared<Communicator>(std::move(*made).value()));
      },
      py::arg("name"), py::arg("rank"), py::arg("world_size"), py::arg("ranks_per_node"),
      py::arg("timeout_ms"));
}

}  // namespace fusco::python
