// Who is this? Nearest neighbour of a face among a gallery (one folder per person), or "unknown".
//   identify_gallery WEIGHTS.safetensors GALLERY_DIR FACE [THRESHOLD=1.1]
// Gallery and query images are aligned face crops.
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>

#include "facenet/data/dataset.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/models/nn4_small2.hpp"

namespace fn = facenet;

// One NN4-small2 embedding per image path.
fn::Tensor<float> embed(const fn::models::embedder<float>& net, const std::vector<std::string>& paths) {
  fn::Tensor<float> x({static_cast<std::int64_t>(paths.size()), 3, 96, 96});
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const fn::data::image img = fn::data::load_image(paths[i]);
    fn::data::to_tensor(fn::data::resize_bilinear_pil(img, fn::data::full_rect(img), 96, 96), x, static_cast<std::int64_t>(i));
  }
  fn::data::standardize(x, fn::data::standardization::unit);
  return net.embed(x);
}

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: identify_gallery NN4_WEIGHTS.safetensors GALLERY_DIR FACE [THRESHOLD=1.1]\n");
    return 2;
  }
  try {
    const double threshold = argc == 5 ? std::stod(argv[4]) : 1.1;
    fn::models::nn4_small2<float> model;
    model.load(fn::io::load_safetensors(argv[1]));
    const fn::models::embedder<float> net(model);

    const auto gallery = fn::data::face_dataset::from_folder(argv[2]);
    std::vector<std::string> paths, names;
    for (const auto& person : gallery.identities())
      for (const auto& p : person.images) paths.push_back(p), names.push_back(person.name);
    const fn::Tensor<float> g = embed(net, paths), q = embed(net, {argv[3]});

    double best = std::numeric_limits<double>::infinity();
    std::size_t who = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
      double d2 = 0;
      for (std::int64_t k = 0; k < q.size(1); ++k) d2 += std::pow(q.data()[k] - g.data()[i * q.size(1) + k], 2);
      if (std::sqrt(d2) < best) best = std::sqrt(d2), who = i;
    }
    std::printf("%s: %s (distance %.4f, gallery of %zu faces)\n", argv[3], best <= threshold ? names[who].c_str() : "unknown",
                best, names.size());
    return 0;
  } catch (const fn::error& e) {
    std::fprintf(stderr, "identify_gallery: %s\n", e.what());
    return 1;
  }
}
