// Training checkpoints: model weights, optimizer state, RNG state, step and data position in one
// safetensors file, written through io::write_file_atomically (temp file + fsync + rename + directory
// fsync) so a crash or a full disk never leaves a torn file in place of the last good checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/io/atomic_file.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::train {

// Kept under the trainer's name: checkpoints use the library's one durable writer.
inline void write_file_durably(const std::string& path, const std::string& bytes) { io::write_file_atomically(path, bytes); }

// Everything a resumed run needs to continue bit for bit.
struct checkpoint {
  io::tensor_map weights;    // model parameters and buffers under their reference names
  io::tensor_map optimizer;  // optimizer::export_state()
  std::int64_t step = 0;     // optimizer steps done; also the next batch index of the sampler
  std::string rng;           // std::mt19937_64 state (text form) of the mining RNG
  std::map<std::string, std::string> info;  // free-form run description (arch, seed, ...)
};

inline std::string rng_to_string(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

inline std::mt19937_64 rng_from_string(const std::string& text, const std::string& what) {
  std::istringstream s(text);
  std::mt19937_64 rng;
  s >> rng;
  FACENET_CHECK(!s.fail(), format_error, what + ": corrupt RNG state");
  return rng;
}

namespace detail {

constexpr const char* weights_prefix = "model/";
constexpr const char* optimizer_prefix = "optimizer/";
constexpr const char* info_prefix = "info.";

inline std::int64_t parse_step(const std::string& text, const std::string& what) {
  std::size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  FACENET_CHECK(used == text.size() && v >= 0, format_error, what + ": invalid step '" + text + "'");
  return v;
}

inline void add_prefixed(io::tensor_map& out, const io::tensor_map& in, const std::string& prefix) {
  for (const auto& e : in.entries()) out.add(prefix + e.name, e.value);
}

}  // namespace detail

// One safetensors file: tensors "model/<name>" and "optimizer/<name>/<buffer>"; metadata keys
// "step", "rng", the optimizer's own metadata keys, and "info.<key>".
inline io::tensor_map checkpoint_to_tensor_map(const checkpoint& c) {
  io::tensor_map m;
  detail::add_prefixed(m, c.weights, detail::weights_prefix);
  detail::add_prefixed(m, c.optimizer, detail::optimizer_prefix);
  m.metadata = c.optimizer.metadata;
  for (const auto& [k, v] : c.weights.metadata) m.metadata[detail::info_prefix + std::string("model.") + k] = v;
  for (const auto& [k, v] : c.info) m.metadata[detail::info_prefix + k] = v;
  m.metadata["step"] = std::to_string(c.step);
  m.metadata["rng"] = c.rng;
  return m;
}

inline checkpoint checkpoint_from_tensor_map(const io::tensor_map& m, const std::string& what) {
  checkpoint c;
  const auto need = [&](const std::string& key) -> const std::string& {
    const auto it = m.metadata.find(key);
    FACENET_CHECK(it != m.metadata.end(), format_error, what + ": not a training checkpoint (no '" + key + "' metadata)");
    return it->second;
  };
  c.step = detail::parse_step(need("step"), what);
  c.rng = need("rng");
  rng_from_string(c.rng, what);  // validate now, not at resume time
  const std::string info = detail::info_prefix, model_info = info + "model.";
  for (const auto& [k, v] : m.metadata) {
    if (k.rfind(model_info, 0) == 0)
      c.weights.metadata[k.substr(model_info.size())] = v;
    else if (k.rfind(info, 0) == 0)
      c.info[k.substr(info.size())] = v;
    else if (k.rfind("optimizer", 0) == 0)
      c.optimizer.metadata[k] = v;
  }
  const std::string wp = detail::weights_prefix, op = detail::optimizer_prefix;
  for (const auto& e : m.entries()) {
    if (e.name.rfind(wp, 0) == 0)
      c.weights.add(e.name.substr(wp.size()), e.value);
    else if (e.name.rfind(op, 0) == 0)
      c.optimizer.add(e.name.substr(op.size()), e.value);
    else
      throw format_error(what + ": unexpected tensor '" + e.name + "' (expected model/... or optimizer/...)");
  }
  FACENET_CHECK(c.weights.size() > 0, format_error, what + ": checkpoint holds no model weights");
  return c;
}

inline void save_checkpoint(const std::string& path, const checkpoint& c) {
  write_file_durably(path, io::serialize_safetensors(checkpoint_to_tensor_map(c)));
}

inline checkpoint load_checkpoint(const std::string& path) {
  return checkpoint_from_tensor_map(io::load_safetensors(path), path);
}

// The file name a run writes its latest checkpoint under.
inline std::string checkpoint_path(const std::string& dir) { return (std::filesystem::path(dir) / "checkpoint.safetensors").string(); }

}  // namespace facenet::train
