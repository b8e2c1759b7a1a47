// Embed the largest face of an image: MTCNN detection, facenet-pytorch crop, FaceNet embedding.
//   embed_face MTCNN_DIR WEIGHTS.safetensors IMAGE
// MTCNN_DIR holds pnet.pt, rnet.pt, onet.pt (facenet-pytorch); WEIGHTS comes from `facenet convert`.
#include <cstdio>
#include <string>

#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/io/torch_file.hpp"
#include "facenet/detect/align.hpp"
#include "facenet/detect/mtcnn.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: embed_face MTCNN_DIR WEIGHTS.safetensors IMAGE\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    auto detector = facenet::detect::mtcnn::from_weights(facenet::io::load_torch(dir + "/pnet.pt"),
                                                         facenet::io::load_torch(dir + "/rnet.pt"),
                                                         facenet::io::load_torch(dir + "/onet.pt"));
    // The weight file names its architecture in its metadata.
    facenet::io::tensor_map weights = facenet::io::load_safetensors(argv[2]);
    const bool nn4 = weights.metadata.count("architecture") && weights.metadata.at("architecture") == "nn4_small2";
    std::unique_ptr<facenet::models::model<float>> net;
    if (nn4)
      net = std::make_unique<facenet::models::nn4_small2<float>>();
    else
      net = std::make_unique<facenet::models::inception_resnet_v1<float>>();
    net->load(std::move(weights));                            // takes the buffers over, no copy
    facenet::models::embedder<float> embedder(std::move(net));  // packs in place: one set of weights

    const facenet::data::image img = facenet::data::load_image(argv[3]);
    const auto faces = facenet::detect::select_faces(detector.detect(img), img.width, img.height, false);
    if (faces.empty()) {
      std::fprintf(stderr, "no face in %s\n", argv[3]);
      return 1;
    }
    facenet::detect::crop_options crop;
    crop.image_size = static_cast<int>(embedder.info().input_size);
    const facenet::data::image face = facenet::detect::extract_face(img, faces[0].b, crop);

    // NN4-small2 (OpenFace) expects [0, 1] pixels; Inception-ResNet-v1 (facenet-pytorch) (x - 127.5) / 128.
    facenet::Tensor<float> x = facenet::data::to_tensor(face);
    facenet::data::standardize(x, nn4 ? facenet::data::standardization::unit : facenet::data::standardization::fixed);
    const facenet::Tensor<float> e = embedder.embed(x);
    std::printf("face at (%.0f, %.0f, %.0f, %.0f), p = %.4f\nembedding (%lld values):", faces[0].b.x1, faces[0].b.y1,
                faces[0].b.x2, faces[0].b.y2, faces[0].prob, static_cast<long long>(e.numel()));
    for (std::int64_t i = 0; i < e.numel(); ++i) std::printf("%s%.5f", i % 8 ? " " : "\n  ", e.data()[i]);
    std::printf("\n");
    return 0;
  } catch (const facenet::error& e) {
    std::fprintf(stderr, "embed_face: %s\n", e.what());
    return 1;
  }
}
