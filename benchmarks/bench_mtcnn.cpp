// MTCNN detection end to end (pyramid + P-Net, R-Net, O-Net, NMS) on a 1280x720 frame and on a
// 250x250 LFW image, plus the P-Net pyramid alone. Uses ../shared (multiface.jpg, LFW, weights);
// without the weights nothing can run and the benchmarks report an error. Without the photos a
// synthetic image of the same size is used (timings then reflect few proposals).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "facenet/data/image_io.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/detect/mtcnn.hpp"
#include "facenet/io/torch_file.hpp"

namespace {

namespace fd = facenet::data;
namespace dt = facenet::detect;

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("FACENET_SHARED")) return env;
#ifdef FACENET_SOURCE_DIR
  return std::filesystem::path(FACENET_SOURCE_DIR).parent_path() / "shared";
#else
  return std::filesystem::current_path().parent_path() / "shared";
#endif
}

dt::mtcnn* detector() {
  static std::unique_ptr<dt::mtcnn> d = [] {
    const auto w = shared_dir() / "weights/mtcnn/facenet-pytorch";
    if (!std::filesystem::exists(w / "onet.pt")) return std::unique_ptr<dt::mtcnn>();
    return std::make_unique<dt::mtcnn>(dt::mtcnn::from_weights(facenet::io::load_torch((w / "pnet.pt").string()),
                                                               facenet::io::load_torch((w / "rnet.pt").string()),
                                                               facenet::io::load_torch((w / "onet.pt").string())));
  }();
  return d.get();
}

fd::image synthetic(int w, int h) {
  fd::image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < 3; ++k)
        img.at(y, x, k) = static_cast<std::uint8_t>(128 + 100 * std::sin(x * 0.05 + k) * std::cos(y * 0.07));
  return img;
}

// multiface.jpg (1200x630) resized to 1280x720, or a synthetic frame.
const fd::image& frame_720p() {
  static const fd::image img = [] {
    const auto p = shared_dir() / "images/multiface.jpg";
    if (!std::filesystem::exists(p)) return synthetic(1280, 720);
    const fd::image src = fd::load_image(p.string());
    return fd::resize_bilinear_pil(src, fd::full_rect(src), 1280, 720);
  }();
  return img;
}

const fd::image& lfw_250() {
  static const fd::image img = [] {
    const auto p = shared_dir() / "data/lfw/images_deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg";
    return std::filesystem::exists(p) ? fd::load_image(p.string()) : synthetic(250, 250);
  }();
  return img;
}

void run_detect(benchmark::State& state, const fd::image& img) {
  dt::mtcnn* d = detector();
  if (!d) {
    state.SkipWithError("MTCNN weights not found under ../shared/weights/mtcnn/facenet-pytorch");
    return;
  }
  std::size_t faces = 0;
  for (auto _ : state) {
    const auto f = d->detect(img);
    faces = f.size();
    benchmark::DoNotOptimize(faces);
  }
  state.counters["faces"] = static_cast<double>(faces);
  state.counters["megapixels"] = img.width * img.height / 1e6;
}

void BM_mtcnn_detect_1280x720(benchmark::State& state) { run_detect(state, frame_720p()); }
void BM_mtcnn_detect_lfw_250x250(benchmark::State& state) { run_detect(state, lfw_250()); }

// The P-Net pyramid alone (resizes + P-Net forward), usually most of the time on large frames.
void BM_mtcnn_pnet_pyramid_1280x720(benchmark::State& state) {
  const auto w = shared_dir() / "weights/mtcnn/facenet-pytorch/pnet.pt";
  if (!std::filesystem::exists(w)) {
    state.SkipWithError("P-Net weights not found");
    return;
  }
  facenet::models::mtcnn_pnet pnet(facenet::io::load_torch(w.string()));
  const fd::image& img = frame_720p();
  fd::image_f level;
  facenet::Tensor<float> x, reg, prob;
  for (auto _ : state) {
    for (double s : dt::pyramid_scales(img.width, img.height, {})) {
      const int hs = static_cast<int>(img.height * s + 1), ws = static_cast<int>(img.width * s + 1);
      fd::resize_area(img, fd::full_rect(img), ws, hs, level);
      x.resize({1, 3, hs, ws});
      fd::to_tensor(level, x, 0, 127.5f, 0.0078125f);
      pnet.forward(x, reg, prob);
    }
    benchmark::DoNotOptimize(prob.data());
  }
}

}  // namespace

BENCHMARK(BM_mtcnn_detect_1280x720)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mtcnn_detect_lfw_250x250)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mtcnn_pnet_pyramid_1280x720)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
