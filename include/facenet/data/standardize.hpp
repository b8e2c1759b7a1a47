// Input standardizations of the FaceNet ecosystem, applied in place to each image of an NCHW batch
// holding raw 0..255 values:
//   fixed      (x - 127.5) / 128                     facenet-pytorch fixed_image_standardization
//   prewhiten  (x - mean) / max(std, 1/sqrt(n))      facenet-pytorch prewhiten (std with n-1)
//   prewhiten_np  same with the n-denominator std    davidsandberg/facenet prewhiten (np.std)
//   unit       x / 255                               torchvision to_tensor, OpenFace
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::data {

enum class standardization { none, fixed, prewhiten, prewhiten_np, unit };

inline const char* standardization_name(standardization s) noexcept {
  switch (s) {
    case standardization::none: return "none";
    case standardization::fixed: return "fixed";
    case standardization::prewhiten: return "prewhiten";
    case standardization::prewhiten_np: return "prewhiten_np";
    case standardization::unit: return "unit";
  }
  return "unknown";
}

inline standardization parse_standardization(const std::string& name) {
  for (standardization s : {standardization::none, standardization::fixed, standardization::prewhiten,
                            standardization::prewhiten_np, standardization::unit})
    if (name == standardization_name(s)) return s;
  throw argument_error("unknown standardization '" + name + "' (expected none, fixed, prewhiten, prewhiten_np or unit)");
}

namespace detail {
// Per-image whitening; `ddof` 1 = torch.std (unbiased), 0 = np.std.
inline void prewhiten_span(float* x, std::int64_t n, int ddof) {
  FACENET_CHECK(n > ddof, argument_error, "prewhiten: image with " + std::to_string(n) + " values");
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double ss = 0;
  for (std::int64_t i = 0; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
  const double sd = std::sqrt(ss / static_cast<double>(n - ddof));
  const double adj = std::max(sd, 1.0 / std::sqrt(static_cast<double>(n)));
  for (std::int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((x[i] - mean) / adj);
}
}  // namespace detail

// Applies `s` to every image (leading dimension) of a contiguous tensor.
inline void standardize(Tensor<float>& x, standardization s) {
  x.require_contiguous("standardize");
  if (x.numel() == 0 || s == standardization::none) return;
  const std::int64_t per_image = x.numel() / x.size(0);
  for (std::int64_t b = 0; b < x.size(0); ++b) {
    float* p = x.data() + b * per_image;
    switch (s) {
      case standardization::fixed:
        for (std::int64_t i = 0; i < per_image; ++i) p[i] = (p[i] - 127.5f) / 128.0f;
        break;
      case standardization::unit:
        for (std::int64_t i = 0; i < per_image; ++i) p[i] = p[i] / 255.0f;
        break;
      case standardization::prewhiten: detail::prewhiten_span(p, per_image, 1); break;
      case standardization::prewhiten_np: detail::prewhiten_span(p, per_image, 0); break;
      case standardization::none: break;
    }
  }
}

}  // namespace facenet::data
