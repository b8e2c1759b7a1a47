// What every weight reader produces and every model consumes: tensors by name, in file order,
// plus string metadata (architecture, standardization, eps, source, ...).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::io {

struct named_tensor {
  std::string name;
  Tensor<float> value;
  std::string source_dtype;  // dtype as stored in the file ("F32", "F16", "float64", ...)
};

class tensor_map {
 public:
  // Far above any model (Inception-ResNet-v1 with optimizer state has a few thousand tensors); it caps
  // what a hostile file whose entries cost a few bytes each can make a reader build.
  static constexpr std::size_t max_tensors = std::size_t{1} << 20;

  void add(std::string name, Tensor<float> value, std::string source_dtype = "F32") {
    FACENET_CHECK(entries_.size() < max_tensors, format_error,
                  "more than " + std::to_string(max_tensors) + " tensors (adding '" + name + "')");
    FACENET_CHECK(index_.find(name) == index_.end(), format_error, "duplicate tensor name '" + name + "'");
    index_.emplace(name, entries_.size());
    entries_.push_back({std::move(name), std::move(value), std::move(source_dtype)});
  }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const Tensor<float>& at(const std::string& name) const {
    auto it = index_.find(name);
    FACENET_CHECK(it != index_.end(), format_error, "tensor '" + name + "' not found");
    return entries_[it->second].value;
  }
  Tensor<float>& at(const std::string& name) {
    return const_cast<Tensor<float>&>(static_cast<const tensor_map&>(*this).at(name));
  }
  const std::vector<named_tensor>& entries() const noexcept { return entries_; }
  std::size_t size() const noexcept { return entries_.size(); }

  std::map<std::string, std::string> metadata;

 private:
  std::vector<named_tensor> entries_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace facenet::io
