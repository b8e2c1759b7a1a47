// Detect every face of an image with MTCNN and draw boxes and landmarks into a PNG.
//   detect_and_draw MTCNN_DIR IMAGE OUT.png
#include <cstdio>
#include <string>

#include "facenet/data/image_io.hpp"
#include "facenet/detect/mtcnn.hpp"
#include "facenet/io/torch_file.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: detect_and_draw MTCNN_DIR IMAGE OUT.png\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    facenet::detect::mtcnn_options options;  // facenet-pytorch's defaults: min face 20, thresholds 0.6/0.7/0.7
    auto detector = facenet::detect::mtcnn::from_weights(facenet::io::load_torch(dir + "/pnet.pt"),
                                                         facenet::io::load_torch(dir + "/rnet.pt"),
                                                         facenet::io::load_torch(dir + "/onet.pt"), options);
    facenet::data::image img = facenet::data::load_image(argv[2]);
    const auto faces = detector.detect(img);  // most probable first
    for (const auto& f : faces) {
      std::printf("face (%.1f, %.1f, %.1f, %.1f) p=%.5f\n", f.b.x1, f.b.y1, f.b.x2, f.b.y2, f.prob);
      facenet::data::draw_box(img, f.b.x1, f.b.y1, f.b.x2, f.b.y2, {0, 255, 0}, 3);
      for (const auto& p : f.points) facenet::data::draw_point(img, p[0], p[1], {255, 0, 0}, 3);
    }
    facenet::data::save_png(img, argv[3]);
    std::printf("%zu face(s); drawn to %s\n", faces.size(), argv[3]);
    return 0;
  } catch (const facenet::error& e) {
    std::fprintf(stderr, "detect_and_draw: %s\n", e.what());
    return 1;
  }
}
